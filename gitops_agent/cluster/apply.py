"""Writes, in stages: Namespaces and CRDs first (CRDs waited on), then what could be validated only
once they existed is dry-run — all of it before any further write — then the rest. Kind by kind in
apply order (ServiceAccounts before the Deployments that use them); objects of one kind side by side.
The first failure stops the rest. Before each batch the caller's ``guard`` may stop the pass
(the environment's lock, ``cluster.lock``: a pass that lost it writes nothing more)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import groupby

from gitops_agent.cluster.api import ClusterApi
from gitops_agent.cluster.model import SyncOptions
from gitops_agent.cluster.parallel import in_parallel
from gitops_agent.cluster.plan import Plan, dry_run_plans
from gitops_agent.cluster.wait import wait_for_crds
from gitops_agent.core.prepare import PreparedObject, apply_order
from gitops_agent.errors import ClusterError, GitOpsError
from gitops_agent.model import KubeObject, ObjectKey

WaitForCrds = Callable[[ClusterApi, Sequence[PreparedObject]], None]
#: called before each write batch; raises (``cluster.lock.LockLostError``) when the pass must stop
Guard = Callable[[], None]


def unguarded() -> None:
    """No lock to check: the cluster verbs called on their own (tests, tools)."""


@dataclass
class Applied:
    """What got written so far, kept even when a later write fails (it must reach the inventory)."""

    keys: list[ObjectKey] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, key: ObjectKey) -> None:
        with self._lock:
            self.keys.append(key)


def apply_in_stages(
    api: ClusterApi,
    plan: Plan,
    live: Mapping[ObjectKey, KubeObject],
    o: SyncOptions,
    applied: Applied,
    *,
    wait: WaitForCrds = wait_for_crds,
    guard: Guard = unguarded,
    before_rest: Callable[[], None] = lambda: None,
) -> Plan:
    """Applies the plan; returns it completed with the deferred objects' dry-runs. Raises
    ClusterError at the first failed write (``applied`` then says what was written), or what
    ``guard`` raises before a batch. ``before_rest`` (the pre-sync hooks) runs once every object
    is validated, before the second stage is written."""
    first = plan.to_apply(first_stage=True)
    apply_in_order(api, first, o, applied, guard=guard)
    wait(api, [p for p in first if p.key.kind == "CustomResourceDefinition"])
    plans = {**plan.plans, **dry_run_plans(api, plan.deferred, live, o, diffs=False)}  # a pass's: no diff shown
    plan = replace(plan, plans=plans, deferred=())
    before_rest()
    apply_in_order(api, plan.to_apply(first_stage=False), o, applied, guard=guard)
    return plan


def apply_in_order(
    api: ClusterApi, objects: Sequence[PreparedObject], o: SyncOptions, applied: Applied, *, guard: Guard = unguarded
) -> None:
    for _, group in groupby(objects, key=lambda p: apply_order(p.key)[:3]):
        batch = list(group)
        guard()  # still the environment's one writer? (it may have waited minutes for CRDs)
        failures = [
            f for f in in_parallel(lambda p: _try_apply(api, p, o, applied), batch, concurrency=o.concurrency) if f
        ]
        if failures:
            key, exc = failures[0]
            raise ClusterError(f"apply stopped at {key}: {exc}; nothing was pruned") from exc


def _try_apply(
    api: ClusterApi, p: PreparedObject, o: SyncOptions, applied: Applied
) -> tuple[ObjectKey, GitOpsError] | None:
    try:
        api.kube.apply(p.manifest, api.resource_for(p), field_manager=o.field_manager)
    except GitOpsError as exc:
        return p.key, exc
    applied.add(p.key)
    return None
