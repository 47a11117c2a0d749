"""What an apply would change, object by object: decided locally where the manifest's hash or the
live object already answers, else by a server-side dry-run compared with what the server stores now.
Objects that can be validated only once their Namespace or CRD exists are deferred."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from gitops_agent.cluster.api import ClusterApi
from gitops_agent.cluster.model import ObjectPlan, SyncOptions
from gitops_agent.cluster.parallel import in_parallel
from gitops_agent.core.diff import changed_paths, normalize, unified_diff
from gitops_agent.core.drift import fields_to_yield
from gitops_agent.core.prepare import PreparedObject
from gitops_agent.core.sync_rules import new_namespaces, settled, waits_for_first_stage
from gitops_agent.model import Action, KubeObject, ObjectKey


@dataclass(frozen=True)
class Plan:
    #: the snapshot as it will be applied (fields an expected controller owns left out)
    prepared: tuple[PreparedObject, ...]
    plans: dict[ObjectKey, ObjectPlan]
    #: validated by the server only after stage one (their Namespace or CRD) is applied
    deferred: tuple[PreparedObject, ...]

    def to_apply(self, *, first_stage: bool) -> list[PreparedObject]:
        """What is applied with the rest (hooks run in their phase: ``cluster.hooks``)."""
        return [
            p
            for p in self.prepared
            if p.first_stage == first_stage and p.hook is None and _needs_apply(self.plans.get(p.key))
        ]

    @property
    def hooks(self) -> tuple[PreparedObject, ...]:
        return tuple(p for p in self.prepared if p.hook is not None)


def plan_sync(
    api: ClusterApi,
    prepared: Sequence[PreparedObject],
    live: Mapping[ObjectKey, KubeObject],
    o: SyncOptions,
    *,
    diffs: bool = True,
) -> Plan:
    """``diffs``: render each change's diff and keep its evidence (a dry run's, for people and
    previews); a pass that applies needs only what changes."""
    fresh = new_namespaces(prepared, live)
    yielded = tuple(_yield_fields(p, live.get(p.key), o) for p in prepared)
    plans: dict[ObjectKey, ObjectPlan] = {}
    deferred: list[PreparedObject] = []
    to_ask: list[PreparedObject] = []
    anew: list[PreparedObject] = []
    for p in yielded:
        if p.hook is not None and p.hook.recreated and p.key in live:
            anew.append(p)  # deleted before it is created again: validated as a new object
        elif settled(p, live.get(p.key), only=o.only, force=o.force):
            plans[p.key] = ObjectPlan(p.key, Action.UNCHANGED, source=p.source)
        elif waits_for_first_stage(
            p, kind_served=api.lookup(p.key.group, p.key.kind) is not None, new_namespaces=fresh
        ):
            deferred.append(p)
        else:
            to_ask.append(p)
    plans.update(dry_run_plans(api, to_ask, live, o, diffs=diffs))
    plans.update(in_parallel(lambda p: dry_run_as_new(api, p, o), anew, concurrency=o.concurrency))
    return Plan(yielded, plans, tuple(deferred))


def dry_run_as_new(api: ClusterApi, p: PreparedObject, o: SyncOptions) -> tuple[ObjectKey, ObjectPlan]:
    """A hook whose previous run is deleted before it is created again: a dry-run apply over the
    previous run would refuse its changes (a Job's template is immutable), so it is dry-run as a
    create under a generated name (at most 63 characters, as Job names must be)."""
    manifest = json.loads(json.dumps(p.manifest))
    meta = manifest["metadata"]
    meta["generateName"] = f"{str(meta.pop('name'))[:57]}-"
    server = api.kube.create(manifest, api.resource_for(p), field_manager=o.field_manager, dry_run=True)
    after = normalize({**server, "metadata": {**server.get("metadata", {}), "name": p.key.name}})
    return p.key, ObjectPlan(p.key, Action.CREATED, (), unified_diff(str(p.key), None, after), source=p.source)


def dry_run_plans(
    api: ClusterApi,
    objects: Sequence[PreparedObject],
    live: Mapping[ObjectKey, KubeObject],
    o: SyncOptions,
    *,
    diffs: bool = True,
) -> dict[ObjectKey, ObjectPlan]:
    """Dry-runs are independent reads: send them side by side."""
    plans = in_parallel(
        lambda p: dry_run_plan(api, p, live.get(p.key), o, diffs=diffs), objects, concurrency=o.concurrency
    )
    return {p.key: plan for p, plan in zip(objects, plans, strict=True)}


def dry_run_plan(
    api: ClusterApi, p: PreparedObject, live: KubeObject | None, o: SyncOptions, *, diffs: bool = True
) -> ObjectPlan:
    """Ask the server what it would store; compare that with what it stores now. Without ``diffs``
    a new object costs no more than the request (a first apply of thousands renders no YAML)."""
    server = api.kube.apply(p.manifest, api.resource_for(p), field_manager=o.field_manager, dry_run=True)
    label = str(p.key)
    if live is None and not diffs:
        return ObjectPlan(p.key, Action.CREATED, source=p.source)
    before = normalize(live) if live is not None else None
    after = normalize(server)
    if before is None:
        return ObjectPlan(p.key, Action.CREATED, (), unified_diff(label, None, after), source=p.source, planned=after)
    paths = tuple(changed_paths(before, after))
    if not paths:
        return ObjectPlan(p.key, Action.UNCHANGED, source=p.source)
    if not diffs:
        return ObjectPlan(p.key, Action.CONFIGURED, paths, source=p.source)
    diff = unified_diff(label, before, after)
    return ObjectPlan(p.key, Action.CONFIGURED, paths, diff, source=p.source, live=before, planned=after)


def deferred_as_created(deferred: Sequence[PreparedObject]) -> dict[ObjectKey, ObjectPlan]:
    """A dry run's word for what it could not validate: created, once its Namespace or CRD exists."""
    plans = {}
    for p in deferred:
        why = "its namespace" if p.key.namespace else "its CustomResourceDefinition"
        plans[p.key] = ObjectPlan(
            p.key,
            Action.CREATED,
            diff=unified_diff(str(p.key), None, normalize(p.manifest)),
            message=f"validated by the server once {why} exists",
            source=p.source,
        )
    return plans


def _yield_fields(p: PreparedObject, live: KubeObject | None, o: SyncOptions) -> PreparedObject:
    """Leave out what an expected controller owns now (an HPA's replicas), so we never take it back."""
    manifest = fields_to_yield(p.key, p.manifest, live, o.policy)
    return p if manifest is p.manifest else replace(p, manifest=manifest)


def _needs_apply(plan: ObjectPlan | None) -> bool:
    return plan is None or plan.action in (Action.CREATED, Action.CONFIGURED)
