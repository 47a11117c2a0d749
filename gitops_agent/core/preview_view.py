"""What a pull request preview may show of each object, pure: the PR's changes, never the cluster's.

A preview is posted where everyone reading the pull request sees it, so what it shows of the live
cluster is held to three rules:

1. A live object the environment does not manage (not in its inventory, or not labelled as its
   own) is never shown: "not managed by <env>: not shown", whatever the PR claims about it.
2. Of an object it manages, only the fields the PR changes (its manifest at the base against the
   head) are shown: no neighbouring live lines, no annotation the manifests do not set (such as
   ``last-applied-configuration``). A live value is shown only where the base manifest sets that
   field (the environment's own value); elsewhere only the PR's new value.
3. Secrets are masked as everywhere (``core.diff.unified_diff``, ``core.secret_mask``).

Lists of maps with a ``name`` (containers, env, ports) are matched by name, as server-side apply
merges them, so another manager's entry in the same list is never taken for the manifest's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gitops_agent.core.diff import normalize, unified_diff
from gitops_agent.core.prepare import ENV_LABEL
from gitops_agent.model import Action, DesiredObject, KubeObject, ObjectKey

#: a selection of fields: None selects the whole value; a map selects keys (str), list indexes (int)
#: or list entries by name (``Named``); an empty map selects nothing
Selection = dict[Any, Any] | None
_MISSING = object()


@dataclass(frozen=True)
class Named:
    """The entry of a list of maps whose ``name`` is ``name``."""

    name: str


@dataclass(frozen=True)
class ObjectView:
    """One object of a preview's plan, with what the view may draw on."""

    key: ObjectKey
    action: Action
    environment: str
    #: the live object as read, and as the server's dry-run would store it (normalized)
    live: KubeObject | None = None
    planned: KubeObject | None = None
    #: the object's manifest at the PR's base and head (None: not rendered there)
    base: KubeObject | None = None
    head: KubeObject | None = None
    #: the environment manages the live object (``managed``)
    managed: bool = False
    message: str = ""


def managed(key: ObjectKey, live: Mapping[str, Any] | None, inventory: frozenset[ObjectKey], environment: str) -> bool:
    """The environment manages the live object: its inventory holds it and it carries its label."""
    if live is None or key not in inventory:
        return False
    labels = (live.get("metadata") or {}).get("labels") or {}
    return isinstance(labels, dict) and labels.get(ENV_LABEL) == environment


def view_lines(o: ObjectView) -> list[str]:
    """The lines a preview shows for one object (inside a code fence); [] for none."""
    header = f"# {o.action.value} {o.key}"
    if o.action in (Action.FAILED, Action.SKIPPED):
        return [f"{header}: {o.message}"]
    if o.action is Action.PRUNED:  # the environment's own manifest, never the live object
        return [header, *_diff(o, _shaped(o.base, o.base), None)]
    if o.action is Action.CREATED:
        after = o.planned if o.planned is not None else o.head
        return [header, *_diff(o, None, _shaped(after, o.head))]
    if o.action is not Action.CONFIGURED:
        return []
    if not o.managed:
        return [f"{header}: not managed by {o.environment}: not shown"]
    changed = changed_selection(o.base, o.head)
    before = _shaped(select(o.live, changed), o.base)
    after = _shaped(select(o.planned, changed), o.head)
    lines = _diff(o, before, after)
    return [header, *lines] if lines else [f"{header}: only fields this pull request does not change differ"]


def changed_selection(base: Any, head: Any) -> Selection:
    """The fields that differ between two manifests ({} for none, None for the whole value)."""
    if isinstance(base, dict) and isinstance(head, dict):
        out: dict[Any, Any] = {}
        for k in set(base) | set(head):
            sub = changed_selection(base[k], head[k]) if k in base and k in head else None
            if sub != {}:
                out[k] = sub
        return out
    if _named_list(base) and _named_list(head):
        b, h = _by_name(base), _by_name(head)
        picked = {Named(n): changed_selection(b.get(n), h.get(n)) if n in b and n in h else None for n in b | h}
        return {k: v for k, v in picked.items() if v != {}}
    if isinstance(base, list) and isinstance(head, list) and len(base) == len(head):
        each = {i: changed_selection(x, y) for i, (x, y) in enumerate(zip(base, head, strict=True))}
        return {i: v for i, v in each.items() if v != {}}
    return {} if base == head and type(base) is type(head) else None


def shape(manifest: Any) -> Selection:
    """Every field a manifest sets."""
    if isinstance(manifest, dict):
        return {k: shape(v) for k, v in manifest.items()}
    if _named_list(manifest):
        return {Named(str(e["name"])): shape(e) for e in manifest}
    if isinstance(manifest, list):
        return {i: shape(v) for i, v in enumerate(manifest)}
    return None


def select(obj: Any, selection: Selection) -> Any:
    """The selected part of ``obj`` (``_MISSING`` when nothing of it is selected)."""
    if selection is None:
        return obj
    if isinstance(obj, dict):
        picked = {k: select(obj[k], sub) for k, sub in selection.items() if isinstance(k, str) and k in obj}
        kept = {k: v for k, v in picked.items() if v is not _MISSING}
        return kept if kept else _MISSING
    if isinstance(obj, list):
        kept_items = [_select_entry(i, e, selection) for i, e in enumerate(obj)]
        items = [e for e in kept_items if e is not _MISSING]
        return items if items else _MISSING
    return _MISSING  # a value where the manifest has a structure: not the manifest's


def manifests_by_key(objects: Iterable[DesiredObject], namespace: str) -> dict[ObjectKey, KubeObject]:
    """Rendered manifests by the keys a plan may use: as rendered, with the environment's default
    namespace where none is set, and without one (a cluster-scoped object loses a stray one)."""
    out: dict[ObjectKey, KubeObject] = {}
    for d in objects:
        k = d.key
        for alias in (
            ObjectKey(k.group, k.kind, "", k.name),
            ObjectKey(k.group, k.kind, k.namespace or namespace, k.name),
        ):
            out.setdefault(alias, d.manifest)
        out[k] = d.manifest
    return out


def _select_entry(index: int, entry: Any, selection: dict[Any, Any]) -> Any:
    name = entry.get("name") if isinstance(entry, dict) else None
    if isinstance(name, str) and Named(name) in selection:
        picked = select(entry, selection[Named(name)])
        # the entry's name says which one changed (it is the manifest's, the selection's key)
        return {"name": name, **picked} if isinstance(picked, dict) else picked
    if index in selection:
        return select(entry, selection[index])
    return _MISSING


def _shaped(obj: Any, manifest: KubeObject | None) -> KubeObject | None:
    """``obj`` cut to the fields ``manifest`` sets, under the manifest's apiVersion and kind (which
    also tell the diff to mask a Secret); None when nothing is left."""
    if obj is None or obj is _MISSING or manifest is None:
        return None
    kept = select(normalize(obj) if isinstance(obj, dict) else obj, shape(normalize(manifest)))
    if not isinstance(kept, dict):
        return None
    kept.pop("apiVersion", None)
    kept.pop("kind", None)
    return {"apiVersion": manifest.get("apiVersion"), "kind": manifest.get("kind"), **kept}


def _diff(o: ObjectView, before: KubeObject | None, after: KubeObject | None) -> list[str]:
    if before == after:  # both None too
        return []
    return unified_diff(str(o.key), before, after).rstrip("\n").splitlines()


def _named_list(value: Any) -> bool:
    if not isinstance(value, list) or not value:
        return False
    names = [e.get("name") if isinstance(e, dict) else None for e in value]
    return all(isinstance(n, str) for n in names) and len(set(names)) == len(names)


def _by_name(entries: list[Any]) -> dict[str, Any]:
    return {str(e["name"]): e for e in entries}
