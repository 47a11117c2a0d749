"""Ephemeral pull-request environments, the shell: a trusted pull request's head deployed into a
namespace of its own per configured environment, updated on every push, removed when the pull
request closes or its time to live passes (``core.pr_env`` decides; this sequences). Sharded, the
replica a webhook reaches deploys or removes (``Scheduler.deploy_pull_request``); each PR
environment's lock keeps two replicas' deploys and removals of it apart.

A deploy is an ordinary pass (``Reconciler.reconcile``) of a derived environment, ``pr-<n>-<env>``:
the configured environment's render at the head, every namespaced object moved into the PR's
namespace (cluster-scoped ones left out and named), its scope that namespace only, policy
``report``, prune on. So the pass's guarantees hold (dry-run before any write, the lock, the
inventory, the ledger, the rollout followed), and the result becomes a ``gitops-agent/pr-env/<env>``
status on the head.

The live set is the cluster's: namespaces with the agent's labels (``cluster.pr_namespaces``). A
sweep (the scheduler's, leader only, and at start) removes those whose pull request GitHub says is
closed, or whose time to live passed, so a missed webhook leaks nothing. Deploys, removals and
sweeps run one at a time on a worker of their own: a removal never races a deploy of the same PR,
and the cap is counted by one writer per replica (sharded, two replicas deploying two new PRs at
once may both see room for one more).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent import futures
from dataclasses import replace
from typing import Any, Protocol

from gitops_agent.adapters.git_workspace import Workspace
from gitops_agent.agent import Agent
from gitops_agent.cluster import pr_namespaces
from gitops_agent.cluster.clients import Clusters
from gitops_agent.config import EnvironmentConfig, PullRequestEnvironmentConfig
from gitops_agent.core.helm import ChartRef
from gitops_agent.core.pr_env import (
    STATUS_CONTEXT,
    LivePrEnvironment,
    Moved,
    Outcome,
    PrNamespace,
    deploying,
    environment_name,
    expired,
    expiry,
    move_into,
    namespace_name,
    over_cap,
    pull_is_open,
    status_of,
)
from gitops_agent.core.scope import Scope, ScopedObject, check_scope
from gitops_agent.errors import GitOpsError
from gitops_agent.model import DesiredObject
from gitops_agent.queries import PrEnvironmentStatus
from gitops_agent.reconcile import PassRequest, PassResult, Reconciler
from gitops_agent.snapshots import Snapshots

log = logging.getLogger(__name__)

#: how often the leader sweeps PR environments (and once when it starts leading)
SWEEP_INTERVAL_S = 300.0
#: /status reads the cluster at most this often for the PR environments
STATUS_MAX_AGE_S = 10.0


class PrGitHub(Protocol):
    """What PR environments ask of GitHub (``adapters.github.GitHubClient`` provides it)."""

    def get_pull(self, number: int) -> dict[str, Any]: ...

    def create_status(
        self, sha: str, *, state: str, context: str, description: str, target_url: str | None = None
    ) -> dict[str, Any]: ...


def derived_environment(base: EnvironmentConfig, number: int, namespace: str) -> EnvironmentConfig:
    """The environment a PR's copy of ``base`` is passed as: its own name (state, lock), its
    namespace only, report (each push applied once), prune on, as the agent itself (a
    ServiceAccount of ``base``'s namespace has no rights in the PR's)."""
    return replace(
        base,
        name=environment_name(number, base.name),
        namespace=namespace,
        policy="report",
        branch=None,
        create_namespace=False,  # the agent makes it, labelled, before the pass
        prune=True,
        allow_empty=True,
        scope=Scope(namespaces=(namespace,), deny_kinds=base.boundary.deny_kinds),
        service_account=None,
        prune_allow=(),
        interval_s=None,
    )


class PrSnapshots(Snapshots):
    """Snapshots of PR environments too: the configured environment's snapshot at the commit, moved
    into the PR's namespace (``core.pr_env.move_into``); any other environment as ``Snapshots``."""

    def __init__(self, snapshots: Snapshots, clusters: Clusters) -> None:
        # The agent's source, renderers and limits, whatever ``Snapshots`` holds; a cache of its own,
        # so PR heads never push the configured environments' snapshots out of the agent's.
        vars(self).update(vars(snapshots))
        self._kept = OrderedDict()
        self._lock = threading.Lock()
        self._clusters = clusters
        self._pr_lock = threading.Lock()
        self._bases: dict[str, EnvironmentConfig] = {}  # derived name -> configured environment
        #: per derived environment: its last snapshot (commit, objects, what was left out)
        self._moved: dict[str, tuple[str, Moved]] = {}

    def register(self, derived: EnvironmentConfig, base: EnvironmentConfig) -> None:
        with self._pr_lock:
            self._bases[derived.name] = base

    def snapshot(self, env: EnvironmentConfig, commit: str) -> tuple[DesiredObject, ...]:
        return self.moved(env, commit).objects if self._base(env) else super().snapshot(env, commit)

    def charts(self, env: EnvironmentConfig, commit: str) -> tuple[ChartRef, ...]:
        """A PR environment's provenance: the charts its configured environment renders at ``commit``."""
        return super().charts(self._base(env) or env, commit)

    def moved(self, env: EnvironmentConfig, commit: str) -> Moved:
        """A PR environment's snapshot and what it left out (rendered once per head)."""
        base = self._base(env)
        assert base is not None, f"{env.name} is not a PR environment"
        with self._pr_lock:
            kept = self._moved.get(env.name)
        if kept is not None and kept[0] == commit:
            return kept[1]
        api = self._clusters.agent_api(env)

        def scope_of(group: str, kind: str) -> bool | None:
            info = api.lookup(group, kind)
            return None if info is None else info.namespaced

        moved = move_into(super().snapshot(base, commit), env.namespace, scope_of)
        offline = [ScopedObject(o.key, o.source, True) for o in moved.objects]
        check_scope(offline, env.boundary, environment=env.name, agent_namespace=self.config.agent.namespace)
        with self._pr_lock:
            self._moved[env.name] = (commit, moved)
        return moved

    def left_out(self, name: str, commit: str) -> tuple[str, ...]:
        with self._pr_lock:
            kept = self._moved.get(name)
        return kept[1].left_out if kept is not None and kept[0] == commit else ()

    def _base(self, env: EnvironmentConfig) -> EnvironmentConfig | None:
        with self._pr_lock:
            return self._bases.get(env.name)


class PullRequestEnvironments:
    """Deploys, removes and sweeps PR environments on one worker. ``github`` None: no statuses, and
    the sweep removes by time to live only (nothing to ask whether a PR is closed)."""

    def __init__(
        self,
        agent: Agent,
        github: PrGitHub | None,
        *,
        wall: Callable[[], float] = time.time,
        target_url: str | None = None,
    ) -> None:
        self.agent = agent
        self.config = agent.config
        self.github = github
        self._wall = wall
        self._target_url = target_url or (self.config.github.target_url if self.config.github else None)
        self.snapshots = PrSnapshots(agent.snapshots, agent.clusters)
        base = agent.reconciler
        # a pass machinery of their own (their snapshots), sharing the agent's clusters and locks;
        # no listeners: a PR environment's status is its own context, posted here
        self.reconciler = Reconciler(
            self.config, self.snapshots, agent.clusters, locks=base.locks,
            follow_settings=base.follow_settings, stopping=base.stopping,
        )  # fmt: skip
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[str, str]] = {}  # the newest head per PR, waiting for the worker
        self._pool = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pr-env")
        self._status_cache: tuple[float, tuple[PrEnvironmentStatus, ...]] | None = None

    # --- what the scheduler asks ------------------------------------------------------------------

    def entries(self, base_ref: str) -> tuple[PullRequestEnvironmentConfig, ...]:
        """The PR environments merging into ``base_ref`` gets: of environments following that branch."""
        c = self.config
        return tuple(e for e in c.pull_request_environments if c.branch_of(c.environment(e.environment)) == base_ref)

    def submit(self, number: int, head_sha: str, base_ref: str) -> tuple[str, ...]:
        """Queue a deploy of PR ``number`` at ``head_sha``; a newer push waiting replaces it."""
        names = tuple(e.environment for e in self.entries(base_ref))
        if not names:
            return ()
        with self._lock:
            queued = number in self._waiting
            self._waiting[number] = (head_sha, base_ref)
        if not queued and self._queue(lambda: self._run(number)) is None:
            return ()
        return names

    def closed(self, number: int) -> futures.Future[None] | None:
        """PR ``number`` closed (merged or not): a deploy waiting is moot; its environments go."""
        with self._lock:
            self._waiting.pop(number, None)
        return self._queue(lambda: self._log_errors("removal", lambda: self.remove(number)))

    def sweep(self) -> futures.Future[None] | None:
        return self._queue(lambda: self._log_errors("sweep", self.sweep_now))

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def drain(self, timeout_s: float = 300.0) -> None:
        """Wait for everything queued so far (tests)."""
        done = self._queue(lambda: None)
        if done is not None:
            done.result(timeout_s)

    # --- the work -----------------------------------------------------------------------------------

    def deploy(self, number: int, head_sha: str, base_ref: str) -> list[Outcome]:
        """Deploy PR ``number``'s head into each of its PR environments (now, on this thread)."""
        error = self.agent.fetch()
        if error is not None:
            raise error
        head = Workspace(self.agent.snapshots.source).fetch_pull(number)
        if head_sha and head != head_sha:
            log.info("PR #%d moved on to %s: its own event deploys that", number, head[:12])
            return []
        return [self._deploy_one(entry, number, head) for entry in self.entries(base_ref)]

    def remove(self, number: int) -> list[str]:
        """Every PR environment of PR ``number``; the namespaces removed."""
        return [self._remove(e) for api_env in self._live() for e in api_env[1] if e.number == number]

    def sweep_now(self) -> list[str]:
        """Remove the PR environments whose time to live passed or whose PR is closed."""
        now, removed = self._wall(), []
        verdicts: dict[int, bool | None] = {}  # per PR: open? (None: GitHub did not say)
        for _, envs in self._live():
            for env in envs:
                if expired(env, now):
                    log.info("PR environment %s: its time to live passed", env.namespace)
                elif self._pr_open(env.number, verdicts) is not False:
                    continue
                removed.append(self._remove(env))
        return removed

    def status(self) -> tuple[PrEnvironmentStatus, ...]:
        """The PR environments as /status shows them (read from the cluster, at most every 10 s)."""
        now = time.monotonic()
        cached = self._status_cache
        if cached is not None and now - cached[0] < STATUS_MAX_AGE_S:
            return cached[1]
        try:
            found = tuple(self.agent.queries.pull_request_environments())
        except GitOpsError as exc:
            log.warning("PR environments not read for /status: %s", exc)
            found = cached[1] if cached else ()
        self._status_cache = (now, found)
        return found

    # --- steps ------------------------------------------------------------------------------------

    def _deploy_one(self, entry: PullRequestEnvironmentConfig, number: int, head: str) -> Outcome:
        base = self.config.environment(entry.environment)
        namespace = namespace_name(entry.namespace, number, base.name)
        env = derived_environment(base, number, namespace)
        api = self.agent.clusters.agent_api(base)
        url = self._url(entry, number, namespace)
        try:
            if why := over_cap(pr_namespaces.live(api, self.config.agent.namespace), base.name, number, entry.max):
                log.warning("PR #%d: %s", number, why)
                self._status(head, base.name, "error", why, url)
                return Outcome(base.name, namespace, error=why)
            ns = PrNamespace(namespace, env.name, base.name, number, head, expiry(self._wall(), entry.ttl_s))
            pr_namespaces.ensure(
                api, ns, agent_namespace=self.config.agent.namespace, field_manager=self.config.agent.field_manager,
                quota=entry.quota, limit_range=entry.limit_range,
            )  # fmt: skip
        except GitOpsError as exc:
            outcome = Outcome(base.name, namespace, error=f"namespace not ready: {exc}")
            self._finish(head, outcome, url)
            return outcome
        self.snapshots.register(env, base)
        self._status(head, base.name, "pending", deploying(namespace), url)
        result = self.reconciler.reconcile(env, PassRequest(commit=head, explicit=True))
        outcome = self._outcome(base.name, namespace, env.name, result)
        self._finish(head, outcome, url)
        return outcome

    def _outcome(self, base: str, namespace: str, name: str, r: PassResult) -> Outcome:
        left = self.snapshots.left_out(name, r.commit)
        changes = r.sync.changes.summary() if r.sync is not None else ""
        health = r.health.status.value if r.health is not None else ""
        message = r.health.message if r.health is not None else ""
        return Outcome(base, namespace, r.error, changes, health, message, left)

    def _finish(self, head: str, outcome: Outcome, url: str | None) -> None:
        state, description = status_of(outcome)
        log.info("PR environment %s at %s: %s: %s%s", outcome.namespace, head[:12], state, description,
                 f"; left out: {', '.join(outcome.left_out)}" if outcome.left_out else "")  # fmt: skip
        self._status(head, outcome.environment, state, description, url)

    def _remove(self, env: LivePrEnvironment) -> str:
        base = self.config.environment(env.base) if env.base in self._bases() else None
        api = self.agent.clusters.agent_api(base or self.config.environments[0])
        agent_namespace = self.config.agent.namespace
        # sharded, another replica may be deploying this PR (its webhook went there): that pass
        # ends first, and none starts until the namespace is gone
        with self.reconciler.locks.of(api.kube, env.environment) as lock:
            lock.acquire()
            pr_namespaces.remove(api, env, agent_namespace=agent_namespace, keep_lock=True)
        pr_namespaces.remove_lock(api, env, agent_namespace=agent_namespace)  # released: now it may go
        log.info("PR environment %s of PR #%d removed (namespace, inventory, ledger)", env.namespace, env.number)
        return env.namespace

    def _live(self) -> list[tuple[EnvironmentConfig, list[LivePrEnvironment]]]:
        """Per cluster (context) the PR environments are configured in: those live there."""
        out, seen = [], set()
        for name in self._bases():
            base = self.config.environment(name)
            if base.context in seen:
                continue
            seen.add(base.context)
            out.append((base, pr_namespaces.live(self.agent.clusters.agent_api(base), self.config.agent.namespace)))
        return out

    def _bases(self) -> list[str]:
        return [e.environment for e in self.config.pull_request_environments]

    def _pr_open(self, number: int, verdicts: dict[int, bool | None]) -> bool | None:
        if self.github is None:
            return None
        if number not in verdicts:
            try:
                verdicts[number] = pull_is_open(self.github.get_pull(number))
            except GitOpsError as exc:
                log.warning("PR #%d not read (its environments are kept until GitHub answers): %s", number, exc)
                verdicts[number] = None
        return verdicts[number]

    def _url(self, entry: PullRequestEnvironmentConfig, number: int, namespace: str) -> str | None:
        if not entry.url:
            return self._target_url
        try:
            return entry.url.format(number=number, env=entry.environment, namespace=namespace)
        except (KeyError, IndexError, ValueError):  # a placeholder it does not know: the link as written
            return entry.url

    def _status(self, head: str, env: str, state: str, description: str, url: str | None) -> None:
        if self.github is None:
            return
        try:
            context = STATUS_CONTEXT.format(env=env)
            self.github.create_status(head, state=state, context=context, description=description, target_url=url)
        except GitOpsError as exc:  # the next push reports again
            log.warning("status %s on %s not posted: %s", state, head[:12], exc)

    # --- the worker -------------------------------------------------------------------------------

    def _run(self, number: int) -> None:
        with self._lock:
            waiting = self._waiting.pop(number, None)
        if waiting is not None:  # else closed meanwhile
            head, base_ref = waiting
            self._log_errors(f"deploy of PR #{number}", lambda: self.deploy(number, head, base_ref))

    def _queue(self, work: Callable[[], None]) -> futures.Future[None] | None:
        try:
            return self._pool.submit(work)
        except RuntimeError:  # stopped
            return None

    @staticmethod
    def _log_errors(what: str, work: Callable[[], object]) -> None:
        try:
            work()
        except Exception:  # one PR's trouble never takes the others (or the daemon) down
            log.exception("PR environments: %s failed", what)
