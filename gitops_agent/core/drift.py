"""Drift: how live objects moved away from the snapshot the agent last applied, and who moved them.

Only the fields the snapshot set are looked at; a field the snapshot never set is not drift.
A field is drifted when its live value differs from the snapshot's **and** the agent's field
manager no longer owns it: while the agent owns a field, any difference is the API server's own
normalisation (``1000m`` stored as ``1``), not somebody's change. Each drifted field is attributed
to the manager that owns it now (``metadata.managedFields``) and since when, and classified:

- **expected**: that manager is on the environment's list (the HPA's ``kube-controller-manager``
  on ``/spec/replicas`` by default) — the cluster moved on legitimately;
- **unexpected**: anything else, such as ``kubectl-edit`` during an incident.

The same walk tells the engine which fields to leave out of an apply, so that an apply never takes
a field back from an expected controller (``fields_to_yield``).
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gitops_agent.core.diff import escape_pointer, pointer_remove
from gitops_agent.core.managed_fields import FieldOwner, field_owners, owner_of
from gitops_agent.core.secret_mask import is_secret, is_secret_key, mask_at
from gitops_agent.model import KubeObject, ObjectKey

CHANGED, MISSING, EXTRA = "changed", "missing", "unexpected-object"


@dataclass(frozen=True)
class DriftedField:
    """One field of a live object that moved away from the applied snapshot."""

    path: str  # JSON pointer into the live object
    desired: Any  # the snapshot's value; Secret values masked
    live: Any  # Secret values masked; None when the field is gone
    manager: str  # "" when nobody owns it (a field removed)
    since: str  # RFC 3339 time of that manager's last write, "" when unknown
    expected: bool


@dataclass(frozen=True)
class ObjectDrift:
    """One object with drift. ``state`` is ``changed`` (see ``fields``), ``missing`` (deleted from
    the cluster) or ``unexpected-object`` (carries the environment's label, absent from git)."""

    key: ObjectKey
    state: str  # changed | missing | unexpected-object
    fields: tuple[DriftedField, ...] = ()

    @property
    def expected(self) -> bool:
        """Changed, and every field by an expected manager; missing and extra objects never are."""
        return self.state == CHANGED and all(f.expected for f in self.fields)

    @property
    def unexpected_fields(self) -> tuple[DriftedField, ...]:
        return tuple(f for f in self.fields if not f.expected)


@dataclass(frozen=True)
class DriftCounts:
    """Drifted objects, split as ``ObjectDrift.expected`` classifies them."""

    unexpected: int = 0
    expected: int = 0

    @classmethod
    def of(cls, drift: Iterable[ObjectDrift]) -> DriftCounts:
        drift = tuple(drift)
        unexpected = sum(1 for d in drift if not d.expected)
        return cls(unexpected=unexpected, expected=len(drift) - unexpected)


@dataclass(frozen=True)
class ExpectedManager:
    """A field manager allowed to own some fields: those fields are neither applied nor drift."""

    manager: str
    paths: tuple[str, ...] = ()  # JSON pointers; empty means every field it owns
    kinds: tuple[str, ...] = ()  # empty means every kind


@dataclass(frozen=True)
class IgnoreRule:
    """Argo CD's ``ignoreDifferences``: these paths of matching objects are neither diffed nor drift."""

    kind: str
    paths: tuple[str, ...]
    group: str | None = None
    name: str | None = None
    namespace: str | None = None


@dataclass(frozen=True)
class DriftPolicy:
    field_manager: str
    expected_managers: tuple[ExpectedManager, ...] = ()
    ignore: tuple[IgnoreRule, ...] = ()


@dataclass(frozen=True)
class _Leaf:
    desired_path: str
    live_path: str
    desired: Any
    live: Any
    present: bool


def detect_drift(
    applied: Sequence[tuple[ObjectKey, KubeObject]],
    live: Mapping[ObjectKey, KubeObject],
    *,
    policy: DriftPolicy,
    extra: Iterable[KubeObject] = (),
) -> tuple[ObjectDrift, ...]:
    """Drift of every applied object, plus objects carrying the environment's label that the
    snapshot does not have (``extra``, already filtered by the caller)."""
    out: list[ObjectDrift] = []
    for key, manifest in applied:
        current = live.get(key)
        if current is None:
            out.append(ObjectDrift(key, MISSING))
            continue
        fields = object_drift(key, manifest, current, policy)
        if fields:
            out.append(ObjectDrift(key, CHANGED, fields))
    out.extend(ObjectDrift(ObjectKey.of(obj), EXTRA) for obj in extra)
    return tuple(sorted(out, key=lambda d: d.key))


def object_drift(
    key: ObjectKey, desired: KubeObject, live: KubeObject, policy: DriftPolicy
) -> tuple[DriftedField, ...]:
    owners = field_owners(live)
    secret = is_secret_key(key)
    found = []
    for leaf in _leaves(_as_stored(desired), live):
        if leaf.present and _same(leaf.desired, leaf.live):
            continue
        if _ignored(key, leaf.live_path, policy.ignore):
            continue
        owner = owner_of(leaf.live_path, owners) if leaf.present else None
        if owner is not None and owner.manager == policy.field_manager:
            continue  # still ours: the server normalised the value, nobody changed it
        found.append(_drifted(key, leaf, owner, policy, secret))
    return tuple(found)


def fields_to_yield(key: ObjectKey, desired: KubeObject, live: KubeObject | None, policy: DriftPolicy) -> KubeObject:
    """The manifest without the fields an expected controller owns now (a copy; the manifest
    itself when there is nothing to leave out, which is the common case on every pass).

    So an apply of a new commit never takes ``spec.replicas`` back from an HPA, while the other
    changes of the commit still land.
    """
    if live is None:
        return desired
    owners = field_owners(live)
    yielded = [
        leaf.desired_path
        for leaf in _leaves(desired, live)
        if leaf.present
        and (owner := owner_of(leaf.live_path, owners)) is not None
        and owner.manager != policy.field_manager
        and _is_expected(key, leaf.live_path, owner, policy)
    ]
    if not yielded:
        return desired
    out = copy.deepcopy(desired)
    for path in sorted(yielded, reverse=True):  # deepest and last list items first
        pointer_remove(out, path)
    return out


def _drifted(key: ObjectKey, leaf: _Leaf, owner: FieldOwner | None, policy: DriftPolicy, secret: bool) -> DriftedField:
    # by place, whatever the shape: a whole ``data`` map gone from the live Secret hides its values too
    return DriftedField(
        path=leaf.live_path,
        desired=mask_at(leaf.desired_path, leaf.desired) if secret else leaf.desired,
        live=mask_at(leaf.live_path, leaf.live) if secret else leaf.live,
        manager=owner.manager if owner else "",
        since=owner.time if owner else "",
        expected=owner is not None and _is_expected(key, leaf.live_path, owner, policy),
    )


def _is_expected(key: ObjectKey, path: str, owner: FieldOwner, policy: DriftPolicy) -> bool:
    for rule in policy.expected_managers:
        if rule.manager != owner.manager:
            continue
        if rule.kinds and key.kind not in rule.kinds:
            continue
        if not rule.paths or any(_under(path, p) for p in rule.paths):
            return True
    return False


def _ignored(key: ObjectKey, path: str, rules: Iterable[IgnoreRule]) -> bool:
    for rule in rules:
        if rule.kind != key.kind or (rule.group is not None and rule.group != key.group):
            continue
        if (rule.name and rule.name != key.name) or (rule.namespace and rule.namespace != key.namespace):
            continue
        if any(_under(path, p) for p in rule.paths):
            return True
    return False


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _same(desired: Any, live: Any) -> bool:
    # YAML lets people write numbers where the API stores strings, and vice versa (ports, labels)
    return bool(desired == live) or (
        isinstance(desired, int | float | str) and isinstance(live, int | float | str) and str(desired) == str(live)
    )


def _as_stored(manifest: KubeObject) -> KubeObject:
    """A Secret's ``stringData`` as the server stores it (base64 in ``data``), so the two compare."""
    if not is_secret(manifest) or not manifest.get("stringData"):
        return manifest
    out = copy.deepcopy(manifest)
    data = dict(out.get("data") or {})
    for k, v in out.pop("stringData").items():
        data[k] = base64.b64encode(str(v).encode()).decode()
    out["data"] = data
    return out


def _leaves(desired: Any, live: Any, dptr: str = "", lptr: str = "") -> Iterator[_Leaf]:
    """Every leaf the manifest sets, paired with the live value at the matching place.

    List items are matched by ``name`` when every item has one (containers, ports, env, volumes),
    else by position, so a reordered list is not reported as drift.
    """
    if isinstance(desired, dict) and desired:
        for k, v in desired.items():
            token = escape_pointer(str(k))
            present = isinstance(live, dict) and k in live
            child = live[k] if present else None
            if not present:
                yield _Leaf(f"{dptr}/{token}", f"{lptr}/{token}", v, None, False)
            else:
                yield from _leaves(v, child, f"{dptr}/{token}", f"{lptr}/{token}")
    elif isinstance(desired, list) and desired and isinstance(live, list):
        for i, item in enumerate(desired):
            j = _match(item, i, live)
            if j is None:
                yield _Leaf(f"{dptr}/{i}", f"{lptr}/{i}", item, None, False)
            else:
                yield from _leaves(item, live[j], f"{dptr}/{i}", f"{lptr}/{j}")
    else:
        yield _Leaf(dptr or "/", lptr or "/", desired, live, True)


def _match(item: Any, index: int, live: list[Any]) -> int | None:
    if isinstance(item, dict) and "name" in item:
        for j, candidate in enumerate(live):
            if isinstance(candidate, dict) and candidate.get("name") == item["name"]:
                return j
        return None
    return index if index < len(live) else None
