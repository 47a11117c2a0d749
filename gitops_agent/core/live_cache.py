"""The pure half of the watch cache (``cluster.watch``): which kinds and namespaces an environment's
objects need watched, how a watch event changes a store of them, and whether that change is
someone else's (a pass to run) or the agent's own write (no pass: no loop).

A store holds one kind in one namespace (cluster-scoped: ""), label-selected by the environment.
It keeps what drift reads (metadata with managedFields, spec, data…) and drops what drift never
reads: ``status`` (unless the agent's own apply owns it: a kind without a status subresource) and
kubectl's last-applied annotation, so memory follows the objects managed, not their churn; each
kept as compact JSON text (``Packed``), parsed when read. A
workload's status is kept too (not compared: no drift, no pass): following its rollout reads it
from the cache instead of polling the API server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from gitops_agent.core.health import explains
from gitops_agent.model import KubeObject, ObjectKey, api_group

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: metadata that changes on every write without the object changing in a way drift sees
_VOLATILE = ("resourceVersion", "managedFields", "generation")


@dataclass(frozen=True, order=True)
class WatchTarget:
    """One kind in one namespace ("" for a cluster-scoped kind)."""

    group: str
    kind: str
    namespace: str


def targets_of(keys: Iterable[ObjectKey]) -> frozenset[WatchTarget]:
    """What an environment's objects need watched: one target per kind and namespace."""
    return frozenset(WatchTarget(k.group, k.kind, k.namespace) for k in keys)


class Change(Enum):
    NONE = "none"  # nothing drift could see (status, a bookmark, a re-list finding the same)
    THEIRS = "theirs"  # someone else changed a managed object: a pass should explain it
    OURS = "ours"  # the agent's own apply: no pass (else every repair would trigger another)
    EXPIRED = "expired"  # 410 Gone (or another watch error): list again


def trim(obj: KubeObject, field_manager: str) -> KubeObject:
    """The object as the cache keeps it (a shallow copy; the input is not changed)."""
    out = dict(obj)
    if "status" in out and not _applies_status(obj, field_manager) and not _rolls_out(obj):
        del out["status"]
    meta = dict(out.get("metadata") or {})
    annotations = meta.get("annotations") or {}
    if LAST_APPLIED in annotations:
        meta["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    out["metadata"] = meta
    return out


def _rolls_out(obj: KubeObject) -> bool:
    """A workload: its health is its status (a Deployment's replicas, a Job's completions)."""
    return explains(api_group(str(obj.get("apiVersion") or "")), str(obj.get("kind") or ""))


def _applies_status(obj: KubeObject, field_manager: str) -> bool:
    for entry in _entries(obj):
        fields = entry.get("fieldsV1") or {}
        if entry.get("manager") == field_manager and not entry.get("subresource") and "f:status" in fields:
            return True
    return False


def _entries(obj: KubeObject) -> list[dict[str, Any]]:
    return list((obj.get("metadata") or {}).get("managedFields") or [])


def written_by_agent(obj: KubeObject, field_manager: str) -> bool:
    """True when the object's latest write (managedFields times, status writes aside) is the
    agent's own apply, strictly after every other manager's: a tie is someone else's (a pass too
    many is harmless, a missed edit is not)."""
    ours, theirs = "", ""
    for entry in _entries(obj):
        if entry.get("subresource"):
            continue
        when = str(entry.get("time") or "")
        if entry.get("manager") == field_manager and entry.get("operation") == "Apply":
            ours = max(ours, when)
        else:
            theirs = max(theirs, when)
    return bool(ours) and ours > theirs


def _content(obj: KubeObject | None, field_manager: str) -> Any:
    """What drift sees of a kept object: a workload's status (kept for its rollout) is not part of it."""
    if obj is None:
        return None
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _VOLATILE}
    out = {**obj, "metadata": meta}
    if "status" in out and not _applies_status(obj, field_manager):
        del out["status"]
    return out


def _name(obj: KubeObject) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


class Packed(MutableMapping[str, KubeObject]):
    """Objects by name, each kept as compact JSON text and parsed when read: parsed, an object costs
    several times its text (a ConfigMap of 1.3 KB with its managedFields: 6 KB of dicts), and the
    cache holds every managed object for good, while a pass reads only its environment's."""

    def __init__(self, items: Iterable[tuple[str, KubeObject]] = ()) -> None:
        self._text: dict[str, str] = {}
        for name, obj in items:
            self[name] = obj

    def __getitem__(self, name: str) -> KubeObject:
        parsed: KubeObject = json.loads(self._text[name])
        return parsed

    def __setitem__(self, name: str, obj: KubeObject) -> None:
        self._text[name] = json.dumps(obj, separators=(",", ":"))

    def __delitem__(self, name: str) -> None:
        del self._text[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._text)

    def __len__(self) -> int:
        return len(self._text)


@dataclass
class Store:
    """One watch target's objects by name, and the resourceVersion to watch from."""

    field_manager: str
    objects: Packed = field(default_factory=Packed)
    resource_version: str = ""
    synced: bool = False

    def replace_all(self, items: Iterable[KubeObject], resource_version: str) -> Change:
        """A (re-)list: the store becomes exactly ``items``. Whatever differs from what it held
        (edits missed while the watch was down) is a change, so nothing is missed."""
        fresh = {_name(o): trim(o, self.field_manager) for o in items}
        change = Change.NONE
        if self.synced:
            for name in fresh.keys() | self.objects.keys():
                old, new = self.objects.get(name), fresh.get(name)
                if _content(old, self.field_manager) != _content(new, self.field_manager):
                    change = _worse(change, self._whose(new))
        self.objects, self.resource_version, self.synced = Packed(fresh.items()), resource_version, True
        return change

    def apply(self, event_type: str, obj: KubeObject) -> Change:
        """One watch event. ``ERROR`` (410 Gone after compaction, or any other) asks for a re-list."""
        if event_type == "ERROR":
            return Change.EXPIRED
        version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if version:
            self.resource_version = version
        if event_type == "BOOKMARK":
            return Change.NONE
        name = _name(obj)
        old = self.objects.get(name)
        if event_type == "DELETED":
            self.objects.pop(name, None)
            return Change.THEIRS if old is not None else Change.NONE
        new = trim(obj, self.field_manager)
        self.objects[name] = new
        if _content(old, self.field_manager) == _content(new, self.field_manager):
            return Change.NONE
        return self._whose(new)

    def _whose(self, new: KubeObject | None) -> Change:
        if new is not None and written_by_agent(new, self.field_manager):
            return Change.OURS
        return Change.THEIRS


def _worse(a: Change, b: Change) -> Change:
    order = (Change.NONE, Change.OURS, Change.THEIRS, Change.EXPIRED)
    return max(a, b, key=order.index)


def gone(status: Mapping[str, Any]) -> bool:
    """A watch ``ERROR`` event's Status says the resourceVersion is too old (410 Gone)."""
    return status.get("code") == 410 or status.get("reason") in ("Expired", "Gone")
