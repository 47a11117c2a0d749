"""What the commit removed: stale inventory entries, in reverse apply order, deleted, released or
kept as ``core.prune_rules`` decides — deleted only when the agent created them, they are still
labelled for this environment and unprotected, and only the very object seen (a UID precondition)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from gitops_agent.cluster.api import ClusterApi
from gitops_agent.cluster.model import ObjectPlan, SyncOptions
from gitops_agent.core.diff import normalize, unified_diff
from gitops_agent.core.prepare import prune_order
from gitops_agent.core.prune_rules import PruneDecision, PruneStep, decide_prune, release_patch
from gitops_agent.errors import ConflictError, GitOpsError
from gitops_agent.model import Action, ObjectKey

#: the environment whose snapshot now holds an object, if another one does (a hand-over)
ClaimedBy = Callable[[ObjectKey], str | None]


def nobody(key: ObjectKey) -> str | None:
    return None


_ACTIONS = {PruneStep.DELETE: Action.PRUNED, PruneStep.RELEASE: Action.RELEASED, PruneStep.KEEP: Action.SKIPPED}


def plan_prunes(
    api: ClusterApi,
    stale: Iterable[ObjectKey],
    o: SyncOptions,
    *,
    adopted: frozenset[ObjectKey] = frozenset(),
    claimed_by: ClaimedBy = nobody,
) -> list[ObjectPlan]:
    """What pruning would do to each stale entry, with the live object it would delete."""
    return [plan for plan, _ in _decide(api, stale, o, adopted, claimed_by)]


def prune(
    api: ClusterApi,
    stale: Iterable[ObjectKey],
    o: SyncOptions,
    *,
    adopted: frozenset[ObjectKey] = frozenset(),
    claimed_by: ClaimedBy = nobody,
) -> list[ObjectPlan]:
    """Deletes or releases what may be; a failed write is a FAILED plan (the entry stays in the
    inventory and is retried next pass), never an exception that stops the others."""
    done = []
    for plan, decision in _decide(api, stale, o, adopted, claimed_by):
        try:
            _carry_out(api, plan.key, decision, o)
        except ConflictError:
            plan = ObjectPlan(plan.key, Action.SKIPPED, message="recreated by someone else since it was read: left")
        except GitOpsError as exc:
            plan = ObjectPlan(plan.key, Action.FAILED, message=f"prune failed: {exc}")
        done.append(plan)
    return done


def _decide(
    api: ClusterApi, stale: Iterable[ObjectKey], o: SyncOptions, adopted: frozenset[ObjectKey], claimed_by: ClaimedBy
) -> list[tuple[ObjectPlan, PruneDecision]]:
    out = []
    for key in prune_order(stale):
        if not o.prune:
            out.append((ObjectPlan(key, Action.SKIPPED, message="pruning is off"), PruneDecision(PruneStep.KEEP)))
            continue
        live = api.get(key)
        owner = claimed_by(key) if live is not None else None
        decision = decide_prune(
            key, live, o.environment, adopted=key in adopted, allow_kinds=o.prune_allow, claimed_by=owner
        )
        deleted = live is not None and decision.step is PruneStep.DELETE
        diff = unified_diff(str(key), normalize(live), None) if deleted and live is not None else ""
        out.append((ObjectPlan(key, _ACTIONS[decision.step], diff=diff, message=decision.reason), decision))
    return out


def _carry_out(api: ClusterApi, key: ObjectKey, decision: PruneDecision, o: SyncOptions) -> None:
    if decision.step is PruneStep.KEEP:
        return
    info = api.resource(key.group, key.kind)
    if decision.step is PruneStep.RELEASE:
        api.kube.merge_patch(info, key.namespace, key.name, release_patch(), field_manager=o.field_manager)
        return
    api.kube.delete(info, key.namespace, key.name, propagation=o.prune_propagation.title(), uid=decision.uid)
