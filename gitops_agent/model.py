"""Plain data shared by the core and the adapters.

Kubernetes objects stay plain dicts (as the API returns them); everything the agent derives from
them is a frozen dataclass, so results can be compared, hashed and rendered without surprises.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: A Kubernetes object exactly as YAML or the API gives it.
KubeObject = dict[str, Any]


def api_group(api_version: str) -> str:
    """``apps/v1`` -> ``apps``; ``v1`` -> ``""`` (the core group)."""
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


@dataclass(frozen=True, order=True)
class ObjectKey:
    """Identity of an object across versions of its API: group, kind, namespace, name."""

    group: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectKey:
        meta = obj.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        return cls(
            group=api_group(str(obj.get("apiVersion") or "")),
            kind=str(obj.get("kind") or ""),
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
        )

    @property
    def group_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"

    def encode(self) -> str:
        """Stable one-line form for inventories: ``group|kind|namespace|name``."""
        return f"{self.group}|{self.kind}|{self.namespace}|{self.name}"

    @classmethod
    def decode(cls, text: str) -> ObjectKey:
        group, kind, namespace, name = text.split("|")
        return cls(group, kind, namespace, name)


@dataclass(frozen=True)
class DesiredObject:
    """One rendered object of a snapshot, with the file it came from (for error messages)."""

    key: ObjectKey
    manifest: KubeObject = field(compare=False, hash=False)
    source: str = ""


@dataclass(frozen=True)
class Snapshot:
    """The rendered, validated objects of one environment at one commit, in a stable order."""

    environment: str
    commit: str
    objects: tuple[DesiredObject, ...]

    def keys(self) -> frozenset[ObjectKey]:
        return frozenset(o.key for o in self.objects)

    def by_key(self) -> dict[ObjectKey, DesiredObject]:
        return {o.key: o for o in self.objects}


class Action(enum.StrEnum):
    """What one pass did, or would do, to one object."""

    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"
    PRUNED = "pruned"
    RELEASED = "released"  # left in place with the agent's labels taken off (see core.prune_rules)
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class Change:
    key: ObjectKey
    action: Action
    message: str = ""


@dataclass(frozen=True)
class ChangeSet:
    changes: tuple[Change, ...] = ()

    @classmethod
    def of(cls, changes: Iterable[Change]) -> ChangeSet:
        return cls(tuple(changes))

    def count(self, action: Action) -> int:
        return sum(1 for c in self.changes if c.action is action)

    def with_action(self, action: Action) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action is action)

    def summary(self) -> str:
        """``2 created, 1 configured, 1 pruned`` (actions with a zero count left out)."""
        parts = [f"{n} {a.value}" for a in Action if (n := self.count(a))]
        return ", ".join(parts) or "nothing to do"


class HealthStatus(enum.StrEnum):
    """kstatus words. Order of badness: Current < Unknown < InProgress < Failed."""

    CURRENT = "Current"
    IN_PROGRESS = "InProgress"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class Health:
    status: HealthStatus
    message: str = ""


@dataclass(frozen=True)
class ObjectHealth:
    key: ObjectKey
    status: HealthStatus
    message: str = ""
