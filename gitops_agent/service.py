"""The agent's passes over its environments: fetch, render at each environment's commit, sync.

This is the imperative shell that ties config, git, rendering and the engine together. Every
environment is handled on its own: an error in one (bad YAML, unreachable cluster, unknown branch)
becomes that environment's failed result with a message a person can act on, and the others go on.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from gitops_agent import __version__
from gitops_agent.adapters.git_source import CommitInfo, GitCredentials, GitSource
from gitops_agent.adapters.kube import KubeClient
from gitops_agent.adapters.renderer import KustomizeRunner, render_environment
from gitops_agent.config import Config, EnvironmentConfig
from gitops_agent.core.drift import EXTRA, DriftPolicy, ObjectDrift
from gitops_agent.core.health import aggregate
from gitops_agent.core.ledger import APPLIED, FAILED, REACHED, Ledger, LedgerEntry
from gitops_agent.core.render import validate_objects
from gitops_agent.engine import Engine, EngineOptions, SyncResult
from gitops_agent.errors import GitOpsError
from gitops_agent.model import Action, DesiredObject, Health, ObjectHealth, ObjectKey
from gitops_agent.rollout import LiveView, default_timeout, follow, health_of

log = logging.getLogger(__name__)
SNAPSHOTS_KEPT_PER_ENVIRONMENT = 3

# outcomes of a pass, besides the ledger's applied / reached / failed
UP_TO_DATE = "up-to-date"  # the commit was applied before: drift checked only
WAITING = "waiting"  # manual policy: a new commit waits for `gitops-agent sync --env`
PLANNED = "planned"  # dry run


@dataclass(frozen=True)
class PassResult:
    environment: str
    commit: str
    outcome: str
    sync: SyncResult | None = None
    drift: tuple[ObjectDrift, ...] = ()
    repaired: SyncResult | None = None
    #: the rollout after an apply: Current, Failed, or still InProgress when the pass stopped following
    health: Health | None = None
    error: str = ""
    reason: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def unexpected_drift(self) -> tuple[ObjectDrift, ...]:
        return tuple(d for d in self.drift if not d.expected)


class PassListener(Protocol):
    """Told about each pass: GitHub statuses, chat, metrics. A listener that raises is logged and
    ignored: reporting never blocks or breaks reconciliation."""

    def applying(self, environment: str, commit: str) -> None: ...

    def finished(self, result: PassResult) -> None: ...


@dataclass(frozen=True)
class HistoryEntry:
    """One ledger entry, with the commits it rolled forward since the previous applied one."""

    entry: LedgerEntry
    commits: tuple[CommitInfo, ...]
    running: bool  # the environment's current snapshot


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


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gitops-agent" / "repos"


class Agent:
    """One config file's worth of environments."""

    def __init__(self, config: Config, *, kubeconfig: str | None = None) -> None:
        self.config = config
        self._kubeconfig = kubeconfig
        self._clients: dict[str | None, KubeClient] = {}
        repo = config.repo
        cache = Path(repo.cache_dir) if repo.cache_dir else default_cache_dir()
        credentials = GitCredentials(
            token_file=repo.token_file, token_env=repo.token_env, ssh_key_file=repo.ssh_key_file
        )
        self.source = GitSource(repo.url, cache, credentials=credentials)
        binary = config.agent.kustomize or os.environ.get("GITOPS_AGENT_KUSTOMIZE")
        self._kustomize = KustomizeRunner(binary)
        self._snapshots: OrderedDict[tuple[str, str], tuple[DesiredObject, ...]] = OrderedDict()
        self._snapshots_lock = threading.Lock()
        self.listeners: list[PassListener] = []
        #: after an apply, follow the rollout to the end (``sync --no-wait`` turns it off)
        self.follow_rollouts = True
        self.poll_s = 2.0
        #: set on shutdown: a pass stops following its rollout (it never stops between writes)
        self.stopping = threading.Event()

    # --- adapters, made once ------------------------------------------------------------------

    def kube(self, env: EnvironmentConfig) -> KubeClient:
        if env.context not in self._clients:
            self._clients[env.context] = KubeClient.connect(kubeconfig=self._kubeconfig, context=env.context)
        return self._clients[env.context]

    def request_counts(self) -> dict[str, int]:
        """Kubernetes API requests sent so far, by verb, over every cluster."""
        total: dict[str, int] = {}
        for client in self._clients.values():
            for verb, n in client.requests.items():
                total[verb] = total.get(verb, 0) + n
        return total

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    # --- one pass ------------------------------------------------------------------------------

    def environments(self, name: str | None) -> tuple[EnvironmentConfig, ...]:
        return (self.config.environment(name),) if name else self.config.environments

    def target_commit(self, env: EnvironmentConfig) -> str:
        return self.source.resolve(self.config.branch_of(env))

    def render(self, env: EnvironmentConfig, commit: str) -> list[DesiredObject]:
        """The environment's objects at a commit, validated, without a shared checkout."""
        with self._tree(commit) as root:
            objects = render_environment(root, env.path, kustomize=self._kustomize)
        validate_objects(objects)
        return objects

    @contextmanager
    def _tree(self, commit: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix=f"gitops-agent-{commit[:12]}-") as tmp:
            root = Path(tmp)
            self.source.export(commit, root)
            yield root

    def snapshot(self, env: EnvironmentConfig, commit: str) -> tuple[DesiredObject, ...]:
        """Rendered once per environment and commit: a commit's content never changes."""
        key = (env.name, commit)
        with self._snapshots_lock:
            if key in self._snapshots:
                self._snapshots.move_to_end(key)
                return self._snapshots[key]
        objects = tuple(self.render(env, commit))
        with self._snapshots_lock:
            self._snapshots[key] = objects
            # a daemon runs for months: keep the few snapshots a pass can need (target, last applied)
            while len(self._snapshots) > SNAPSHOTS_KEPT_PER_ENVIRONMENT * len(self.config.environments):
                self._snapshots.popitem(last=False)
        return objects

    def options(self, env: EnvironmentConfig, **overrides: Any) -> EngineOptions:
        base = EngineOptions(
            environment=env.name,
            namespace=env.namespace,
            field_manager=self.config.agent.field_manager,
            agent_namespace=self.config.agent.namespace,
            create_namespace=env.create_namespace,
            prune=env.prune,
            allow_empty=env.allow_empty,
            prune_propagation=env.prune_propagation,
            drift_policy=DriftPolicy(
                field_manager=self.config.agent.field_manager,
                expected_managers=env.expected_managers,
                ignore=env.ignore,
            ),
        )
        return replace(base, **overrides)

    def sync_all(
        self, name: str | None = None, *, dry_run: bool = False, explicit: bool = False, force: bool = False
    ) -> list[PassResult]:
        """Fetch once, then reconcile each environment on its own."""
        fetch_error = self.fetch()
        return [
            self.reconcile(env, dry_run=dry_run, explicit=explicit, force=force, fetch_error=fetch_error)
            for env in self.environments(name)
        ]

    def fetch(self) -> GitOpsError | None:
        """Fetch the config repo; the error, if any, is returned so each environment can report it."""
        try:
            self.source.fetch()
        except GitOpsError as exc:
            return exc
        return None

    def reconcile(
        self,
        env: EnvironmentConfig,
        *,
        dry_run: bool = False,
        explicit: bool = False,
        force: bool = False,
        fetch_error: GitOpsError | None = None,
    ) -> PassResult:
        """One environment's pass. ``explicit``: a person asked (``sync --env``), so a ``manual``
        environment applies; ``force``: re-apply even an applied commit. Never raises GitOpsError."""
        commit = ""
        try:
            if fetch_error is not None:
                raise fetch_error
            commit = self.target_commit(env)
            result = self._reconcile(env, commit, dry_run=dry_run, explicit=explicit, force=force)
        except GitOpsError as exc:
            result = PassResult(env.name, commit, FAILED, error=str(exc), reason=exc.reason)
        if not dry_run:
            self._tell(lambda listener: listener.finished(result))
        return result

    def _tell(self, event: Callable[[PassListener], None]) -> None:
        for listener in self.listeners:
            try:
                event(listener)
            except Exception:  # a listener must never break a pass
                log.exception("a pass listener (%s) failed; reconciliation goes on", type(listener).__name__)

    def _reconcile(
        self, env: EnvironmentConfig, commit: str, *, dry_run: bool, explicit: bool, force: bool
    ) -> PassResult:
        # Render and validate the environment at its commit.
        objects = self.snapshot(env, commit)
        engine = Engine(self.kube(env))
        options = self.options(env, force=force)
        # A dry run plans the whole snapshot against the cluster and writes nothing.
        if dry_run:
            return _from_sync(engine.sync(objects, commit=commit, options=options, dry_run=True), PLANNED)
        # A commit is applied once: new commits (or a forced re-apply) go through the engine.
        ledger = engine.read_ledger(options)
        held = self.held_commit(env, ledger, commit)
        if held != commit:  # `rollback --now` holds the environment at an older commit
            commit, objects = held, self.snapshot(env, held)
        if not ledger.is_current(commit) or force:
            if env.policy == "manual" and not explicit:
                drift = self._drift_since_last(env, engine, ledger)
                return PassResult(env.name, commit, WAITING, drift=drift, message="waiting for a manual sync")
            self._tell(lambda listener: listener.applying(env.name, commit))
            result = engine.sync(objects, commit=commit, options=options)
            self._record(engine, options, ledger, result, force)
            if not result.ok:
                return _from_sync(result, FAILED)
            outcome = _from_sync(result, APPLIED if result.wrote else REACHED)
            # "Applied" is not "working": follow what changed until it is healthy, failed or late.
            outcome = replace(outcome, health=self._follow(env, engine, objects, result))
        else:
            outcome = PassResult(env.name, commit, UP_TO_DATE)
        # Between commits: explain drift, and repair it only where the policy says so.
        drift = engine.drift(objects, options)
        to_repair = frozenset(d.key for d in drift if not d.expected and d.kind != EXTRA)
        if env.policy == "enforce" and to_repair:
            repaired = self._repair(engine, env, objects, commit, to_repair)
            drift = engine.drift(objects, options)
            outcome = replace(outcome, repaired=repaired)
        return replace(outcome, drift=drift)

    def held_commit(self, env: EnvironmentConfig, ledger: Ledger, head: str) -> str:
        """The commit to reconcile ``env`` to: the branch head, unless ``rollback --now`` holds the
        environment at an older one. The hold lasts while the environment's intent at the head is
        the one rolled back from (that commit, or a later one rendering the same snapshot, such as a
        change to another environment); the rollback PR merging, or any change to the environment,
        ends it. Without this the next pass would re-apply the very commit just rolled back."""
        hold = ledger.rollback_hold()
        if hold is None or head == hold.rolled_back_from:
            return head if hold is None else hold.commit
        now = self.snapshot(env, head)
        try:
            then = self.snapshot(env, hold.rolled_back_from)
        except GitOpsError:
            return head  # that commit is gone (force-pushed away): the intent changed
        return hold.commit if same_snapshot(now, then) else head

    def _follow(
        self, env: EnvironmentConfig, engine: Engine, objects: tuple[DesiredObject, ...], result: SyncResult
    ) -> Health | None:
        changed = [o.key for o in result.objects if o.action in (Action.CREATED, Action.CONFIGURED)]
        if not changed or not self.follow_rollouts:
            return None
        timeout = env.health_timeout_s or default_timeout(o.manifest for o in objects)
        return follow(changed, engine, timeout_s=timeout, poll_s=self.poll_s, stop=self.stopping).health

    def health(self, name: str) -> tuple[str, list[ObjectHealth]]:
        """Every object of the environment's applied snapshot, with its health now."""
        env = self.config.environment(name)
        error = self.fetch()
        if error is not None:
            raise error
        engine = Engine(self.kube(env))
        options = self.options(env)
        last = engine.read_ledger(options).last_success()
        if last is None:
            return "", []
        seen = engine.observe(self.snapshot(env, last.commit), options)
        return last.commit, list(health_of([key for key, _ in seen.applied], LiveView(seen.live, engine)))

    def _repair(
        self,
        engine: Engine,
        env: EnvironmentConfig,
        objects: tuple[DesiredObject, ...],
        commit: str,
        keys: frozenset[ObjectKey],
    ) -> SyncResult:
        """Self-heal under ``enforce``: re-apply the objects with unexpected drift, nothing else.
        Objects added by hand are reported, never deleted: they are not in the inventory."""
        return engine.sync(objects, commit=commit, options=self.options(env, only=keys, prune=False))

    def _drift_since_last(self, env: EnvironmentConfig, engine: Engine, ledger: Ledger) -> tuple[ObjectDrift, ...]:
        last = ledger.last_success()
        if last is None:
            return ()
        return engine.drift(self.snapshot(env, last.commit), self.options(env))

    def _record(self, engine: Engine, options: EngineOptions, ledger: Ledger, result: SyncResult, forced: bool) -> None:
        """One ledger entry per commit and outcome; a failure repeated every pass is recorded once."""
        outcome = FAILED if not result.ok else (APPLIED if result.wrote else REACHED)
        last = ledger.entries[-1] if ledger.entries else None
        if last and (last.commit, last.result, last.message) == (result.commit, outcome, result.error):
            return
        entry = LedgerEntry(
            commit=result.commit,
            time=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            agent_version=__version__,
            result=outcome,
            summary=result.changes.summary(),
            message=result.error,
            forced=forced,
        )
        engine.write_ledger(options, ledger.record(entry))

    def drift_all(self, name: str | None = None) -> list[PassResult]:
        """Drift of each environment against the commit it last applied; writes nothing."""
        fetch_error = self.fetch()
        out = []
        for env in self.environments(name):
            commit = ""
            try:
                if fetch_error is not None:
                    raise fetch_error
                engine = Engine(self.kube(env))
                ledger = engine.read_ledger(self.options(env))
                last = ledger.last_success()
                commit = last.commit if last else ""
                drift = self._drift_since_last(env, engine, ledger)
                out.append(PassResult(env.name, commit, UP_TO_DATE, drift=drift))
            except GitOpsError as exc:
                out.append(PassResult(env.name, commit, FAILED, error=str(exc), reason=exc.reason))
        return out

    def history(self, name: str) -> list[HistoryEntry]:
        """What ran in an environment and what each apply rolled forward, newest first."""
        env = self.config.environment(name)
        error = self.fetch()
        if error is not None:
            raise error
        ledger = Engine(self.kube(env)).read_ledger(self.options(env))
        running = ledger.last_success()
        out: list[HistoryEntry] = []
        previous: str | None = None
        for entry in ledger.entries:
            commits = tuple(self.source.log(previous, entry.commit)) if entry.commit != previous else ()
            out.append(HistoryEntry(entry, commits, running is not None and entry is running))
            if entry.result in (APPLIED, REACHED):
                previous = entry.commit
        return out[::-1]

    def status(self, name: str | None = None) -> list[EnvironmentStatus]:
        """Target commit, applied commit, drift and whether the live state matches, per environment."""
        fetch_error = self.fetch()
        return [self._status(env, fetch_error) for env in self.environments(name)]

    def _status(self, env: EnvironmentConfig, fetch_error: GitOpsError | None) -> EnvironmentStatus:
        target = applied = ""
        try:
            if fetch_error is not None:
                raise fetch_error
            target = self.target_commit(env)
            engine = Engine(self.kube(env))
            options = self.options(env)
            ledger = engine.read_ledger(options)
            last = ledger.last_success()
            applied = last.commit if last else ""
            objects = self.snapshot(env, applied) if applied else ()
            seen = engine.observe(objects, options)
            drift = engine.drift_in(seen, options)
            health = health_of([key for key, _ in seen.applied], LiveView(seen.live, engine))
            latest = ledger.entries[-1] if ledger.entries else None
            held = self.held_commit(env, ledger, target)
            rolled_back = f" (rolled back to {held[:12]} until the rollback PR merges)" if held != target else ""
            return EnvironmentStatus(
                environment=env.name,
                target_commit=target,
                applied_commit=applied,
                objects=len(objects),
                in_sync=bool(applied) and applied == held and not any(not d.expected for d in drift),
                last_result=(f"{latest.result}: {latest.summary}" if latest else "never applied") + rolled_back,
                drift_expected=sum(1 for d in drift if d.expected),
                drift_unexpected=sum(1 for d in drift if not d.expected),
                health=aggregate(o.status for o in health).value if applied else "",
            )
        except GitOpsError as exc:
            return EnvironmentStatus(env.name, target, applied, 0, False, f"error: {exc.reason}", error=str(exc))


def same_snapshot(a: Sequence[DesiredObject], b: Sequence[DesiredObject]) -> bool:
    """Do two renders hold the same objects with the same manifests? (DesiredObject's own equality
    looks at keys and sources only.)"""
    return [(o.key, o.manifest) for o in a] == [(o.key, o.manifest) for o in b]


def _from_sync(result: SyncResult, outcome: str) -> PassResult:
    return PassResult(result.environment, result.commit, outcome, sync=result, error=result.error, reason=result.reason)
