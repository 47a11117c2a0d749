"""Read-only questions about environments: status, drift, health, history. They write nothing.

Each answers from the ledger (which commit runs), the snapshot of that commit and one labelled
read of the live objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitops_agent.adapters.git_source import CommitInfo
from gitops_agent.cluster import pr_namespaces
from gitops_agent.cluster.clients import Clusters
from gitops_agent.cluster.read import LiveReads
from gitops_agent.cluster.sync import drift_in, observe
from gitops_agent.config import Config, EnvironmentConfig
from gitops_agent.core.drift import DriftCounts
from gitops_agent.core.health import aggregate
from gitops_agent.core.health_custom import by_kind
from gitops_agent.core.ledger import APPLIED, FAILED, REACHED, LedgerEntry
from gitops_agent.core.pass_rules import UP_TO_DATE, held_commit
from gitops_agent.core.pr_env import timestamp
from gitops_agent.errors import GitOpsError
from gitops_agent.model import HealthStatus, ObjectHealth
from gitops_agent.reconcile import PassResult, state_store, sync_options
from gitops_agent.rollout import LiveView, health_of
from gitops_agent.snapshots import Snapshots


@dataclass(frozen=True)
class HistoryEntry:
    """One ledger entry, with the range it rolled forward (``since``..``entry.commit``) and the
    commits of that range that changed what the environment renders (``paths``)."""

    entry: LedgerEntry
    commits: tuple[CommitInfo, ...]
    running: bool  # the environment's current snapshot
    #: the commit applied before (the range's start); "" for the first apply
    since: str = ""
    #: the repository paths the environment renders from at ``entry.commit``: the log's filter
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class EnvironmentStatus:
    environment: str
    target_commit: str
    applied_commit: str
    objects: int
    in_sync: bool
    last_result: str
    drift_expected: int = 0
    drift_unexpected: int = 0
    health: str = ""  # Current | InProgress | Failed | Unknown: the worst of its objects
    error: str = ""
    #: the charts the applied snapshot was rendered from: "web 1.2.3 (sha256:…)"
    charts: tuple[str, ...] = ()


@dataclass(frozen=True)
class PrEnvironmentStatus:
    """A pull request's environment (``core.pr_env``) as its namespace and ledger say."""

    environment: str  # the configured one it copies
    name: str  # pr-<number>-<environment>
    namespace: str
    pull_request: int
    head: str  # the last head deployed
    applied: str  # the ledger's last applied commit
    health: str  # its rollout: Current | InProgress | Failed | "" (not followed)
    expires: str  # RFC 3339, UTC


class Queries:
    def __init__(self, config: Config, snapshots: Snapshots, clusters: Clusters) -> None:
        self.config = config
        self.snapshots = snapshots
        self.clusters = clusters

    def drift(self, env: EnvironmentConfig, fetch_error: GitOpsError | None = None) -> PassResult:
        """Drift against the commit the environment last applied."""
        commit = ""
        try:
            if fetch_error is not None:
                raise fetch_error
            api = self.clusters.api(env)
            last = state_store(self.config, self.clusters.agent_api(env)).read_ledger(env.name).last_success()
            if last is None:
                return PassResult(env.name, "", UP_TO_DATE)
            commit = last.commit
            options = sync_options(self.config, env)
            found = drift_in(observe(api, self.snapshots.snapshot(env, commit), options), options)
            return PassResult(env.name, commit, UP_TO_DATE, drift=found)
        except GitOpsError as exc:
            return PassResult(env.name, commit, FAILED, error=str(exc), reason=exc.reason)

    def health(self, env: EnvironmentConfig) -> tuple[str, list[ObjectHealth]]:
        """Every object of the environment's applied snapshot, with its health now."""
        api = self.clusters.api(env)
        last = state_store(self.config, self.clusters.agent_api(env)).read_ledger(env.name).last_success()
        if last is None:
            return "", []
        seen = observe(api, self.snapshots.snapshot(env, last.commit), sync_options(self.config, env))
        view = LiveView(seen.live, LiveReads(api))
        rules = by_kind(self.config.health_rules)
        # asked for by a person: a workload still InProgress is explained by its pods too
        explain = frozenset({HealthStatus.FAILED, HealthStatus.IN_PROGRESS})
        return last.commit, list(health_of([key for key, _ in seen.applied], view, explain=explain, rules=rules))

    def history(self, env: EnvironmentConfig) -> list[HistoryEntry]:
        """What ran in an environment and what each apply rolled forward, newest first: the commits
        since the previous applied one that touched the environment's directory or a base it uses
        (on a first apply, every such commit so far, not the whole repository's log)."""
        ledger = state_store(self.config, self.clusters.agent_api(env)).read_ledger(env.name)
        running = ledger.last_success()
        sources: dict[str, tuple[str, ...]] = {}  # per commit: entries often repeat one
        out: list[HistoryEntry] = []
        previous: str | None = None
        for entry in ledger.entries:
            if entry.commit not in sources:
                sources[entry.commit] = self.snapshots.sources(env, entry.commit)
            paths = sources[entry.commit]
            commits = self._log(previous, entry.commit, paths) if entry.commit != previous else ()
            out.append(HistoryEntry(entry, commits, running is not None and entry is running, previous or "", paths))
            if entry.result in (APPLIED, REACHED):
                previous = entry.commit
        return out[::-1]

    def _log(self, old: str | None, new: str, paths: tuple[str, ...]) -> tuple[CommitInfo, ...]:
        """The range's commits that touched ``paths``; none when a commit is gone (force-pushed
        away): the entry still says which commits it ran."""
        try:
            return tuple(self.snapshots.source.log(old, new, paths=paths))
        except GitOpsError:
            return ()

    def pull_request_environments(self) -> list[PrEnvironmentStatus]:
        """The live PR environments, found by their namespaces' labels (per cluster configured)."""
        out: list[PrEnvironmentStatus] = []
        contexts: set[str | None] = set()
        for entry in self.config.pull_request_environments:
            base = self.config.environment(entry.environment)
            if base.context in contexts:
                continue
            contexts.add(base.context)
            api = self.clusters.agent_api(base)
            store = state_store(self.config, api)
            for e in pr_namespaces.live(api, self.config.agent.namespace):
                last = store.read_ledger(e.environment).last_success()
                applied, health = (last.commit, last.rollout) if last else ("", "")
                out.append(
                    PrEnvironmentStatus(e.base, e.environment, e.namespace, e.number, e.head, applied, health,
                                        timestamp(e.expires))
                )  # fmt: skip
        return out

    def status(self, env: EnvironmentConfig, fetch_error: GitOpsError | None = None) -> EnvironmentStatus:
        """Target commit, applied commit, drift, health and whether the live state matches."""
        target = applied = ""
        try:
            if fetch_error is not None:
                raise fetch_error
            target = self.snapshots.target_commit(env)
            api = self.clusters.api(env)
            options = sync_options(self.config, env)
            ledger = state_store(self.config, self.clusters.agent_api(env)).read_ledger(env.name)
            last = ledger.last_success()
            applied = last.commit if last else ""
            objects = self.snapshots.snapshot(env, applied) if applied else ()
            seen = observe(api, objects, options)
            found = drift_in(seen, options)
            view = LiveView(seen.live, LiveReads(api))
            health = health_of([key for key, _ in seen.applied], view, rules=by_kind(self.config.health_rules))
            latest = ledger.entries[-1] if ledger.entries else None
            held = held_commit(ledger, target, lambda then: self.snapshots.same_intent(env, target, then))
            rolled_back = f" (rolled back to {held[:12]} until the rollback PR merges)" if held != target else ""
            counts = DriftCounts.of(found)
            return EnvironmentStatus(
                environment=env.name,
                target_commit=target,
                applied_commit=applied,
                objects=len(objects),
                in_sync=bool(applied) and applied == held and not counts.unexpected,
                last_result=(f"{latest.result}: {latest.summary}" if latest else "never applied") + rolled_back,
                drift_expected=counts.expected,
                drift_unexpected=counts.unexpected,
                health=aggregate(o.status for o in health).value if applied else "",
                charts=tuple(f"{c.short} ({c.digest})" for c in last.charts) if last else (),
            )
        except GitOpsError as exc:
            return EnvironmentStatus(env.name, target, applied, 0, False, f"error: {exc.reason}", error=str(exc))
