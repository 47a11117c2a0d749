"""One environment's pass, as one script: which commit, then plan / apply / wait / check, then
follow the rollout, explain drift, repair where the policy says so.

Every entry point goes through ``Reconciler.reconcile``: the daemon, ``sync``, ``diff``,
``rollback --now`` and previews. So listeners (GitHub statuses, chat, metrics) hear of every apply,
and the ledger has one writer. The decisions are ``core.pass_rules``; this module sequences them
over the cluster verbs (``gitops_agent.cluster``) and the snapshots.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from gitops_agent import __version__
from gitops_agent.cluster import ClusterApi, SyncOptions, SyncResult, sync
from gitops_agent.cluster.clients import Clusters
from gitops_agent.cluster.hooks import HookFailedError, WaitForHooks
from gitops_agent.cluster.lock import EnvironmentLock, LockedError, LockLostError, Locks
from gitops_agent.cluster.prepare import inventoried
from gitops_agent.cluster.read import LiveReads
from gitops_agent.cluster.state import StateStore
from gitops_agent.cluster.sync import drift, run_hooks
from gitops_agent.cluster.watch import WatchCache
from gitops_agent.config import Config, EnvironmentConfig
from gitops_agent.core.drift import DriftPolicy, ObjectDrift
from gitops_agent.core.health_custom import by_kind
from gitops_agent.core.hooks import Phase, in_phase
from gitops_agent.core.images import snapshot_images
from gitops_agent.core.ledger import APPLIED, FAILED, Ledger, LedgerEntry, clipped, ledger_time, parse_ledger_time
from gitops_agent.core.pass_rules import (
    PLANNED,
    UP_TO_DATE,
    WAITING,
    Step,
    applied_rollout,
    apply_outcome,
    held_commit,
    ledger_entry,
    next_step,
    rollout_health,
    rollout_record,
    to_follow,
    to_repair,
)
from gitops_agent.errors import GitOpsError
from gitops_agent.handover import Handover
from gitops_agent.model import DesiredObject, Health, HealthStatus, ObjectHealth, ObjectKey
from gitops_agent.rollout import RolloutProgress, default_timeout, follow
from gitops_agent.snapshots import Snapshots

log = logging.getLogger(__name__)

#: passes rendering or syncing at once (the daemon runs a pass per environment on a thread of its
#: own): hundreds of environments passed together would otherwise contend for the interpreter and
#: the API server until their requests time out; following a rollout and waiting are not counted
BUSY_PASSES = 8


@dataclass(frozen=True)
class PassRequest:
    dry_run: bool = False
    #: a person asked (``sync --env``): a ``manual`` environment applies its new commit
    explicit: bool = False
    #: re-apply the commit even if it was applied before
    force: bool = False
    #: this commit rather than the branch's head (``rollback --now``, previews of a pull request)
    commit: str | None = None
    #: ``rollback --now``: the branch commit whose snapshot ``commit`` replaces; recorded as a hold
    rolled_back_from: str = ""
    #: the fetch already failed: the pass fails with it
    fetch_error: GitOpsError | None = None
    #: the person who approved this apply (a GitHub login): recorded in the ledger
    approved_by: str = ""


@dataclass(frozen=True)
class PassResult:
    environment: str
    commit: str
    outcome: str  # core.pass_rules.OUTCOMES
    sync: SyncResult | None = None
    drift: tuple[ObjectDrift, ...] = ()
    repaired: SyncResult | None = None
    #: the rollout of ``commit``: after an apply, as followed; between commits, as the ledger keeps it
    #: (Current, Failed, or InProgress when the agent stopped following); None: not followed
    health: Health | None = None
    #: the ledger entry running after the pass (what the environment runs and how its apply went)
    running: LedgerEntry | None = None
    error: str = ""
    reason: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @classmethod
    def of_sync(cls, result: SyncResult, outcome: str) -> PassResult:
        return cls(result.environment, result.commit, outcome, sync=result, error=result.error, reason=result.reason)


class PassListener(Protocol):
    """Told about each pass: GitHub statuses, chat, metrics. A listener that raises is logged and
    ignored: reporting never blocks or breaks reconciliation."""

    def applying(self, environment: str, commit: str) -> None: ...

    def finished(self, result: PassResult) -> None: ...


@dataclass(frozen=True)
class FollowSettings:
    #: after an apply, follow the rollout to the end (``sync --no-wait`` turns it off)
    enabled: bool = True
    poll_s: float = 2.0
    #: how long to follow before calling the rollout failed (``sync --timeout``); None: the
    #: environment's ``health_timeout``, else the longest progress deadline plus a margin
    timeout_s: float | None = None
    #: told after every look at the rollout (``sync`` prints progress lines from it)
    progress: Callable[[str, RolloutProgress], None] | None = None


def sync_options(config: Config, env: EnvironmentConfig, **overrides: Any) -> SyncOptions:
    """The cluster verbs' options for an environment of the config."""
    base = SyncOptions(
        environment=env.name,
        namespace=env.namespace,
        field_manager=config.agent.field_manager,
        agent_namespace=config.agent.namespace,
        create_namespace=env.create_namespace,
        prune=env.prune,
        allow_empty=env.allow_empty,
        prune_propagation=env.prune_propagation,
        scope=env.boundary,
        prune_allow=env.prune_allow,
        drift_policy=DriftPolicy(
            field_manager=config.agent.field_manager,
            expected_managers=env.expected_managers,
            ignore=env.ignore,
        ),
    )
    return replace(base, **overrides)


def state_store(config: Config, api: ClusterApi) -> StateStore:
    return StateStore(api, namespace=config.agent.namespace, field_manager=config.agent.field_manager)


class Reconciler:
    def __init__(
        self,
        config: Config,
        snapshots: Snapshots,
        clusters: Clusters,
        *,
        locks: Locks,
        listeners: Sequence[PassListener] = (),
        follow_settings: FollowSettings | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.snapshots = snapshots
        self.clusters = clusters
        #: one writer per environment: the lock a pass holds while it may write (``cluster.lock``)
        self.locks = locks
        self.listeners = tuple(listeners)
        self.follow_settings = follow_settings or FollowSettings()
        #: set on shutdown: a pass stops following its rollout (it never stops between writes)
        self.stopping = stopping or threading.Event()
        #: the daemon's watch cache (``cluster.watch``): drift checks read it where it is synced
        self.watches: WatchCache | None = None
        self._busy = threading.BoundedSemaphore(BUSY_PASSES)

    def reconcile(self, env: EnvironmentConfig, request: PassRequest | None = None) -> PassResult:
        """One environment's pass. Never raises GitOpsError: a failure is the pass's result."""
        request = request or PassRequest()
        commit = request.commit or ""
        try:
            if request.fetch_error is not None:
                raise request.fetch_error
            commit = commit or self.snapshots.target_commit(env)
            result = self._reconcile(env, commit, request)
        except GitOpsError as exc:
            result = PassResult(env.name, commit, FAILED, error=str(exc), reason=exc.reason)
        # A pass locked out by another writer says nothing about the commit: that writer reports it.
        if not request.dry_run and result.reason != LockedError.reason:
            self._tell(lambda listener: listener.finished(result))
        return result

    def _reconcile(self, env: EnvironmentConfig, commit: str, request: PassRequest) -> PassResult:
        api = self.clusters.api(env)  # as the environment's ServiceAccount, if it has one
        store = state_store(self.config, self.clusters.agent_api(env))  # the agent's own records
        options = sync_options(self.config, env, force=request.force)
        if request.dry_run:  # plan the whole snapshot against the cluster; write nothing
            objects = self.snapshots.snapshot(env, commit)
            result = sync(api, objects, commit=commit, options=options, dry_run=True, state=store)
            return PassResult.of_sync(result, PLANNED)
        # One writer per environment: a pass about to write holds the environment's lock (waiting
        # for another holder, or failing "Locked"), then decides again under it: another pass may
        # have applied or rolled back meanwhile. A pass with nothing to write takes no lock.
        # The pass holds a busy slot from its render to its sync's last write, not while it follows.
        with self.locks.of(store.api.kube, env.name) as lock, _Slot(self._busy) as busy:
            target = commit
            # the first look may read the watched ledger; a decision to write is re-made live
            ledger, commit, objects, step = self._decide(env, store, target, request, cached=True)
            if step is Step.APPLY:
                lock.acquire(commit)
                ledger, commit, objects, step = self._decide(env, store, target, request)
            if step is not Step.APPLY:
                busy.release()
            if step is Step.WAIT:
                waiting = self._drift_since_last(env, api, ledger)
                running = ledger.last_success()
                return PassResult(
                    env.name, commit, WAITING, drift=waiting, running=running, message="waiting for a manual sync"
                )
            if step is Step.APPLY:
                outcome = self._apply(env, api, store, ledger, commit, objects, request, lock, busy)
                if not outcome.ok:
                    return outcome
            else:
                outcome = self._pick_up(env, api, store, ledger, commit, objects, lock)
            return self._check(env, api, store, commit, objects, outcome, lock)

    def _decide(
        self, env: EnvironmentConfig, store: StateStore, target: str, request: PassRequest, *, cached: bool = False
    ) -> tuple[Ledger, str, tuple[DesiredObject, ...], Step]:
        """The ledger as it is now (``cached``: as the watch cache last saw it), the commit to run
        (``target``, or the one a rollback holds), its snapshot, and what the pass does with it."""
        ledger = store.read_ledger(env.name, self.watches if cached else None)
        commit = target
        if request.commit is None:  # `rollback --now` may hold the environment at an older commit
            commit = held_commit(ledger, target, lambda then: self.snapshots.same_intent(env, target, then))
        objects = self.snapshots.snapshot(env, commit)
        step = next_step(
            current=ledger.is_current(commit),
            policy=env.policy,
            explicit=request.explicit,
            force=request.force,
            rollback=bool(request.rolled_back_from),
        )
        return ledger, commit, objects, step

    def _apply(
        self,
        env: EnvironmentConfig,
        api: ClusterApi,
        store: StateStore,
        ledger: Ledger,
        commit: str,
        objects: tuple[DesiredObject, ...],
        request: PassRequest,
        lock: EnvironmentLock,
        busy: _Slot,
    ) -> PassResult:
        self._tell(lambda listener: listener.applying(env.name, commit))
        options = sync_options(self.config, env, force=request.force)
        handover = self._handover(env, api)
        result = sync(
            api,
            objects,
            commit=commit,
            options=options,
            state=store,
            guard=lock.guard,
            claimed_by=handover.claimed_by,
            may_take_over=handover.may_take_over,
            hooks=self._hook_wait(env, api, objects),
        )
        busy.release()  # written: what follows is waiting
        result = _still_held(result, lock)
        if result.reason == LockLostError.reason:  # cut short: the new holder may have written since
            ledger = store.read_ledger(env.name)
        outcome = apply_outcome(ok=result.ok, wrote=result.wrote)
        hook_failed = result.reason == HookFailedError.reason
        rollout, rollout_message = applied_rollout(ok=result.ok, hook_failed=hook_failed, error=result.error)
        entry = ledger_entry(
            ledger,
            commit=commit,
            outcome=outcome,
            summary=result.changes.summary(),
            message=result.error,
            time=ledger_time(datetime.now(UTC)),
            agent_version=__version__,
            forced=request.force,
            rolled_back_from=request.rolled_back_from,
            approved_by=request.approved_by,
            rollout=rollout,
            rollout_message=rollout_message,
            charts=self.snapshots.charts(env, commit),  # provenance: what the snapshot was rendered from
            applied_by=self.locks.identity,  # which replica: sharded, each environment has one
            images=snapshot_images(o.manifest for o in objects),  # what the commit carried, for /api/v1/status
        )
        if entry is not None:
            ledger = store.write_ledger(env.name, ledger.record(entry))
        lock.release()  # written: following the rollout writes nothing, and must not hold up a rollback
        if not result.ok:
            failed = Health(HealthStatus.FAILED, result.error) if hook_failed else None
            return replace(PassResult.of_sync(result, outcome), health=failed)
        # "Applied" is not "working": follow the snapshot until it is healthy, failed or late, and
        # keep how far it got in the ledger, so an agent restarted meanwhile picks it up again.
        running = entry or ledger.last_success()
        health = self._follow(env, api, objects, elapsed_before_s=0.0)
        if result.hooks_ran:
            health = self._post_sync(env, api, store, commit, objects, lock, health)
        ledger, running = self._record_rollout(env, store, ledger, running, health)
        return replace(PassResult.of_sync(result, outcome), health=health, running=running)

    def _pick_up(
        self,
        env: EnvironmentConfig,
        api: ClusterApi,
        store: StateStore,
        ledger: Ledger,
        commit: str,
        objects: tuple[DesiredObject, ...],
        lock: EnvironmentLock,
    ) -> PassResult:
        """Between commits: the running commit's rollout as the ledger keeps it, followed to its end
        first when nobody did (a restart or leader change mid-rollout, ``sync --no-wait``), and then
        its post-sync hooks run (an apply that wrote: its hooks were due)."""
        running = ledger.last_success()
        if to_follow(running, commit) and running is not None:
            health = self._follow(env, api, objects, elapsed_before_s=_age_s(running.time))
            if running.result == APPLIED:
                health = self._post_sync(env, api, store, commit, objects, lock, health)
            if health is not None:
                ledger, running = self._record_rollout(env, store, ledger, running, health)
        return PassResult(env.name, commit, UP_TO_DATE, health=rollout_health(running), running=running)

    def _record_rollout(
        self,
        env: EnvironmentConfig,
        store: StateStore,
        ledger: Ledger,
        entry: LedgerEntry | None,
        health: Health | None,
    ) -> tuple[Ledger, LedgerEntry | None]:
        """The rollout's state written on its ledger entry (a conditional write: it lands on the
        entry even when another pass recorded a newer one meanwhile). A failed write is logged: the
        next pass follows the rollout again."""
        if entry is None:
            return ledger, entry
        status, message = rollout_record(health)
        updated = ledger.with_rollout(entry, status, message)
        if updated is ledger:
            return ledger, entry
        try:
            ledger = store.write_ledger(env.name, updated)
        except GitOpsError as exc:
            log.warning("%s: the rollout's state was not recorded (the next pass follows it again): %s", env.name, exc)
            return ledger, entry
        return ledger, clipped(replace(entry, rollout=status, rollout_message=message))

    def _check(
        self,
        env: EnvironmentConfig,
        api: ClusterApi,
        store: StateStore,
        commit: str,
        objects: tuple[DesiredObject, ...],
        outcome: PassResult,
        lock: EnvironmentLock,
    ) -> PassResult:
        """Between commits: explain drift, and repair it only where the policy says so."""
        options = sync_options(self.config, env)
        found = drift(api, objects, options, self.watches)
        repair = to_repair(found, env.policy)
        if repair and self._may_repair(env, store, commit, lock):
            only = sync_options(self.config, env, only=repair, prune=False)
            repaired = sync(api, objects, commit=commit, options=only, state=store, guard=lock.guard)
            outcome = replace(outcome, repaired=repaired)
            found = drift(api, objects, options)
        return replace(outcome, drift=found)

    def _may_repair(self, env: EnvironmentConfig, store: StateStore, commit: str, lock: EnvironmentLock) -> bool:
        """A repair writes: it holds the lock, and only while ``commit`` is still the one applied
        (not one another pass replaced meanwhile). When another pass holds the lock, the next pass
        repairs."""
        try:
            lock.acquire(commit)
        except LockedError as exc:
            log.info("drift not repaired this pass: %s", exc)
            return False
        return store.read_ledger(env.name).is_current(commit)

    def _post_sync(
        self,
        env: EnvironmentConfig,
        api: ClusterApi,
        store: StateStore,
        commit: str,
        objects: tuple[DesiredObject, ...],
        lock: EnvironmentLock,
        health: Health | None,
    ) -> Health | None:
        """Once the rollout is Current, the post-sync hooks: they write, so under the lock, and only
        while ``commit`` is still the one applied. The rollout is Current once they succeeded; a
        failed one makes it Failed, naming it; locked out, it stays InProgress (the next pass runs them)."""
        if health is None or health.status is not HealthStatus.CURRENT:
            return health
        if not in_phase((o.manifest for o in objects), Phase.POST_SYNC):
            return health
        options = sync_options(self.config, env)
        try:
            lock.acquire(commit)
        except LockedError as exc:
            return Health(HealthStatus.IN_PROGRESS, f"post-sync hooks not run yet: {exc}")
        try:
            if not store.read_ledger(env.name).is_current(commit):
                return health  # another pass applied since: its hooks are its own
            wait = self._hook_wait(env, api, objects)
            run_hooks(api, objects, Phase.POST_SYNC, options, wait=wait, guard=lock.guard)
        except GitOpsError as exc:
            message = str(exc) if isinstance(exc, HookFailedError) else f"post-sync hooks: {exc}"
            return Health(HealthStatus.FAILED, message)
        finally:
            lock.release()
        return health

    def _hook_wait(self, env: EnvironmentConfig, api: ClusterApi, objects: tuple[DesiredObject, ...]) -> WaitForHooks:
        """Hooks are followed as a rollout is (``sync --no-wait`` too: what runs after them waits
        for them), within the environment's rollout timeout."""
        settings = self.follow_settings
        timeout = settings.timeout_s or env.health_timeout_s or default_timeout(o.manifest for o in objects)

        def wait(keys: Sequence[ObjectKey]) -> tuple[Health, tuple[ObjectHealth, ...]]:
            rules = by_kind(self.config.health_rules)
            seen = follow(
                list(keys), LiveReads(api), timeout_s=timeout, poll_s=settings.poll_s, stop=self.stopping, rules=rules
            )
            return seen.health, seen.objects

        return wait

    def _follow(
        self, env: EnvironmentConfig, api: ClusterApi, objects: tuple[DesiredObject, ...], *, elapsed_before_s: float
    ) -> Health | None:
        """The snapshot's rollout (every object: a commit is healthy when all it holds is, not only
        what it changed), followed until Current, Failed or ``elapsed_before_s`` plus this pass's
        wait reaches the timeout. None when following is off (``sync --no-wait``)."""
        if not self.follow_settings.enabled:
            return None
        keys = [p.key for p in inventoried(api, objects, sync_options(self.config, env))]
        settings = self.follow_settings
        timeout = settings.timeout_s or env.health_timeout_s or default_timeout(o.manifest for o in objects)
        tell = settings.progress
        progress = None if tell is None else (lambda seen: tell(env.name, seen))
        reads = LiveReads(api, self.watches, env.name)  # its synced watches hold workloads' status
        return follow(
            keys,
            reads,
            timeout_s=timeout,
            poll_s=settings.poll_s,
            stop=self.stopping,
            progress=progress,
            elapsed_before_s=elapsed_before_s,
            rules=by_kind(self.config.health_rules),
        ).health

    def _handover(self, env: EnvironmentConfig, api: ClusterApi) -> Handover:
        def scope_of(group: str, kind: str) -> bool | None:
            info = api.lookup(group, kind)
            return None if info is None else info.namespaced

        return Handover(self.config, self.snapshots, env, scope_of)

    def _drift_since_last(self, env: EnvironmentConfig, api: ClusterApi, ledger: Ledger) -> tuple[ObjectDrift, ...]:
        last = ledger.last_success()
        if last is None:
            return ()
        return drift(api, self.snapshots.snapshot(env, last.commit), sync_options(self.config, env), self.watches)

    def _tell(self, event: Callable[[PassListener], None]) -> None:
        for listener in self.listeners:
            try:
                event(listener)
            except Exception:  # a listener must never break a pass
                log.exception("a pass listener (%s) failed; reconciliation goes on", type(listener).__name__)


class _Slot:
    """One of the ``BUSY_PASSES`` slots, held from ``with`` until ``release`` (or the block's end)."""

    def __init__(self, slots: threading.BoundedSemaphore) -> None:
        self._slots, self._held = slots, False

    def __enter__(self) -> _Slot:
        self._slots.acquire()
        self._held = True
        return self

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _age_s(time: str) -> float:
    """Seconds since a ledger time; 0 when it cannot be read."""
    then = parse_ledger_time(time)
    return 0.0 if then is None else max(0.0, (datetime.now(UTC) - then).total_seconds())


def _still_held(result: SyncResult, lock: EnvironmentLock) -> SyncResult:
    """A sync that wrote everything is recorded as applied only if the pass still holds the lock;
    else it was cut short (another holder may have written since)."""
    if not result.ok or result.dry_run:
        return result
    try:
        lock.guard()
    except LockLostError as exc:
        return replace(result, error=str(exc), reason=exc.reason)
    return result
