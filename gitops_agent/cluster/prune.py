"""Deleting what the commit removed: only stale inventory entries, in reverse apply order, and only
those still labelled for this environment and not protected (``core.prepare.prune_verdict``)."""

from __future__ import annotations

from collections.abc import Iterable

from gitops_agent.cluster.api import ClusterApi
from gitops_agent.cluster.model import ObjectPlan, SyncOptions
from gitops_agent.core.diff import normalize, unified_diff
from gitops_agent.core.prepare import prune_order, prune_verdict
from gitops_agent.errors import GitOpsError
from gitops_agent.model import Action, ObjectKey


def plan_prunes(api: ClusterApi, stale: Iterable[ObjectKey], o: SyncOptions) -> list[ObjectPlan]:
    """What pruning would do to each stale entry, with the live object it would delete."""
    plans = []
    for key in prune_order(stale):
        live = api.get(key)
        verdict = "pruning is off" if not o.prune else prune_verdict(live, o.environment)
        action = Action.SKIPPED if verdict else Action.PRUNED
        diff = "" if verdict or live is None else unified_diff(str(key), normalize(live), None)
        plans.append(ObjectPlan(key, action, diff=diff, message=verdict or ""))
    return plans


def prune(api: ClusterApi, stale: Iterable[ObjectKey], o: SyncOptions) -> list[ObjectPlan]:
    """Deletes what may be deleted; a failed delete is a FAILED plan (the entry stays in the
    inventory and is retried next pass), never an exception that stops the other deletes."""
    if not o.prune:
        return [ObjectPlan(k, Action.SKIPPED, message="pruning is off") for k in prune_order(stale)]
    done = []
    for plan in plan_prunes(api, stale, o):
        if plan.action is Action.PRUNED:
            info = api.resource(plan.key.group, plan.key.kind)
            try:
                api.kube.delete(info, plan.key.namespace, plan.key.name, propagation=o.prune_propagation.title())
            except GitOpsError as exc:
                plan = ObjectPlan(plan.key, Action.FAILED, message=f"prune failed: {exc}")
        done.append(plan)
    return done
