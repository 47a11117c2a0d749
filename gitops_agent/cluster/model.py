"""What the cluster verbs take and give: the options of one sync, and what it did to each object."""

from __future__ import annotations

from dataclasses import dataclass, field

from gitops_agent.core.drift import DriftPolicy
from gitops_agent.core.scope import Scope
from gitops_agent.model import Action, Change, ChangeSet, KubeObject, ObjectKey


@dataclass(frozen=True)
class SyncOptions:
    environment: str
    namespace: str
    field_manager: str
    agent_namespace: str
    create_namespace: bool = True
    prune: bool = True
    allow_empty: bool = False
    prune_propagation: str = "background"
    #: re-apply objects even when their rendered manifest did not change since the last apply
    force: bool = False
    #: apply only these objects (self-heal of drifted ones); None means the whole snapshot
    only: frozenset[ObjectKey] | None = None
    drift_policy: DriftPolicy | None = None
    #: requests in flight at once for dry-runs and applies of one kind: the API server answers many
    #: side by side far faster than one after the other (API Priority and Fairness queues the rest)
    concurrency: int = 32
    #: what the environment may write; None: its own namespace only
    scope: Scope | None = None
    #: kinds pruning may delete though it never does by default (Namespace, PVC, CRD)
    prune_allow: tuple[str, ...] = ()

    @property
    def policy(self) -> DriftPolicy:
        return self.drift_policy or DriftPolicy(field_manager=self.field_manager)

    @property
    def boundary(self) -> Scope:
        return self.scope or Scope(namespaces=(self.namespace,))


@dataclass(frozen=True)
class ObjectPlan:
    """What a sync does, or would do, to one object, with the evidence."""

    key: ObjectKey
    action: Action
    paths: tuple[str, ...] = ()
    diff: str = ""
    message: str = ""
    source: str = ""
    #: a dry run's evidence (normalized, unmasked: never printed as is): the live object and what
    #: the server would store; previews show a part of them (``core.preview_view``)
    live: KubeObject | None = field(default=None, compare=False, repr=False)
    planned: KubeObject | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class SyncResult:
    environment: str
    commit: str
    dry_run: bool
    objects: tuple[ObjectPlan, ...] = ()
    error: str = ""
    reason: str = ""
    applied_keys: tuple[ObjectKey, ...] = field(default=())
    #: a dry run's: the environment's inventory as read (what it manages)
    inventory: frozenset[ObjectKey] = field(default=frozenset(), repr=False)
    #: the commit's hooks were due and its pre-sync hooks ran (so its post-sync hooks run too)
    hooks_ran: bool = False

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def changes(self) -> ChangeSet:
        return ChangeSet.of(Change(o.key, o.action, o.message) for o in self.objects)

    @property
    def has_changes(self) -> bool:
        written = (Action.CREATED, Action.CONFIGURED, Action.PRUNED, Action.RELEASED)
        return any(o.action in written for o in self.objects)

    @property
    def wrote(self) -> bool:
        """Did this sync write any object? (False for a dry run.)"""
        return not self.dry_run and self.has_changes


@dataclass(frozen=True)
class Observation:
    """A snapshot's objects as applied, next to what the cluster has now."""

    applied: tuple[tuple[ObjectKey, KubeObject], ...]
    live: dict[ObjectKey, KubeObject]
    extra: tuple[KubeObject, ...]  # carrying the environment's label, not in the snapshot
