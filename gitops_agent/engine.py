"""One environment's pass against one cluster: plan, validate, apply in stages, prune.

The orchestration reads as a linear script (``Engine.sync``), one step per line; each step is a
small function over the Kubernetes adapter and the pure core. Guarantees, in order:

1. Nothing is written before the whole snapshot passed a server-side dry-run. The exception is
   forced by the API itself: objects in a namespace the snapshot creates, or of a kind a CRD in
   the snapshot defines, can only be dry-run once that Namespace/CRD exists, so Namespaces and CRDs
   are applied first (and CRDs waited on), then the rest is dry-run, then applied.
2. Nothing is pruned unless every apply succeeded, and nothing is pruned that is not in the
   environment's inventory, still labelled as the environment's, and not protected.
3. A pass that changes nothing writes nothing: not an object, not the inventory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import groupby
from typing import TypeVar

from gitops_agent.adapters.kube import Discovery, KubeClient, ResourceInfo
from gitops_agent.core.diff import changed_paths, covers, normalize, unified_diff
from gitops_agent.core.drift import DriftPolicy, ObjectDrift, detect_drift, fields_to_yield
from gitops_agent.core.inventory import (
    Inventory,
    inventory_configmap,
    inventory_name,
    parse_inventory,
    stale_keys,
)
from gitops_agent.core.ledger import Ledger, ledger_configmap, ledger_name, parse_ledger
from gitops_agent.core.plan import (
    ENV_LABEL,
    MANIFEST_HASH_ANNOTATION,
    PreparedObject,
    apply_order,
    namespace_manifest,
    prepare,
    prune_order,
    prune_verdict,
)
from gitops_agent.errors import ClusterError, GitOpsError, ValidationError
from gitops_agent.model import Action, Change, ChangeSet, DesiredObject, KubeObject, ObjectKey

CRD_ESTABLISHED_TIMEOUT_S = 60.0
_GET_RATHER_THAN_LIST = 3
T = TypeVar("T")


@dataclass(frozen=True)
class EngineOptions:
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
    #: requests in flight at once for dry-runs and applies of one kind
    concurrency: int = 8

    @property
    def policy(self) -> DriftPolicy:
        return self.drift_policy or DriftPolicy(field_manager=self.field_manager)


@dataclass(frozen=True)
class ObjectPlan:
    """What a pass does, or would do, to one object, with the evidence."""

    key: ObjectKey
    action: Action
    paths: tuple[str, ...] = ()
    diff: str = ""
    message: str = ""
    source: str = ""


@dataclass(frozen=True)
class SyncResult:
    environment: str
    commit: str
    dry_run: bool
    objects: tuple[ObjectPlan, ...] = ()
    error: str = ""
    reason: str = ""
    applied_keys: tuple[ObjectKey, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def changes(self) -> ChangeSet:
        return ChangeSet.of(Change(o.key, o.action, o.message) for o in self.objects)

    @property
    def has_changes(self) -> bool:
        return any(o.action in (Action.CREATED, Action.CONFIGURED, Action.PRUNED) for o in self.objects)

    @property
    def wrote(self) -> bool:
        """Did this pass write any object? (False for a dry run.)"""
        return not self.dry_run and self.has_changes


@dataclass(frozen=True)
class Observation:
    """A snapshot's objects as applied, next to what the cluster has now."""

    applied: tuple[tuple[ObjectKey, KubeObject], ...]
    live: dict[ObjectKey, KubeObject]
    extra: tuple[KubeObject, ...]  # carrying the environment's label, not in the snapshot


@dataclass
class _Work:
    """Mutable state of one pass; never leaves this module."""

    prepared: tuple[PreparedObject, ...]
    live: dict[ObjectKey, KubeObject]
    plans: dict[ObjectKey, ObjectPlan] = field(default_factory=dict)
    deferred: list[PreparedObject] = field(default_factory=list)  # dry-run after stage one
    applied: list[ObjectKey] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Engine:
    """Plans and applies snapshots of environments against one cluster."""

    def __init__(self, kube: KubeClient, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.kube = kube
        self._clock = clock
        self._discovery: Discovery | None = None

    # --- the pass -------------------------------------------------------------------------

    def sync(
        self, objects: Iterable[DesiredObject], *, commit: str, options: EngineOptions, dry_run: bool = False
    ) -> SyncResult:
        """Plan, dry-run, apply and prune one environment's snapshot. Never raises GitOpsError."""
        try:
            return self._sync(tuple(objects), commit, options, dry_run)
        except GitOpsError as exc:
            return SyncResult(options.environment, commit, dry_run, error=str(exc), reason=exc.reason)

    def _sync(self, objects: tuple[DesiredObject, ...], commit: str, o: EngineOptions, dry_run: bool) -> SyncResult:
        # Resolve scopes, default namespaces, label and hash every object.
        prepared = self._prepare(objects, o)
        # Read what the environment last applied, and refuse to prune everything by accident.
        inventory = self.read_inventory(o)
        stale = stale_keys(inventory, (p.key for p in prepared))
        self._guard_empty(prepared, inventory, o)
        # Read the live objects once per kind and namespace.
        work = _Work(prepared, self._read_live(prepared))
        self._refuse_foreign(work, o.environment)
        # Compare locally; ask the server (dry-run) only where the local compare can't decide.
        self._plan(work, o)
        if dry_run:
            self._plan_deferred_as_dry(work)
            return self._result(work, o, commit, dry_run, self._plan_prunes(stale, o))
        # Write: Namespaces and CRDs first, then dry-run what waited for them, then the rest.
        try:
            self._apply_stages(work, o)
        except GitOpsError:
            # Whatever did get written must be in the inventory, or a later commit could not prune it.
            self._remember_partial(o, inventory, work)
            raise
        # Prune only after every apply succeeded.
        prunes = self._prune(stale, o) if o.prune else self._skip_prunes(stale, "pruning is off")
        self._write_inventory(o, commit, work, prunes, inventory)
        return self._result(work, o, commit, dry_run, prunes, work.applied)

    # --- steps ----------------------------------------------------------------------------

    def discovery(self, refresh: bool = False) -> Discovery:
        if self._discovery is None or refresh:
            self._discovery = self.kube.discover()
        return self._discovery

    def _prepare(self, objects: tuple[DesiredObject, ...], o: EngineOptions) -> tuple[PreparedObject, ...]:
        discovery = self.discovery()

        def scope_of(group: str, kind: str) -> bool | None:
            info = discovery.lookup(group, kind)
            return None if info is None else info.namespaced

        prepared = prepare(objects, environment=o.environment, default_namespace=o.namespace, scope_of=scope_of)
        if o.create_namespace and not any(p.key == _namespace_key(o.namespace) for p in prepared):
            ns = namespace_manifest(o.namespace, o.environment)
            # Not part of the inventory: pruning an environment must never delete its namespace.
            extra = PreparedObject(_namespace_key(o.namespace), ns, "(environment namespace)", "", inventoried=False)
            prepared = (extra, *prepared)
        return prepared

    def read_inventory(self, o: EngineOptions) -> Inventory | None:
        cm = self.kube.get(self._info("", "ConfigMap"), o.agent_namespace, inventory_name(o.environment))
        return parse_inventory(cm)

    @staticmethod
    def _guard_empty(prepared: tuple[PreparedObject, ...], inventory: Inventory | None, o: EngineOptions) -> None:
        managed = [p for p in prepared if p.inventoried]
        if not managed and inventory and inventory.keys and not o.allow_empty:
            raise ValidationError(
                f"environment {o.environment}: the snapshot renders zero objects; refusing to prune all "
                f"{len(inventory.keys)} objects it manages (set allow_empty: true on the environment if "
                "that is really what you want)"
            )

    def _read_live(self, prepared: Iterable[PreparedObject]) -> dict[ObjectKey, KubeObject]:
        discovery = self.discovery()
        groups: dict[tuple[ResourceInfo, str], None] = {}
        for p in prepared:
            info = discovery.lookup(p.key.group, p.key.kind)
            if info is not None:  # a kind its CRD has yet to define has nothing live
                groups[(info, p.key.namespace)] = None
        live: dict[ObjectKey, KubeObject] = {}
        for info, namespace in groups:
            for obj in self.kube.list(info, namespace=namespace or None):
                live[ObjectKey.of(obj)] = obj
        return live

    @staticmethod
    def _refuse_foreign(work: _Work, environment: str) -> None:
        for p in work.prepared:
            owner = ((work.live.get(p.key) or {}).get("metadata") or {}).get("labels", {}).get(ENV_LABEL)
            if owner and owner != environment:
                raise ValidationError(
                    f"{p.source}: {p.key} is already managed by environment {owner!r}; "
                    "two environments must not manage the same object"
                )

    def _plan(self, work: _Work, o: EngineOptions) -> None:
        new_namespaces = {p.key.name for p in work.prepared if p.key.kind == "Namespace" and p.key not in work.live}
        work.prepared = tuple(self._yield_fields(p, work.live.get(p.key), o) for p in work.prepared)
        to_ask: list[PreparedObject] = []
        for p in work.prepared:
            if _settled(p, work.live.get(p.key), o):
                work.plans[p.key] = ObjectPlan(p.key, Action.UNCHANGED, source=p.source)
            elif self._must_wait(p, new_namespaces):
                work.deferred.append(p)
            else:
                to_ask.append(p)
        self._dry_run_all(work, to_ask, o)

    def _dry_run_all(self, work: _Work, objects: list[PreparedObject], o: EngineOptions) -> None:
        """Dry-runs are independent reads: send them side by side."""
        plans = self._in_parallel(lambda p: self._dry_run_plan(p, work.live.get(p.key), o), objects, o)
        work.plans.update((p.key, plan) for p, plan in zip(objects, plans, strict=True))

    def _in_parallel(
        self, call: Callable[[PreparedObject], T], objects: list[PreparedObject], o: EngineOptions
    ) -> list[T]:
        """Results in order; the first error is raised once every call in flight has ended."""
        if len(objects) <= 1 or o.concurrency <= 1:
            return [call(p) for p in objects]
        with ThreadPoolExecutor(max_workers=o.concurrency) as pool:
            futures = [pool.submit(call, p) for p in objects]
        return [f.result() for f in futures]

    @staticmethod
    def _yield_fields(p: PreparedObject, live: KubeObject | None, o: EngineOptions) -> PreparedObject:
        """Leave out what an expected controller owns now (an HPA's replicas), so we never take it back."""
        manifest = fields_to_yield(p.key, p.manifest, live, o.policy)
        return p if manifest is p.manifest else replace(p, manifest=manifest)

    def _must_wait(self, p: PreparedObject, new_namespaces: set[str]) -> bool:
        if p.first_stage:
            return False
        unknown_kind = self.discovery().lookup(p.key.group, p.key.kind) is None
        return unknown_kind or p.key.namespace in new_namespaces

    def _dry_run_plan(self, p: PreparedObject, live: KubeObject | None, o: EngineOptions) -> ObjectPlan:
        """Ask the server what it would store; compare that with what it stores now."""
        info = self._info_for(p)
        server = self.kube.apply(p.manifest, info, field_manager=o.field_manager, dry_run=True)
        before = normalize(live) if live is not None else None
        after = normalize(server)
        label = str(p.key)
        if before is None:
            return ObjectPlan(p.key, Action.CREATED, (), unified_diff(label, None, after), source=p.source)
        paths = tuple(changed_paths(before, after))
        if not paths:
            return ObjectPlan(p.key, Action.UNCHANGED, source=p.source)
        return ObjectPlan(p.key, Action.CONFIGURED, paths, unified_diff(label, before, after), source=p.source)

    @staticmethod
    def _plan_deferred_as_dry(work: _Work) -> None:
        for p in work.deferred:
            why = "its namespace" if p.key.namespace else "its CustomResourceDefinition"
            work.plans[p.key] = ObjectPlan(
                p.key,
                Action.CREATED,
                diff=unified_diff(str(p.key), None, normalize(p.manifest)),
                message=f"validated by the server once {why} exists",
                source=p.source,
            )

    def _apply_stages(self, work: _Work, o: EngineOptions) -> None:
        first = [p for p in work.prepared if p.first_stage and _needs_apply(work.plans.get(p.key))]
        self._apply_in_order(work, first, o)
        crds = [p for p in first if p.key.kind == "CustomResourceDefinition"]
        if crds:
            self._wait_established(crds)
            self._wait_discovered(crds)
        # What had to wait for a Namespace or CRD is validated now, all of it before any write.
        deferred, work.deferred = work.deferred, []
        self._dry_run_all(work, deferred, o)
        rest = [p for p in work.prepared if not p.first_stage and _needs_apply(work.plans.get(p.key))]
        self._apply_in_order(work, rest, o)

    def _apply_in_order(self, work: _Work, objects: list[PreparedObject], o: EngineOptions) -> None:
        """Kind by kind in apply order (ServiceAccounts before the Deployments that use them);
        objects of the same rank side by side. The first failure stops the rest."""
        for _, group in groupby(objects, key=lambda p: apply_order(p.key)[:3]):
            batch = list(group)
            failures = [f for f in self._in_parallel(lambda p: self._try_apply(work, p, o), batch, o) if f]
            if failures:
                key, exc = failures[0]
                raise ClusterError(f"apply stopped at {key}: {exc}; nothing was pruned") from exc

    def _try_apply(self, work: _Work, p: PreparedObject, o: EngineOptions) -> tuple[ObjectKey, GitOpsError] | None:
        try:
            self._apply_one(p, o)
        except GitOpsError as exc:
            work.plans[p.key] = ObjectPlan(p.key, Action.FAILED, message=str(exc), source=p.source)
            return p.key, exc
        with work.lock:
            work.applied.append(p.key)
        return None

    def _apply_one(self, p: PreparedObject, o: EngineOptions) -> None:
        self.kube.apply(p.manifest, self._info_for(p), field_manager=o.field_manager)

    def _wait_established(self, crds: list[PreparedObject]) -> None:
        info = self._info("apiextensions.k8s.io", "CustomResourceDefinition")
        deadline = self._clock() + CRD_ESTABLISHED_TIMEOUT_S
        pending = {p.key.name for p in crds}
        while pending:
            for name in sorted(pending):
                crd = self.kube.get(info, "", name) or {}
                conditions = (crd.get("status") or {}).get("conditions") or []
                if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                    pending.discard(name)
            if pending and self._clock() > deadline:
                raise ClusterError(
                    f"CustomResourceDefinition/{sorted(pending)[0]}: not Established after "
                    f"{CRD_ESTABLISHED_TIMEOUT_S:.0f}s; its custom resources were not applied"
                )
            if pending:
                time.sleep(0.2)

    def _wait_discovered(self, crds: list[PreparedObject]) -> None:
        """Established is not yet served: discovery can lag a moment behind it, and a custom
        resource looked up before then would read as an unknown kind."""
        specs = [p.manifest.get("spec") or {} for p in crds]
        wanted = {(str(sp.get("group")), str((sp.get("names") or {}).get("kind"))) for sp in specs}
        deadline = self._clock() + CRD_ESTABLISHED_TIMEOUT_S
        while True:
            discovery = self.discovery(refresh=True)
            missing = sorted(gk for gk in wanted if discovery.lookup(*gk) is None)
            if not missing:
                return
            if self._clock() > deadline:
                raise ClusterError(f"{missing[0][1]}.{missing[0][0]}: Established but not served by discovery")
            time.sleep(0.2)

    def _plan_prunes(self, stale: frozenset[ObjectKey], o: EngineOptions) -> list[ObjectPlan]:
        plans = []
        for key in prune_order(stale):
            live = self._get_live(key)
            verdict = prune_verdict(live, o.environment)
            if not o.prune:
                verdict = "pruning is off"
            action = Action.SKIPPED if verdict else Action.PRUNED
            diff = "" if verdict or live is None else unified_diff(str(key), normalize(live), None)
            plans.append(ObjectPlan(key, action, diff=diff, message=verdict or ""))
        return plans

    @staticmethod
    def _skip_prunes(stale: frozenset[ObjectKey], why: str) -> list[ObjectPlan]:
        return [ObjectPlan(k, Action.SKIPPED, message=why) for k in prune_order(stale)]

    def _prune(self, stale: frozenset[ObjectKey], o: EngineOptions) -> list[ObjectPlan]:
        done = []
        for plan in self._plan_prunes(stale, o):
            if plan.action is Action.PRUNED:
                info = self._info(plan.key.group, plan.key.kind)
                try:
                    self.kube.delete(info, plan.key.namespace, plan.key.name, propagation=o.prune_propagation.title())
                except GitOpsError as exc:
                    plan = ObjectPlan(plan.key, Action.FAILED, message=f"prune failed: {exc}")
            done.append(plan)
        return done

    def _write_inventory(
        self, o: EngineOptions, commit: str, work: _Work, prunes: list[ObjectPlan], old: Inventory | None
    ) -> None:
        managed = {p.key for p in work.prepared if p.inventoried}
        survivors = {p.key for p in prunes if p.action is Action.FAILED}  # retried next pass
        self._save_inventory(o, old, Inventory(commit=commit, keys=frozenset(managed | survivors)))

    def _save_inventory(self, o: EngineOptions, old: Inventory | None, new: Inventory) -> None:
        if old == new:
            return
        cm = inventory_configmap(o.environment, o.agent_namespace, new)
        self._ensure_agent_namespace(o)
        self.kube.apply(cm, self._info("", "ConfigMap"), field_manager=o.field_manager)

    def _remember_partial(self, o: EngineOptions, old: Inventory | None, work: _Work) -> None:
        inventoried = {p.key for p in work.prepared if p.inventoried}
        written = {k for k in work.applied if k in inventoried}
        if written:
            keys = (old.keys if old else frozenset()) | written
            self._save_inventory(o, old, Inventory(commit=old.commit if old else "", keys=keys))

    def _ensure_agent_namespace(self, o: EngineOptions) -> None:
        info = self._info("", "Namespace")
        if self.kube.get(info, "", o.agent_namespace) is None:
            ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": o.agent_namespace}}
            self.kube.apply(ns, info, field_manager=o.field_manager)

    def _result(
        self,
        work: _Work,
        o: EngineOptions,
        commit: str,
        dry_run: bool,
        prunes: list[ObjectPlan],
        applied: list[ObjectKey] | None = None,
    ) -> SyncResult:
        objects = [work.plans[p.key] for p in work.prepared if p.key in work.plans] + prunes
        failed = next((p for p in objects if p.action is Action.FAILED), None)
        error = f"{failed.key}: {failed.message}" if failed else ""
        return SyncResult(
            o.environment,
            commit,
            dry_run,
            tuple(objects),
            error=error,
            reason="PruneFailed" if failed else "",
            applied_keys=tuple(applied or ()),
        )

    # --- ledger and drift ------------------------------------------------------------------

    def read_ledger(self, o: EngineOptions) -> Ledger:
        cm = self.kube.get(self._info("", "ConfigMap"), o.agent_namespace, ledger_name(o.environment))
        return parse_ledger(cm)

    def write_ledger(self, o: EngineOptions, ledger: Ledger) -> None:
        self._ensure_agent_namespace(o)
        cm = ledger_configmap(o.environment, o.agent_namespace, ledger)
        self.kube.apply(cm, self._info("", "ConfigMap"), field_manager=o.field_manager)

    def prepared(self, objects: Iterable[DesiredObject], o: EngineOptions) -> tuple[PreparedObject, ...]:
        """The snapshot as the engine applies it (namespaces defaulted, labelled), without the
        objects the agent adds on its own."""
        return tuple(p for p in self._prepare(tuple(objects), o) if p.inventoried)

    def observe(self, objects: Iterable[DesiredObject], o: EngineOptions) -> Observation:
        """The snapshot's live objects, one labelled list per kind (see ``_read_labelled``)."""
        applied = tuple((p.key, p.manifest) for p in self.prepared(objects, o))
        live, extra = self._read_labelled(list(applied), o.environment)
        return Observation(applied, live, tuple(extra))

    def drift(self, objects: Iterable[DesiredObject], o: EngineOptions) -> tuple[ObjectDrift, ...]:
        """How the live objects moved away from this (applied) snapshot."""
        return self.drift_in(self.observe(objects, o), o)

    @staticmethod
    def drift_in(seen: Observation, o: EngineOptions) -> tuple[ObjectDrift, ...]:
        return detect_drift(seen.applied, seen.live, policy=o.policy, extra=seen.extra)

    def _read_labelled(
        self, applied: list[tuple[ObjectKey, KubeObject]], environment: str
    ) -> tuple[dict[ObjectKey, KubeObject], list[KubeObject]]:
        """Live objects carrying the environment's label, per kind across namespaces; objects whose
        label was removed by hand are fetched one by one (rare), so they read as drift, not missing."""
        selector = f"{ENV_LABEL}={environment}"
        wanted = {key for key, _ in applied}
        # another agent's environment may share the name: extras only count in our namespaces
        namespaces = {k.namespace for k in wanted if k.namespace}
        live: dict[ObjectKey, KubeObject] = {}
        extra: list[KubeObject] = []
        infos = {self.discovery().lookup(k.group, k.kind) for k in wanted}
        for info in sorted((i for i in infos if i is not None), key=lambda i: (i.group, i.kind)):
            for obj in self.kube.list(info, label_selector=selector):
                key = ObjectKey.of(obj)
                if key in wanted:
                    live[key] = obj
                elif not key.namespace or key.namespace in namespaces:
                    extra.append(obj)
        for key in sorted(wanted - set(live)):
            found = self._get_live(key)
            if found is not None:
                live[key] = found
        return live, extra

    # --- live reads for rollout health (rollout.LiveReader) -------------------------------

    def get(self, key: ObjectKey) -> KubeObject | None:
        return self._get_live(key)

    def get_many(self, keys: Sequence[ObjectKey]) -> dict[ObjectKey, KubeObject]:
        """Existing objects by key: a list per kind and namespace where several are wanted, a GET
        where only a few are (a list would read the whole namespace for one object)."""
        groups: dict[tuple[str, str, str], list[ObjectKey]] = {}
        for key in keys:
            groups.setdefault((key.group, key.kind, key.namespace), []).append(key)
        found: dict[ObjectKey, KubeObject] = {}
        for (group, kind, namespace), wanted in groups.items():
            info = self.discovery().lookup(group, kind)
            if info is None:
                continue
            if len(wanted) <= _GET_RATHER_THAN_LIST:
                found.update((k, obj) for k in wanted if (obj := self.kube.get(info, namespace, k.name)) is not None)
                continue
            want = set(wanted)
            for obj in self.kube.list(info, namespace=namespace or None):
                if (key := ObjectKey.of(obj)) in want:
                    found[key] = obj
        return found

    def list_pods(self, namespace: str, selector: dict[str, str]) -> list[KubeObject]:
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        return self.kube.list(self._info("", "Pod"), namespace=namespace, label_selector=label_selector or None)

    # --- lookups --------------------------------------------------------------------------

    def _get_live(self, key: ObjectKey) -> KubeObject | None:
        info = self.discovery().lookup(key.group, key.kind)
        if info is None:
            return None  # its kind is gone (CRD deleted): nothing left to prune
        return self.kube.get(info, key.namespace, key.name)

    def _info(self, group: str, kind: str) -> ResourceInfo:
        info = self.discovery().lookup(group, kind)
        if info is None:
            raise ClusterError(f"the API server does not serve {kind} in group {group or 'core'!r}")
        return info

    def _info_for(self, p: PreparedObject) -> ResourceInfo:
        info = self.discovery().for_object(p.manifest)
        if info is None:
            raise ValidationError(f"{p.source}: {p.key}: the API server does not serve {p.manifest.get('apiVersion')}")
        return info


def _settled(p: PreparedObject, live: KubeObject | None, o: EngineOptions) -> bool:
    """Nothing to apply: outside the objects asked for, intent unchanged since the last apply
    (a commit is a snapshot: drift alone is not re-applied), or live already covers the manifest."""
    if live is None:
        return False
    if o.only is not None and p.key not in o.only:
        return True
    applied_hash = ((live.get("metadata") or {}).get("annotations") or {}).get(MANIFEST_HASH_ANNOTATION)
    if not o.force and o.only is None and p.manifest_hash and applied_hash == p.manifest_hash:
        return True
    return covers(p.manifest, live)


def _needs_apply(plan: ObjectPlan | None) -> bool:
    return plan is None or plan.action in (Action.CREATED, Action.CONFIGURED)


def _namespace_key(name: str) -> ObjectKey:
    return ObjectKey("", "Namespace", "", name)
