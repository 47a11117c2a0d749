"""One snapshot against one cluster, as a script of the verbs. Guarantees, in order:

1. Nothing is written before the whole snapshot passed a server-side dry-run. The exception is
   forced by the API itself: objects in a namespace the snapshot creates, or of a kind a CRD in
   the snapshot defines, can only be dry-run once that Namespace/CRD exists, so Namespaces and CRDs
   are applied first (and CRDs waited on), then the rest is dry-run, then applied.
2. Nothing is pruned unless every apply succeeded, and nothing is pruned that is not in the
   environment's inventory, still labelled as the environment's, and not protected.
3. A sync that changes nothing writes nothing: not an object, not the inventory.
4. With a ``guard`` (the environment's lock, ``cluster.lock``), it is called before each write batch,
   before pruning and before the inventory: a pass that lost its lock writes nothing more.
5. Before the first write, the inventory records the union of what it held and the snapshot (so
   whatever a pass that fails half way wrote, a later commit can prune); after pruning, the exact
   set. Each object is recorded as created or adopted (it existed before the agent applied it).
6. Sync hooks (``core.hooks``) are validated with the rest (a hook to be re-created as a new
   object), never applied with it: with ``hooks`` (a pass applying a commit), the pre-sync hooks
   run once stage one is written and everything is validated, before the rest; only when the
   snapshot writes something (or a hook changed, or ``force``). They are never inventoried: never
   pruned, deleted only by their delete policy. Post-sync hooks are the pass's (``run_hooks``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Container, Iterable, Mapping, Sequence
from dataclasses import replace

from gitops_agent.cluster import hooks as hooks_module
from gitops_agent.cluster.api import ClusterApi
from gitops_agent.cluster.apply import Applied, Guard, WaitForCrds, apply_in_stages, unguarded
from gitops_agent.cluster.hooks import WaitForHooks
from gitops_agent.cluster.model import ObjectPlan, Observation, SyncOptions, SyncResult
from gitops_agent.cluster.plan import Plan, deferred_as_created, plan_sync
from gitops_agent.cluster.prepare import inventoried, prepare_snapshot
from gitops_agent.cluster.prune import ClaimedBy, nobody, plan_prunes, prune
from gitops_agent.cluster.read import LabelledLists, read_labelled, read_live
from gitops_agent.cluster.state import StateStore
from gitops_agent.cluster.wait import wait_for_crds
from gitops_agent.core.drift import ObjectDrift, detect_drift
from gitops_agent.core.hooks import Phase
from gitops_agent.core.inventory import Inventory, adoption, merge_inventories, stale_keys
from gitops_agent.core.prepare import PreparedObject
from gitops_agent.core.scope import ScopedObject, check_scope
from gitops_agent.core.sync_rules import (
    TakeOver,
    applied_hash,
    never,
    refuse_empty,
    refuse_foreign,
    refuse_foreign_hooks,
)
from gitops_agent.errors import GitOpsError
from gitops_agent.model import Action, DesiredObject, KubeObject, ObjectKey


def sync(
    api: ClusterApi,
    objects: Iterable[DesiredObject],
    *,
    commit: str,
    options: SyncOptions,
    dry_run: bool = False,
    wait: WaitForCrds = wait_for_crds,
    state: StateStore | None = None,
    claimed_by: ClaimedBy = nobody,
    may_take_over: TakeOver = never,
    guard: Guard = unguarded,
    hooks: WaitForHooks | None = None,
) -> SyncResult:
    """Plan, dry-run, apply and prune one environment's snapshot. Never raises GitOpsError.
    ``state``: where the inventory is kept, with the agent's own identity when ``api`` acts as the
    environment's ServiceAccount (default: through ``api``). ``claimed_by`` and ``may_take_over``
    hand an object over between environments (see ``prune`` and ``core.sync_rules.refuse_foreign``).
    ``hooks``: how to follow hooks; None (dry runs, repairs, tools) runs none."""
    o = options
    store = state or StateStore(api, namespace=o.agent_namespace, field_manager=o.field_manager)
    try:
        # Resolve scopes, default namespaces, label and hash every object; refuse what leaves the
        # environment's boundary (the whole snapshot, before any write).
        prepared = prepare_snapshot(api, objects, o)
        within_scope(prepared, o)
        # Read what the environment last applied, and refuse to prune everything by accident.
        inventory = store.read_inventory(o.environment)
        stale = stale_keys(inventory, (p.key for p in prepared))
        refuse_empty(o.environment, prepared, inventory, allow_empty=o.allow_empty)
        # Read the live objects once per kind and namespace; never take over another environment's.
        live = read_live(api, prepared)
        refuse_foreign(o.environment, prepared, live, may_take_over=may_take_over)
        refuse_foreign_hooks(o.environment, prepared, live)
        # Compare locally; ask the server (dry-run) only where the local compare can't decide.
        plan = plan_sync(api, prepared, live, o, diffs=dry_run)
        if dry_run:
            plan = Plan(plan.prepared, {**plan.plans, **deferred_as_created(plan.deferred)}, ())
            adopted = inventory.adopted if inventory else frozenset()
            prunes = plan_prunes(api, stale, o, adopted=adopted, claimed_by=claimed_by)
            return replace(
                _result(o, commit, True, plan, prunes), inventory=inventory.keys if inventory else frozenset()
            )
        # Record what this pass may write before it writes: a failure half way loses no object.
        guard()
        recorded = _record_tracked(store, o.environment, inventory, plan.prepared, live)
        # Write: Namespaces and CRDs first, then dry-run what waited for them, then the rest.
        applied = Applied()
        due = hooks is not None and o.only is None and hooks_due(plan, live, stale, o)
        pre_sync = _pre_sync(api, plan.hooks, o, hooks, guard) if due and hooks is not None else _nothing
        plan = apply_in_stages(api, plan, live, o, applied, wait=wait, guard=guard, before_rest=pre_sync)
        # Prune only after every apply succeeded.
        guard()
        prunes = prune(api, stale, o, adopted=inventory.adopted if inventory else frozenset(), claimed_by=claimed_by)
        guard()
        _write_inventory(
            store, o.environment, commit, plan.prepared, prunes, old=inventory, recorded=recorded, live=live
        )
        return replace(_result(o, commit, False, plan, prunes, applied.keys), hooks_ran=due)
    except GitOpsError as exc:
        return SyncResult(o.environment, commit, dry_run, error=str(exc), reason=exc.reason)


def hooks_due(plan: Plan, live: Mapping[ObjectKey, KubeObject], stale: Collection[ObjectKey], o: SyncOptions) -> bool:
    """A commit's hooks run when it writes something: an object to create, configure or prune (as
    Argo CD runs them on a sync of what is out of sync), a hook changed since its last run (when
    that run is kept), or ``force``. A commit that changes nothing runs nothing."""
    if not plan.hooks:
        return False
    if o.force or plan.deferred or (o.prune and stale):
        return True
    to_write = (Action.CREATED, Action.CONFIGURED)
    ordinary = (plan.plans.get(p.key) for p in plan.prepared if p.hook is None)
    if any(x is None or x.action in to_write for x in ordinary):
        return True
    return any(p.key in live and applied_hash(live[p.key]) != p.manifest_hash for p in plan.hooks)


def run_hooks(
    api: ClusterApi, objects: Iterable[DesiredObject], phase: Phase, o: SyncOptions, *, wait: WaitForHooks, guard: Guard
) -> tuple[ObjectKey, ...]:
    """A phase's hooks of a snapshot applied before (post-sync: after its rollout is Current)."""
    return hooks_module.run_hooks(api, prepare_snapshot(api, objects, o), phase, o, wait=wait, guard=guard)


def _pre_sync(
    api: ClusterApi, hooks: Sequence[PreparedObject], o: SyncOptions, wait: WaitForHooks, guard: Guard
) -> Callable[[], None]:
    def run() -> None:
        hooks_module.run_hooks(api, hooks, Phase.PRE_SYNC, o, wait=wait, guard=guard)

    return run


def _nothing() -> None:
    """No pre-sync hooks to run."""


def within_scope(prepared: Sequence[PreparedObject], o: SyncOptions) -> None:
    """Raise ValidationError unless every object is inside the environment's scope."""
    objects = [ScopedObject(p.key, p.source, bool(p.key.namespace)) for p in prepared]
    check_scope(objects, o.boundary, environment=o.environment, agent_namespace=o.agent_namespace)


def observe(
    api: ClusterApi, objects: Iterable[DesiredObject], o: SyncOptions, cache: LabelledLists | None = None
) -> Observation:
    """The snapshot's live objects, one labelled list per kind (``read.read_labelled``; from the
    watch ``cache`` where it is synced)."""
    applied = tuple((p.key, p.manifest) for p in inventoried(api, objects, o))
    live, extra = read_labelled(api, (key for key, _ in applied), o.environment, cache)
    return Observation(applied, live, tuple(extra))


def drift(
    api: ClusterApi, objects: Iterable[DesiredObject], o: SyncOptions, cache: LabelledLists | None = None
) -> tuple[ObjectDrift, ...]:
    """How the live objects moved away from this (applied) snapshot."""
    return drift_in(observe(api, objects, o, cache), o)


def drift_in(seen: Observation, o: SyncOptions) -> tuple[ObjectDrift, ...]:
    return detect_drift(seen.applied, seen.live, policy=o.policy, extra=seen.extra)


def _record_tracked(
    store: StateStore,
    environment: str,
    old: Inventory | None,
    prepared: Sequence[PreparedObject],
    existed: Container[ObjectKey],
) -> Inventory | None:
    """Before the first write: the old inventory and every object of the snapshot, at the old commit.
    Writes nothing when that is what is stored (a pass that writes no new object)."""
    keys = (old.keys if old else frozenset()) | {p.key for p in prepared if p.inventoried}
    if old is None and not keys:
        return None
    tracked = Inventory(old.commit if old else "", keys, adoption(old, keys, existed))
    return store.write_inventory(environment, old, tracked)


def _write_inventory(
    store: StateStore,
    environment: str,
    commit: str,
    prepared: Sequence[PreparedObject],
    prunes: Sequence[ObjectPlan],
    *,
    old: Inventory | None,
    recorded: Inventory | None,
    live: Container[ObjectKey],
) -> None:
    """After pruning: the snapshot's objects and the failed prunes (retried next pass), over what was
    recorded before the first write, keeping whatever another writer added since the pass read it."""
    managed = {p.key for p in prepared if p.inventoried}
    survivors = {p.key for p in prunes if p.action is Action.FAILED}  # retried next pass
    keys = frozenset(managed | survivors)
    exact = Inventory(commit=commit, keys=keys, adopted=adoption(old, keys, live))
    store.write_inventory(environment, recorded, merge_inventories(old, exact, recorded))


def _result(
    o: SyncOptions,
    commit: str,
    dry_run: bool,
    plan: Plan,
    prunes: list[ObjectPlan],
    applied: Sequence[ObjectKey] = (),
) -> SyncResult:
    objects = [plan.plans[p.key] for p in plan.prepared if p.key in plan.plans and p.hook is None] + prunes
    if not dry_run:  # a dry run's evidence is for previews; a pass's result outlives the pass
        objects = [replace(p, live=None, planned=None) if p.live or p.planned else p for p in objects]
    failed = next((p for p in objects if p.action is Action.FAILED), None)
    error = f"{failed.key}: {failed.message}" if failed else ""
    return SyncResult(
        o.environment,
        commit,
        dry_run,
        tuple(objects),
        error=error,
        reason="PruneFailed" if failed else "",
        applied_keys=tuple(applied),
    )
