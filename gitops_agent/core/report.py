"""Words for people on a commit: GitHub commit statuses, rendered from pass results.

Pure functions only (no I/O, no clock): the adapters in ``gitops_agent.adapters.github``
sends what these functions return, so every rule about *what* is
said can be tested without a network.

Commit statuses (context ``gitops-agent/<environment>``; GitHub cuts descriptions at 140
characters, so ``cut`` does it first, at a word, with an ellipsis). ``success`` is a promise people
merge on: only a snapshot applied, whose rollout was **read** as Current, with no unexpected drift::

    phase                                      state    description
    rendering / validation / apply failed      error    "rendering failed: <error>"
    waiting (manual policy)                    pending  "waiting for approval: gitops-agent sync --env prod"
    applying                                   pending  "applying 3 created, 1 configured"
    progressing (or not followed yet)          pending  "3 created; rollout in progress: api 1/3 ready"
    healthy, no unexpected drift               success  "3 created, 1 configured; rollout healthy"
    … applied on a person's approval           success  "…; rollout healthy; approved by @alice"
    healthy, all drift expected                success  "…; rollout healthy; 1 object drifted as expected"
    healthy, with unexpected drift             failure  "unexpected drift in 2 objects; …"
    rollout failed or timed out                failure  "rollout failed: api 0/3 ready, CrashLoopBackOff …"

Chat drift reports are ``core.chat_report``'s.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from gitops_agent.model import Action, ChangeSet

#: GitHub refuses (422) a status description longer than this
DESCRIPTION_LIMIT = 140
STATUS_CONTEXT = "gitops-agent/{environment}"
ELLIPSIS = "…"


# --- commit statuses ------------------------------------------------------------------------------


class Phase(enum.StrEnum):
    """Where a pass of one environment stands, as the status reports it."""

    RENDERING_FAILED = "rendering failed"
    VALIDATION_FAILED = "validation failed"
    APPLY_FAILED = "apply failed"
    WAITING = "waiting"
    APPLYING = "applying"
    PROGRESSING = "progressing"
    HEALTHY = "healthy"
    ROLLOUT_FAILED = "rollout failed"


class StatusState(enum.StrEnum):
    """GitHub's four commit status states."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"


#: the snapshot never reached the cluster intact: GitHub's ``error``, not a verdict on the rollout
_BROKEN = (Phase.RENDERING_FAILED, Phase.VALIDATION_FAILED, Phase.APPLY_FAILED)


@dataclass(frozen=True)
class EnvironmentReport:
    """What one pass of one environment has to say on its commit.

    ``changes`` says what the commit's apply did (``3 created, 1 configured``: ``change_counts``);
    ``health_message`` the rollout's words (``api 0/3 ready, CrashLoopBackOff in container app``);
    ``error`` the message of a failed render, validation or apply; ``waiting_hint`` how a person
    approves a waiting commit; drift counts are objects, split as ``core.drift`` classifies them.
    """

    environment: str
    commit: str
    phase: Phase
    changes: str = ""
    health_message: str = ""
    waiting_hint: str = ""
    #: the GitHub login that approved applying this commit to a ``manual`` environment
    approved_by: str = ""
    #: the charts of the commit's snapshot, as ``describe`` says them: "web 1.2.3"
    charts: str = ""
    error: str = ""
    drift_expected: int = 0
    drift_unexpected: int = 0
    target_url: str | None = None


@dataclass(frozen=True)
class StatusUpdate:
    """One commit status, ready to post: ``description`` is already within GitHub's 140 characters."""

    context: str
    state: StatusState
    description: str
    target_url: str | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body of ``POST /repos/{owner}/{repo}/statuses/{sha}``."""
        out: dict[str, Any] = {"state": self.state.value, "context": self.context, "description": self.description}
        if self.target_url:
            out["target_url"] = self.target_url
        return out


def commit_status(report: EnvironmentReport) -> StatusUpdate:
    """The status a pass leaves on its commit (the table in the module docstring)."""
    state, text = _state_and_text(report)
    return StatusUpdate(
        context=STATUS_CONTEXT.format(environment=report.environment),
        state=state,
        description=cut(text, DESCRIPTION_LIMIT),
        target_url=report.target_url,
    )


def _state_and_text(r: EnvironmentReport) -> tuple[StatusState, str]:
    if r.phase in _BROKEN:
        return StatusState.ERROR, f"{r.phase.value}: {r.error or 'no details'}"
    if r.phase is Phase.WAITING:
        return StatusState.PENDING, _join("waiting for approval", r.waiting_hint)
    if r.phase is Phase.APPLYING:
        return StatusState.PENDING, f"applying {r.changes}" if r.changes else "applying"
    if r.phase is Phase.PROGRESSING:
        rollout = f"rollout in progress: {r.health_message}" if r.health_message else "rollout in progress"
        return StatusState.PENDING, _join(r.charts, r.changes, rollout)
    if r.phase is Phase.ROLLOUT_FAILED:
        return StatusState.FAILURE, f"rollout failed: {r.health_message}" if r.health_message else "rollout failed"
    if r.drift_unexpected:
        return StatusState.FAILURE, _join(_drift_words(r), _outcome_words(r))
    return StatusState.SUCCESS, _join(_outcome_words(r), _drift_words(r))


def _outcome_words(r: EnvironmentReport) -> str:
    outcome = f"{r.changes}; rollout healthy" if r.changes else "no changes; healthy"
    return _join(r.charts, outcome, f"approved by @{r.approved_by}" if r.approved_by else "")


def _drift_words(r: EnvironmentReport) -> str:
    parts = []
    if r.drift_unexpected:
        parts.append(f"unexpected drift in {objects_word(r.drift_unexpected)}")
    if r.drift_expected:
        parts.append(f"{objects_word(r.drift_expected)} drifted as expected")
    return "; ".join(parts)


def objects_word(n: int) -> str:
    """``1 object``, ``3 objects``."""
    return f"{n} object{'' if n == 1 else 's'}"


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def change_counts(changes: ChangeSet) -> str:
    """``3 created, 1 configured`` — what the pass did; ``unchanged`` objects are not news."""
    shown = [a for a in Action if a is not Action.UNCHANGED]
    return ", ".join(f"{n} {a.value}" for a in shown if (n := changes.count(a)))


def summary_counts(summary: str) -> str:
    """``change_counts`` of a ledger entry's summary (``ChangeSet.summary``: ``2 created, 5
    unchanged`` or ``nothing to do``): what a later pass says the running commit's apply did."""
    shown = {a.value for a in Action if a is not Action.UNCHANGED}
    return ", ".join(p for p in (part.strip() for part in summary.split(",")) if p.partition(" ")[2] in shown)


def cut(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters: cut at a word when one is near the end,
    then an ellipsis, so a description never ends in half a word."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = text[: limit - len(ELLIPSIS)]
    space = head.rfind(" ")
    if space >= len(head) // 2:
        head = head[:space]
    return head.rstrip(" ,;:-") + ELLIPSIS
