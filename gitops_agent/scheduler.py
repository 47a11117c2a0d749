"""Passes on a schedule and on pushes, one environment never waiting on another (``gitops-agent run``).

The shell around ``Agent.reconcile``. APScheduler (3.x, BackgroundScheduler) ticks each environment
at its interval with jitter (``max_instances=1``; a missed tick is coalesced into one). A tick only
submits: passes run on a thread pool of our own with a worker per environment, so a slow environment
(a rollout, a large snapshot) never delays another, and passes queued at shutdown can be cancelled.
The rules are pure functions in ``core.schedule``; this module holds the state they decide over:

- one ``PassState`` per environment under one condition variable: that is the per-environment lock
  (a pass starts only when the state says it may), and what shutdown waits on;
- the config repo is fetched by whichever pass needs it first, under a lock, and reused by the
  passes that follow within ``fetch_max_age_s``, so N environments don't fetch N times;
- passes run only while this replica leads (``set_leading``); followers keep their copy of the repo
  warm so a take-over starts fast. Sharded (``set_members``, from ``membership``): each replica
  runs the passes of the environments it owns (``core.shard``), whoever leads; any member runs
  an approved pass or a PR environment's deploy the webhook brought it (under that environment's
  lock); the leader keeps the sweep of PR environments.

Reporting plugs in through ``reconcile.PassListener`` (GitHub statuses, chat), given to the agent
when it is built (``composition``). Only the leader runs passes, so only the leader reports.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler

from gitops_agent.config import Config, EnvironmentConfig
from gitops_agent.core.git_cache import SWEEP_INTERVAL_S, CacheStats
from gitops_agent.core.ledger import FAILED
from gitops_agent.core.schedule import (
    PassState,
    environments_for_ref,
    finish_pass,
    interval_of,
    jitter_of,
    request_pass,
)
from gitops_agent.core.shard import owned_by, owner
from gitops_agent.errors import GitOpsError
from gitops_agent.git_hygiene import PullRefKeeper
from gitops_agent.logging_setup import log_context, set_commit
from gitops_agent.metrics import Metrics
from gitops_agent.pr_environments import SWEEP_INTERVAL_S as PR_SWEEP_INTERVAL_S
from gitops_agent.pr_environments import PullRequestEnvironments
from gitops_agent.present import summarize
from gitops_agent.preview_queue import Previewer, PreviewQueue
from gitops_agent.queries import PrEnvironmentStatus
from gitops_agent.readiness import ClusterProbe, Readiness
from gitops_agent.reconcile import PassRequest, PassResult
from gitops_agent.shared_fetch import SharedFetch

log = logging.getLogger(__name__)

INTERNAL_ERROR = "InternalError"


class AgentPort(Protocol):
    """What the scheduler needs of ``agent.Agent`` (tests pass a fake of it)."""

    config: Config

    def fetch(self) -> GitOpsError | None: ...

    def target_commit(self, env: EnvironmentConfig) -> str: ...

    def reconcile(self, env: EnvironmentConfig, request: PassRequest | None = None) -> PassResult: ...

    def request_counts(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class SchedulerOptions:
    #: a pass reuses a fetch that started less than this long ago
    fetch_max_age_s: float = 5.0
    #: how long shutdown waits for passes in flight
    shutdown_timeout_s: float = 60.0
    #: /readyz asks the clusters at most this often
    probe_interval_s: float = 10.0
    #: shown on /status: this replica's leader-election identity
    identity: str = ""


@dataclass(frozen=True)
class EnvironmentView:
    """One environment as /status shows it."""

    name: str
    policy: str
    branch: str
    interval_s: float
    running: bool
    pending: bool
    last: PassResult | None
    finished_at: float | None  # Unix time
    duration_s: float | None
    last_success_at: float | None
    owner: str = ""  # the replica that runs its passes ("" when none does)


@dataclass(frozen=True)
class SchedulerStatus:
    leading: bool
    identity: str
    ready: tuple[str, ...]  # reasons it is not ready; empty when ready
    fetch_error: str
    environments: tuple[EnvironmentView, ...]
    git_cache: CacheStats | None = None  # None until measured (previews configured)
    pull_request_environments: tuple[PrEnvironmentStatus, ...] = ()
    members: tuple[str, ...] = ()  # the live replicas sharing the environments (sharded only)


@dataclass(frozen=True)
class PushOutcome:
    environments: tuple[str, ...]  # following the pushed branch
    relayed: bool = False  # this replica follows: the push went to the leader through the Lease


@dataclass(frozen=True)
class ApprovedPass:
    """A person's OK for one commit of a ``manual`` environment (``approvals``); ``on_done`` is told
    the result of the pass that took it."""

    commit: str
    approved_by: str
    on_done: Callable[[PassResult], None] | None = None


@dataclass
class _Last:
    result: PassResult | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    success_at: float | None = None


#: a follower's way to hand a push to the leader (``leader.PushRelay.relay``); True when told
Relay = Callable[[str], bool]
#: hands a push to another member, the owner of an environment (``membership.Membership.relay``)
MemberRelay = Callable[[str, str], bool]
#: a reason this replica is not ready yet (None when that part is)
Gate = Callable[[], str | None]


class Scheduler:
    """Schedules and runs passes; ``start``, ``set_leading``, ``push``/``trigger``, ``stop``.

    More than fifteen methods, on purpose: the pass methods share one condition variable over the
    per-environment state, and splitting them would spread that lock's invariants over several
    classes. What needs no such lock lives apart: ``SharedFetch``, ``Readiness``, ``PreviewQueue``."""

    def __init__(
        self,
        agent: AgentPort,
        *,
        metrics: Metrics | None = None,
        options: SchedulerOptions | None = None,
        probe: ClusterProbe | None = None,
        relay: Relay | None = None,
        previewer: Previewer | None = None,
        pull_refs: PullRefKeeper | None = None,
        pr_environments: PullRequestEnvironments | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.agent = agent
        self.config = agent.config
        self.options = options or SchedulerOptions()
        self.metrics = metrics or Metrics(agent.request_counts)
        self._clock, self._wall = clock, wall
        self._envs = {env.name: env for env in self.config.environments}
        self._branches = {env.name: self.config.branch_of(env) for env in self.config.environments}
        self._cond = threading.Condition()
        self._states = {name: PassState() for name in self._envs}
        self._last = {name: _Last() for name in self._envs}
        self._approved: dict[str, ApprovedPass] = {}  # per environment: taken by its next pass
        self._leading = False
        self._stopping = False
        #: sharded: the live members and what this replica owns; None: whoever leads runs every pass
        self._members: tuple[str, ...] | None = None
        self._owned: frozenset[str] = frozenset()
        self.member_relay: MemberRelay | None = None
        self.gates: list[Gate] = []
        self._fetch = SharedFetch(agent.fetch, max_age_s=self.options.fetch_max_age_s, clock=clock)
        self._readiness = Readiness(probe, interval_s=self.options.probe_interval_s, clock=clock)
        self.relay = relay
        #: None when GitHub is not configured
        self.previews = PreviewQueue(previewer, pull_refs) if previewer is not None else None
        self._pull_refs = pull_refs
        #: None when no environment gets one per pull request; deployed as approvals are taken
        self.pr_environments = pr_environments
        # Passes run on a worker per environment; the scheduler only ticks (it submits, never waits),
        # so a tick is never late because of a slow pass and queued passes can be cancelled on stop.
        self._pool = futures.ThreadPoolExecutor(max_workers=len(self._envs), thread_name_prefix="pass")
        self._scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(2)}, timezone="UTC")

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Starts the schedule; passes run once ``set_leading(True)``. Probes the clusters once,
        so an unreachable cluster is in the log at start-up (and clients are made in one thread)."""
        problem = self._readiness.now()
        if problem:
            log.warning("not ready yet: %s", problem)
        for env in self.config.environments:
            interval = self._interval(env)
            self._scheduler.add_job(
                self._tick, "interval", seconds=interval, jitter=jitter_of(interval), args=[env.name],
                id=f"pass-{env.name}", name=f"pass of {env.name}", max_instances=1, coalesce=True,
                misfire_grace_time=max(1, int(interval)),
            )  # fmt: skip
        self._scheduler.add_job(
            self._warm_fetch, "interval", seconds=self.config.repo.poll_interval_s, id="warm-fetch",
            name="follower fetch", max_instances=1, coalesce=True, next_run_time=datetime.now(UTC),
        )  # fmt: skip
        if self.previews is not None and self._pull_refs is not None:  # every replica previews, so each sweeps
            self._scheduler.add_job(
                self.previews.sweep, "interval", seconds=SWEEP_INTERVAL_S, id="git-cache", name="git cache sweep",
                max_instances=1, coalesce=True, next_run_time=datetime.now(UTC),
            )  # fmt: skip
        if self.pr_environments is not None:  # the leader's: a missed webhook leaks nothing
            self._scheduler.add_job(
                self._sweep_pr_environments, "interval", seconds=PR_SWEEP_INTERVAL_S, id="pr-env-sweep",
                name="PR environment sweep", max_instances=1, coalesce=True,
            )  # fmt: skip
        self._scheduler.start()
        log.info("scheduler started for %s", ", ".join(self._envs))

    def set_leading(self, leading: bool) -> None:
        """Leader election's verdict. Leading: every environment gets a pass now. Not leading: no new
        pass starts (one in flight finishes; it cannot be stopped between objects from here)."""
        with self._cond:
            changed, self._leading = self._leading != leading, leading
            sharded = self._members is not None
        self.metrics.leader.set(1 if leading else 0)
        if not sharded:
            self.metrics.owned.set(len(self._envs) if leading else 0)
        if changed and leading:
            if not sharded:
                log.info("leading: reconciling every environment")
                self.trigger(list(self._envs), urgent=False)
            self._sweep_pr_environments()  # at start-up (or take-over): what closed meanwhile goes
        elif changed:
            log.warning("no longer leading: no new passes")

    def set_members(self, members: tuple[str, ...]) -> None:
        """Membership's verdict: the live members. The environments this replica owns now and did
        not before get a pass now; those it lost start no new pass (one in flight finishes, under its
        lock)."""
        owned = owned_by(self.options.identity, self._envs, members)
        with self._cond:
            gained = owned - self._owned
            self._members, self._owned = members, owned
        self.metrics.owned.set(len(owned))
        if gained:
            log.info("owning %s", ", ".join(sorted(gained)))
            self.trigger(sorted(gained), urgent=False)

    def stop(self, timeout_s: float | None = None) -> bool:
        """Stops new passes and waits (bounded) for those in flight; True when none is left running."""
        with self._cond:
            self._stopping = True
        with contextlib.suppress(SchedulerNotRunningError):  # never started
            self._scheduler.shutdown(wait=False)
        self._pool.shutdown(wait=False, cancel_futures=True)  # passes queued but not started never start
        if self.previews is not None:
            self.previews.stop()
        if self.pr_environments is not None:
            self.pr_environments.stop()
        timeout = self.options.shutdown_timeout_s if timeout_s is None else timeout_s
        with self._cond:
            idle = self._cond.wait_for(lambda: not self._running(), timeout)
            running = self._running()
        if not idle:
            log.warning("stopping with passes still running after %.0fs: %s", timeout, ", ".join(running))
        return idle

    @property
    def leading(self) -> bool:
        return self._leading

    def owns(self, name: str) -> bool:
        """Does this replica run the environment's passes now? (its watches follow this)"""
        with self._cond:
            return self._may_run(name)

    # --- triggers -------------------------------------------------------------------------------

    def push(self, ref: str, *, relay: bool = True) -> PushOutcome:
        """A push to ``ref``: fetch again and pass the environments following that branch. A follower
        relays it to the leader (``relay``, set by leader election) instead."""
        names = environments_for_ref(self._branches, ref)
        if not names:
            return PushOutcome(())
        if self._members is not None:
            return self._push_sharded(ref, names, relay=relay)
        if not self._leading and self.relay is not None:
            return PushOutcome(names, relayed=self.relay(ref))
        self._fetch.invalidate()
        self.trigger(names, urgent=True)
        return PushOutcome(names)

    def _push_sharded(self, ref: str, names: tuple[str, ...], *, relay: bool) -> PushOutcome:
        """Passes of the pushed environments this replica owns; the ref noted on the membership
        Lease of each other owner, whose next renewal passes its own (``relay=False``: a relayed
        push is not relayed again, or replicas would hand it back and forth for ever)."""
        members = self._members or ()
        owners = {owner(name, members) for name in names} - {None, self.options.identity}
        relayed = False
        if self.member_relay is not None and relay:
            for member in sorted(o for o in owners if o):
                relayed = self.member_relay(member, ref) or relayed
        mine = [name for name in names if name in self._owned]
        if mine:
            self._fetch.invalidate()
            self.trigger(mine, urgent=True)
        return PushOutcome(names, relayed=relayed)

    def preview(self, number: int, head_sha: str, base_ref: str) -> bool:
        """Queue a preview of a pull request. Any replica may preview: it only reads the cluster and
        writes to GitHub. False when previews are not configured."""
        if self.previews is None or self._stopping:
            return False
        self.previews.submit(number, head_sha, base_ref)
        return True

    def deploy_pull_request(self, number: int, head_sha: str, base_ref: str) -> tuple[str, ...]:
        """Queue a deploy of a trusted pull request's head into its PR environments; the configured
        environments it gets one of (none when not configured, or on a replica that takes none).
        Sharded, the member the webhook reached deploys (as with approvals: GitHub does not redeliver
        to another replica); each PR environment's lock keeps two replicas' deploys apart."""
        if self.pr_environments is None or not self.takes_approvals:
            return ()
        return self.pr_environments.submit(number, head_sha, base_ref)

    def pull_request_closed(self, number: int) -> bool:
        """A pull request was closed: its PR environments go (whoever takes deploys removes them,
        under their locks), its fetched head leaves the git cache. False when previews are not
        configured."""
        if self.pr_environments is not None and self.takes_approvals:
            self.pr_environments.closed(number)
        if self.previews is None or self._stopping:
            return False
        self.previews.closed(number)
        return True

    @property
    def takes_approvals(self) -> bool:
        """Sharded, any member runs an approved pass itself, whoever owns the environment (its lock
        keeps the pass from overlapping the owner's), so no approval waits for the one replica that
        leads; unsharded, the leader does."""
        with self._cond:
            return self._takes_approvals()

    def _takes_approvals(self) -> bool:
        return not self._stopping and (self._leading or bool(self._members))

    def approve(self, name: str, approval: ApprovedPass) -> bool:
        """The environment's next pass applies ``approval.commit`` explicitly, recording who approved;
        queued behind a pass in flight, never beside it. False on a replica that takes no approvals."""
        with self._cond:
            if not self._takes_approvals():
                return False
            self._approved[name] = approval
        self.trigger([name], urgent=True)
        return True

    def current_target(self, name: str) -> str:
        """The environment's target commit after a fresh fetch: an approval is checked against the
        branch as it is now, not as a fetch a few seconds old saw it. Raises GitOpsError."""
        self._fetch.invalidate()
        error = self._fetch.fetch_if_stale()
        if error is not None:
            raise error
        return self.agent.target_commit(self._envs[name])

    def trigger(self, names: Iterable[str], *, urgent: bool = True) -> None:
        """A pass of each environment now; one already running gets one more after it (``urgent``)."""
        for name in names:
            if self._request(name, urgent=urgent):
                self._submit(name)

    # --- passes ---------------------------------------------------------------------------------

    def _tick(self, name: str) -> None:
        self.trigger([name], urgent=False)

    def _submit(self, name: str) -> None:
        """Runs the environment's passes on the pool; a pass cancelled before it started (stop)
        leaves the environment idle, not "running" forever."""
        try:
            future = self._pool.submit(self._run_passes, name)
        except RuntimeError:  # the pool was shut down meanwhile
            self._release(name)
            return
        future.add_done_callback(lambda f: self._release(name) if f.cancelled() else None)

    def _may_run(self, name: str) -> bool:
        """Under ``_cond``: does this replica run the environment's passes now? Sharded, its owner
        does, and the member an approval reached runs that approved pass (the environment's lock
        keeps it from overlapping the owner's)."""
        if self._stopping:
            return False
        if self._members is None:
            return self._leading
        return name in self._owned or name in self._approved

    def _request(self, name: str, *, urgent: bool) -> bool:
        with self._cond:
            if not self._may_run(name):
                return False
            self._states[name], start = request_pass(self._states[name], urgent=urgent)
            return start

    def _run_passes(self, name: str) -> None:
        """Runs passes of one environment while requests keep coming (at most one more each time)."""
        env = self._envs[name]
        while True:
            if self._halted(name):
                self._release(name)
                return
            try:
                self._one_pass(env)
            except BaseException:
                self._release(name)
                raise
            if not self._again(name):
                return

    def _halted(self, name: str) -> bool:
        with self._cond:
            return not self._may_run(name)

    def _again(self, name: str) -> bool:
        with self._cond:
            self._states[name], again = finish_pass(self._states[name])
            if again and not self._may_run(name):
                self._states[name], again = PassState(), False
            self._cond.notify_all()
            return again

    def _release(self, name: str) -> None:
        with self._cond:
            self._states[name] = PassState()
            self._cond.notify_all()

    def _running(self) -> list[str]:
        return [name for name, state in self._states.items() if state.running]

    def _one_pass(self, env: EnvironmentConfig) -> None:
        """Fetch if stale, reconcile, record. Every line logged meanwhile names the environment
        and, once known, the commit."""
        with log_context(environment=env.name):
            fetch_error = self._fetch_if_stale()
            commit = "" if fetch_error else self._resolve(env)
            set_commit(commit)
            with self._cond:
                approved = self._approved.pop(env.name, None)
            request = PassRequest(fetch_error=fetch_error)
            if approved is not None and approved.commit == commit:  # else the branch moved on: a plain pass
                request = PassRequest(explicit=True, commit=commit, approved_by=approved.approved_by)
            started = self._clock()
            try:
                result = self.agent.reconcile(env, request)
            except Exception as exc:  # a bug must not end the daemon: report it as this pass's failure
                log.exception("pass failed unexpectedly; the next one retries")
                result = PassResult(env.name, commit, FAILED, error=f"internal error: {exc}", reason=INTERNAL_ERROR)
            set_commit(result.commit or commit)
            self._record(result, self._clock() - started)
            if approved is not None and approved.on_done is not None:
                _tell_approver(approved.on_done, result)

    def _resolve(self, env: EnvironmentConfig) -> str:
        try:
            return self.agent.target_commit(env)
        except GitOpsError:
            return ""  # reconcile resolves again and reports the error

    def _record(self, result: PassResult, duration_s: float) -> None:
        now = self._wall()
        self.metrics.observe(result, duration_s=duration_s, now=now)
        with self._cond:
            last = self._last[result.environment]
            last.result, last.finished_at, last.duration_s = result, now, duration_s
            if result.ok:
                last.success_at = now
        extra = {"outcome": result.outcome, "duration_s": round(duration_s, 3)}
        if result.ok:
            log.info("pass %s: %s", result.outcome, summarize(result), extra=extra)
        else:
            log.warning("pass failed (%s): %s", result.reason, result.error, extra=extra)

    # --- the shared fetch -----------------------------------------------------------------------

    def _fetch_if_stale(self) -> GitOpsError | None:
        return self._fetch.fetch_if_stale()

    def _sweep_pr_environments(self) -> None:
        if self.pr_environments is not None and self._leading and not self._stopping:
            self.pr_environments.sweep()

    def _warm_fetch(self) -> None:
        """Followers fetch at the poll interval: ready (/readyz) and fast to take over."""
        if not self._stopping and (not self._leading or self._members is not None):
            self._fetch.fetch_if_stale()

    # --- views ----------------------------------------------------------------------------------

    def readiness(self) -> tuple[str, ...]:
        """Why this replica is not ready; empty when it is (config loaded, repo fetched, clusters up)."""
        reasons = self._readiness.reasons(fetched=self._fetch.succeeded_once, fetch_error=self._fetch.error)
        return reasons + tuple(r for r in (gate() for gate in self.gates) if r)

    def status(self) -> SchedulerStatus:
        with self._cond:
            envs = tuple(self._view(env) for env in self.config.environments)
            leading, members = self._leading, self._members or ()
        error = self._fetch.error
        cache = self._pull_refs.stats() if self._pull_refs is not None else None
        prs = self.pr_environments.status() if self.pr_environments is not None else ()
        ready = self.readiness()
        return SchedulerStatus(leading, self.options.identity, ready, str(error or ""), envs, cache, prs, members)

    def _interval(self, env: EnvironmentConfig) -> float:
        return interval_of(env.interval_s, self.config.repo.poll_interval_s)

    def _view(self, env: EnvironmentConfig) -> EnvironmentView:
        state, last = self._states[env.name], self._last[env.name]
        return EnvironmentView(
            name=env.name,
            policy=env.policy,
            branch=self.config.branch_of(env),
            interval_s=self._interval(env),
            running=state.running,
            pending=state.pending,
            last=last.result,
            finished_at=last.finished_at,
            duration_s=last.duration_s,
            last_success_at=last.success_at,
            owner=self._owner(env.name),
        )

    def _owner(self, name: str) -> str:
        if self._members is None:
            return self.options.identity if self._leading else ""
        return owner(name, self._members) or ""


def _tell_approver(on_done: Callable[[PassResult], None], result: PassResult) -> None:
    try:
        on_done(result)
    except Exception:  # telling GitHub must not end the environment's passes
        log.exception("telling the approver how the approved pass ended failed")
