"""The status page's view model, pure: which commit runs where, built from the environments' ledgers,
their last passes and the config repository's log (``status_board`` gathers them; the page and
``GET /api/v1/status`` show the result as it is).

A row is a commit that changed at least one environment; a column an environment. A cell says what
that commit is to that environment:

- ``running``: the environment runs this change (applied itself, or rolled forward by a later
  commit's apply: ``via``);
- ``replaced``: applied once, since replaced by a newer change to the environment;
- ``failed``: its apply failed, or its rollout did (then ``running`` is still true: it is what runs);
- ``rolled-back``: ``rollback --now`` put an older commit back in its place;
- ``waiting``: after the running commit, waiting for a person (a ``manual`` environment);
- ``pending``: after the running commit, not applied yet (the next pass takes it).

No cell for a commit that did not change the environment: an environment following the branch
applies every commit, but one that changed only prod brings nothing to dev, which still runs its own
last change. Nothing here carries a manifest value:
drift is which fields, who, since when, never what they hold (a Secret's would be masked, but a
ConfigMap may hold what should have been one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gitops_agent.core.drift import DriftCounts, ObjectDrift
from gitops_agent.core.ledger import FAILED, ROLLOUT_FAILED, Ledger, LedgerEntry

#: bumped when a field changes meaning or goes; new fields do not bump it
SCHEMA_VERSION = 1
RUNNING, REPLACED, FAILED_CELL, ROLLED_BACK, WAITING_CELL, PENDING = (
    "running", "replaced", "failed", "rolled-back", "waiting", "pending",
)  # fmt: skip
STATES = (RUNNING, REPLACED, FAILED_CELL, ROLLED_BACK, WAITING_CELL, PENDING)
#: GitHub's merge and squash subjects name the pull request that brought a commit
_MERGED_PR = re.compile(r"^Merge pull request #(\d+)\b|\(#(\d+)\)\s*$")


@dataclass(frozen=True)
class BoardCommit:
    sha: str
    author: str  # a name, without the e-mail address
    date: str  # RFC 3339
    subject: str  # untrusted text: the page sets it as text, never as markup


@dataclass(frozen=True)
class EnvironmentFacts:
    """What is known of one environment: its ledger (oldest first), the commits each entry rolled
    forward (``carried``, parallel to ``entries``), the commits after the running one that changed
    it (``ahead``, newest first), which row commits changed it (``touched``), and its last pass as
    ``/status`` shows it (``last_pass``; None before the first)."""

    name: str
    policy: str
    branch: str
    owner: str = ""
    target: str = ""  # the branch head it follows ("" when unresolved)
    entries: tuple[LedgerEntry, ...] = ()
    carried: tuple[tuple[str, ...], ...] = ()
    ahead: tuple[str, ...] = ()
    touched: frozenset[str] = frozenset()
    last_pass: Mapping[str, Any] | None = None
    drift: tuple[ObjectDrift, ...] = ()
    error: str = ""  # why the facts are incomplete (the ledger could not be read)


@dataclass(frozen=True)
class Links:
    """Where a commit and a pull request live on GitHub; ``web`` "" when the repository is not there."""

    web: str = ""  # https://github.com/owner/name

    def commit(self, sha: str) -> str:
        return f"{self.web}/commit/{sha}" if self.web and sha else ""

    def checks(self, sha: str) -> str:
        return f"{self.web}/commit/{sha}/checks" if self.web and sha else ""

    def pull_request(self, number: int) -> str:
        return f"{self.web}/pull/{number}" if self.web else ""


@dataclass(frozen=True)
class Header:
    """The replica answering, as ``/status`` says it."""

    identity: str
    leader: bool
    members: tuple[str, ...] = ()
    not_ready: tuple[str, ...] = ()
    fetch_error: str = ""


def board(
    header: Header, commits: Sequence[BoardCommit], envs: Sequence[EnvironmentFacts], links: Links, now: str
) -> dict[str, Any]:
    """The whole view model (the JSON of ``GET /api/v1/status``; the README documents it)."""
    cells = {env.name: environment_cells(env) for env in envs}
    return {
        "schema": SCHEMA_VERSION,
        "generated_at": now,
        "identity": header.identity,
        "leader": header.leader,
        "members": list(header.members),
        "ready": not header.not_ready,
        "not_ready": list(header.not_ready),
        "fetch_error": header.fetch_error,
        "repository": links.web,
        "states": list(STATES),
        "environments": [_environment(env, links) for env in envs],
        "commits": [_row(c, envs, cells, links) for c in commits],
    }


def environment_cells(env: EnvironmentFacts) -> dict[str, dict[str, Any]]:
    """Per commit sha: what it is to ``env``. Entries are replayed oldest first. An apply brings the
    commits it ``carried`` (those that changed the environment); one that carried none (a commit
    changing another environment, a forced re-apply) changes nothing here, so what runs is still
    the changes the last apply that brought some did."""
    running = Ledger(env.entries).last_success()
    out: dict[str, dict[str, Any]] = {}
    live: tuple[str, ...] = ()  # the changes the environment runs, as of the entry replayed
    running_changes: tuple[str, ...] = ()
    for index, entry in enumerate(env.entries):
        brought = _brought(env, index, entry)
        if entry.rolled_back_from:
            _roll_back(out, live, entry)
        if brought:
            cell = _entry_cell(entry)
            for sha in brought:
                out[sha] = {**cell, "via": "" if sha == entry.commit else entry.commit}
            if entry.result != FAILED:
                live = brought
        if entry is running:
            running_changes = live
    if running is not None:
        _mark_running(out, running_changes, running)
    for sha in env.ahead:
        out.setdefault(sha, _ahead_cell(env))
    return out


def _brought(env: EnvironmentFacts, index: int, entry: LedgerEntry) -> tuple[str, ...]:
    """The commits an entry's apply brought: those it carried; the commit itself for a rollback
    (whatever it changed, it is what runs) and for a failure (the commit it failed at)."""
    carried = env.carried[index] if index < len(env.carried) else (entry.commit,)
    if entry.rolled_back_from or (entry.result == FAILED and not carried):
        return (entry.commit,)
    return carried


def _mark_running(out: dict[str, dict[str, Any]], changes: tuple[str, ...], running: LedgerEntry) -> None:
    """What runs: its rollout is the running entry's (an apply that changed nothing here follows it too)."""
    failed = running.rollout == ROLLOUT_FAILED
    for sha in changes:
        cell = out[sha]
        out[sha] = {
            **cell,
            "state": FAILED_CELL if failed else RUNNING,
            "running": True,
            "rollout": running.rollout,
            "message": running.rollout_message if failed else cell["message"],
        }


def pull_request_of(subject: str) -> int | None:
    """The pull request a merge or squash commit names, or None."""
    found = _MERGED_PR.search(subject)
    if found is None:
        return None
    return int(found.group(1) or found.group(2))


def web_url(api_url: str | None, repository: str | None, repo_url: str) -> str:
    """The repository's page: from the ``github`` config (github.com or GitHub Enterprise's
    ``https://host/api/v3``), else from a github.com ``repo.url``; "" when it is not on GitHub."""
    if repository and api_url:
        base = api_url.rstrip("/")
        if base == "https://api.github.com":
            return f"https://github.com/{repository}"
        if base.endswith("/api/v3"):
            return f"{base[: -len('/api/v3')]}/{repository}"
    found = re.fullmatch(r"(?:https://|ssh://git@|git@)github\.com[/:]([\w.-]+/[\w.-]+?)(?:\.git)?/?", repo_url)
    return f"https://github.com/{found.group(1)}" if found else ""


# --- cells ----------------------------------------------------------------------------------------


def _entry_cell(entry: LedgerEntry) -> dict[str, Any]:
    """A commit as an entry brought it: replaced until it is found running (``_mark_running``)."""
    return {
        "state": FAILED_CELL if entry.result == FAILED else REPLACED,
        "running": False,
        "via": "",
        "time": entry.time,
        "result": entry.result,
        "rollout": entry.rollout,
        "message": entry.message or entry.rollout_message,
        "approved_by": entry.approved_by,
        "applied_by": entry.applied_by,
        "rolled_back_from": entry.rolled_back_from,
        "images": list(entry.images),
        "charts": [{"name": c.name, "version": c.version} for c in entry.charts],
    }


def _roll_back(cells: dict[str, dict[str, Any]], live: tuple[str, ...], entry: LedgerEntry) -> None:
    """What ran until ``rollback --now`` put an older commit back is rolled back."""
    for sha in (*live, entry.rolled_back_from):
        if sha in cells:
            cells[sha] = {**cells[sha], "state": ROLLED_BACK, "running": False, "rolled_back_to": entry.commit}


def _ahead_cell(env: EnvironmentFacts) -> dict[str, Any]:
    last = env.last_pass or {}
    state = WAITING_CELL if env.policy == "manual" else PENDING
    message = "waiting for an approval (manual policy)" if state == WAITING_CELL else "the next pass applies it"
    if last.get("ok") is False and last.get("commit") == env.target:
        state, message = FAILED_CELL, str(last.get("last_error") or "")
    return {"state": state, "running": False, "via": env.target, "message": message}


# --- environments and rows ------------------------------------------------------------------------


def _environment(env: EnvironmentFacts, links: Links) -> dict[str, Any]:
    running = Ledger(env.entries).last_success()
    counts = DriftCounts.of(env.drift)
    return {
        "name": env.name,
        "policy": env.policy,
        "branch": env.branch,
        "owner": env.owner,
        "target": env.target,
        "running": _running_json(running, links),
        "waiting": bool(env.ahead) and env.policy == "manual",
        "last_pass": dict(env.last_pass) if env.last_pass is not None else None,
        "drift": {
            "expected": counts.expected,
            "unexpected": counts.unexpected,
            "objects": [_drift_json(d) for d in env.drift],
        },
        "error": env.error,
    }


def _running_json(entry: LedgerEntry | None, links: Links) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        "commit": entry.commit,
        "time": entry.time,
        "rollout": entry.rollout,
        "rollout_message": entry.rollout_message,
        "approved_by": entry.approved_by,
        "applied_by": entry.applied_by,
        "rolled_back_from": entry.rolled_back_from,
        "images": list(entry.images),
        "charts": [{"name": c.name, "version": c.version} for c in entry.charts],
        "links": {"commit": links.commit(entry.commit), "checks": links.checks(entry.commit)},
    }


def _drift_json(d: ObjectDrift) -> dict[str, Any]:
    return {
        "group": d.key.group,
        "kind": d.key.kind,
        "namespace": d.key.namespace,
        "name": d.key.name,
        "state": d.state,
        "expected": d.expected,
        # which field, who, since when, expected or not: never the values (see the module's words)
        "fields": [{"path": f.path, "manager": f.manager, "since": f.since, "expected": f.expected} for f in d.fields],
    }


def _row(
    commit: BoardCommit,
    envs: Sequence[EnvironmentFacts],
    cells: Mapping[str, Mapping[str, dict[str, Any]]],
    links: Links,
) -> dict[str, Any]:
    number = pull_request_of(commit.subject)
    return {
        "sha": commit.sha,
        "author": commit.author,
        "date": commit.date,
        "subject": commit.subject,
        "pull_request": {"number": number, "url": links.pull_request(number)} if number is not None else None,
        "links": {"commit": links.commit(commit.sha), "checks": links.checks(commit.sha)},
        "changed": [env.name for env in envs if commit.sha in env.touched],
        "cells": {env.name: cells[env.name].get(commit.sha) for env in envs},
    }
