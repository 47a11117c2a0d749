"""Gathers what the status page shows (``core.board`` builds it): each environment's ledger, its last
pass as the scheduler keeps it, and the config repository's log, read from the local mirror the
passes fetch (the page never fetches, and never asks GitHub).

Cheap to poll: ledgers come from the daemon's watch of them when it is synced (no request), logs and
the paths each environment renders from are kept per commit (commits do not change), and the whole
is built at most once per ``ttl_s`` however many people look. Per object health is read on demand.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from gitops_agent.adapters.git_source import CommitInfo
from gitops_agent.agent import Agent
from gitops_agent.config import EnvironmentConfig
from gitops_agent.core.board import BoardCommit, EnvironmentFacts, Header, Links, board, web_url
from gitops_agent.core.drift import ObjectDrift
from gitops_agent.core.health import aggregate
from gitops_agent.core.ledger import APPLIED, REACHED, Ledger, ledger_time
from gitops_agent.errors import GitOpsError
from gitops_agent.present import health_json
from gitops_agent.reconcile import state_store
from gitops_agent.scheduler import EnvironmentView, Scheduler, SchedulerStatus
from gitops_agent.status_page import environment_json

log = logging.getLogger(__name__)

#: rows: the newest commits that changed any environment, plus whatever each one runs
MAX_COMMITS = 30
#: ledger entries replayed per environment: enough to place every row
MAX_ENTRIES = 40
#: drift of an environment another replica runs is read at most this often
FOREIGN_DRIFT_S = 30.0
_KEPT = 2048  # remembered logs and source paths

T = TypeVar("T")

#: the page and its assets (package data under ``static/``), by path: file and content type
BOARD_ASSETS = {
    "/": ("board.html", "text/html; charset=utf-8"),
    "/assets/board.js": ("board.js", "text/javascript; charset=utf-8"),
    "/assets/board.css": ("board.css", "text/css; charset=utf-8"),
    "/assets/icon.svg": ("icon.svg", "image/svg+xml"),
}


@functools.cache
def board_asset(path: str) -> tuple[bytes, str]:
    """An asset's bytes (read once) and content type."""
    name, content_type = BOARD_ASSETS[path]
    return importlib.resources.files("gitops_agent").joinpath("static", name).read_bytes(), content_type


class StatusBoard:
    def __init__(
        self,
        scheduler: Scheduler,
        agent: Agent,
        *,
        ttl_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scheduler = scheduler
        self.agent = agent
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()  # one build at a time; the others wait and share it
        self._built: tuple[float, dict[str, Any]] | None = None
        self._kept: OrderedDict[Hashable, Any] = OrderedDict()
        self._foreign: dict[str, tuple[float, tuple[ObjectDrift, ...]]] = {}
        config = agent.config
        github = config.github
        self.links = Links(web_url(github.api_url if github else None, github.repository if github else None,
                                   config.repo.url))  # fmt: skip

    # --- what the routes answer -------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            if self._built is None or now - self._built[0] >= self.ttl_s:
                self._built = (now, self._build())
            return self._built[1]

    def health(self, name: str) -> dict[str, Any]:
        """Every object of the environment's running snapshot with its health and reasons, read now."""
        try:  # from the mirror the passes fetch: a fetch per click would race theirs for nothing
            commit, objects = self.agent.queries.health(self.agent.config.environment(name))
        except GitOpsError as exc:
            return {"environment": name, "commit": "", "status": "Unknown", "objects": [], "error": str(exc)}
        overall = aggregate(o.status for o in objects)
        return {**health_json(name, commit, overall, objects), "error": ""}

    # --- gathering ---------------------------------------------------------------------------------

    def _build(self) -> dict[str, Any]:
        status = self.scheduler.status()
        views = {v.name: v for v in status.environments}
        envs = [self._facts(env, views[env.name]) for env in self.agent.config.environments]
        commits = self._rows(envs)
        envs = [self._touched(env, commits) for env in envs]
        now = ledger_time(datetime.now(UTC))
        return board(_header(status), [_commit(c) for c in commits], envs, self.links, now)

    def _facts(self, env: EnvironmentConfig, view: EnvironmentView) -> EnvironmentFacts:
        error = ""
        try:
            ledger = self._ledger(env)
        except GitOpsError as exc:
            ledger, error = Ledger(), f"the ledger could not be read: {exc}"
        entries = ledger.entries[-MAX_ENTRIES:]
        target = self._target(env)
        carried = self._carried(env, entries)
        running = last.commit if (last := Ledger(entries).last_success()) else None
        ahead = (self._log(running, target, self._sources(env, target)) or []) if target and target != running else []
        return EnvironmentFacts(
            name=env.name, policy=env.policy, branch=view.branch, owner=view.owner, target=target,
            entries=entries, carried=carried, ahead=tuple(c.sha for c in ahead),
            last_pass=environment_json(view) if view.last is not None else None,
            drift=self._drift(env, view), error=error,
        )  # fmt: skip

    def _ledger(self, env: EnvironmentConfig) -> Ledger:
        store = state_store(self.agent.config, self.agent.clusters.agent_api(env))
        return store.read_ledger(env.name, self.agent.reconciler.watches)

    def _target(self, env: EnvironmentConfig) -> str:
        try:
            return self.agent.target_commit(env)
        except GitOpsError:
            return ""  # not fetched yet, or the branch is gone: /status says why

    def _carried(self, env: EnvironmentConfig, entries: Sequence[Any]) -> tuple[tuple[str, ...], ...]:
        """Per entry, the commits since the previous applied one that changed the environment (as
        ``history`` counts them); just its own commit when the log cannot say (force-pushed away)."""
        out: list[tuple[str, ...]] = []
        previous: str | None = None
        for entry in entries:
            if entry.commit == previous:
                out.append(())  # a re-apply: it changed nothing
            else:
                found = self._log(previous, entry.commit, self._sources(env, entry.commit))
                out.append((entry.commit,) if found is None else tuple(c.sha for c in found))
            if entry.result in (APPLIED, REACHED):
                previous = entry.commit
        return tuple(out)

    def _drift(self, env: EnvironmentConfig, view: EnvironmentView) -> tuple[ObjectDrift, ...]:
        """The last pass's drift; for an environment another replica runs, read now and then."""
        if view.last is not None:
            return view.last.drift
        now = self._clock()
        kept = self._foreign.get(env.name)
        if kept is None or now - kept[0] >= FOREIGN_DRIFT_S:
            kept = (now, self.agent.queries.drift(env).drift)
            self._foreign[env.name] = kept
        return kept[1]

    def _rows(self, envs: Sequence[EnvironmentFacts]) -> list[CommitInfo]:
        """The newest commits that changed any environment, in git's order (dates tie: a script
        commits several a second), and for each environment the newest change it runs and the newest
        waiting for it (however old: what runs and what waits are what people look for)."""
        paths: dict[str, set[str]] = {}  # per branch head: what its environments render from
        for env in envs:
            if env.target:
                config = self.agent.config.environment(env.name)
                paths.setdefault(env.target, set()).update(self._sources(config, env.target))
        found: dict[str, tuple[CommitInfo, int]] = {}
        for target, union in paths.items():
            for index, c in enumerate(self._log(None, target, tuple(sorted(union)), MAX_COMMITS) or ()):
                found.setdefault(c.sha, (c, index))
        for env in envs:  # what runs, and what waits, however far down the log
            for sha in {_newest_running_change(env), *env.ahead[:1]} - {""} - set(found):
                for c in self._log(None, sha, (), 1) or ():
                    found[c.sha] = (c, MAX_COMMITS)
        rows = sorted(found.values(), key=lambda row: (-row[0].date.timestamp(), row[1]))
        return [c for c, _ in rows[:MAX_COMMITS]] + [c for c, i in rows[MAX_COMMITS:] if i == MAX_COMMITS]

    def _changes(self, env: EnvironmentFacts) -> list[CommitInfo]:
        """The newest commits up to its target that changed what the environment renders."""
        config = self.agent.config.environment(env.name)
        return self._log(None, env.target, self._sources(config, env.target), MAX_COMMITS) or []

    def _touched(self, env: EnvironmentFacts, commits: Sequence[CommitInfo]) -> EnvironmentFacts:
        touched = {c.sha for c in self._changes(env)} | {sha for carried in env.carried for sha in carried}
        touched |= set(env.ahead)
        return replace(env, touched=frozenset(touched & {c.sha for c in commits}))

    # --- kept per commit (commits never change) ------------------------------------------------------

    def _sources(self, env: EnvironmentConfig, commit: str) -> tuple[str, ...]:
        if not commit:
            return (env.path,)
        return self._keep(("sources", env.name, commit), lambda: self.agent.snapshots.sources(env, commit))

    def _log(self, old: str | None, new: str, paths: tuple[str, ...], limit: int = 100) -> list[CommitInfo] | None:
        """None when git cannot say (a commit force-pushed away)."""
        if not new:
            return []

        def read() -> list[CommitInfo] | None:
            try:
                return self.agent.snapshots.source.log(old, new, paths=paths, limit=limit)
            except GitOpsError:
                return None

        return self._keep(("log", old, new, paths, limit), read)

    def _keep(self, key: Hashable, read: Callable[[], T]) -> T:
        if key in self._kept:
            self._kept.move_to_end(key)
            value: T = self._kept[key]
            return value
        value = read()
        if value is None:  # git could not say: the mirror may fetch the commit by the next look
            return value
        self._kept[key] = value
        while len(self._kept) > _KEPT:
            self._kept.popitem(last=False)
        return value


def _newest_running_change(env: EnvironmentFacts) -> str:
    """The newest commit the last applied entry that changed the environment brought ("": none)."""
    for entry, carried in zip(reversed(env.entries), reversed(env.carried), strict=False):
        if entry.result in (APPLIED, REACHED) and carried:
            return carried[0]
    return ""


def _header(status: SchedulerStatus) -> Header:
    return Header(status.identity, status.leading, status.members, status.ready, status.fetch_error)


def _commit(c: CommitInfo) -> BoardCommit:
    author = c.author.split(" <", 1)[0]  # the name: an e-mail address is no one's business here
    return BoardCommit(c.sha, author, c.date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), c.subject)
