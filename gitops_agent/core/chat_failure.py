"""Failed syncs and failed rollouts, for chat: what one is (``FailureSummary``), when it is the same
failure again (``failure_fingerprint``), and its Slack and generic webhook messages. Pure.

A failure is told once per environment, commit and failure: the same commit failing the same way
pass after pass is one message; a new commit, or another reason, is news again. Timings and counts
in the error text ("timed out after 630s", "0/3 ready") do not make a failure new.

Generic webhook payload (``failure_payload``)::

    {
      "schema": "gitops-agent.failure/v1",
      "event": "sync.failed" | "sync.resolved" | "rollout.failed" | "rollout.resolved",
      "environment": "prod",
      "commit": "<sha>" | "",               "": the config repository could not be read at all
      "fingerprint": "<sha256 hex>" | null (on *.resolved),
      "reason": "ApplyFailed" | "RenderFailed" | … | "RolloutFailed" | "RolloutTimedOut" | "" (resolved),
      "error": "what went wrong" | "",      at most 4,000 characters; never a Secret's value
      "text": "one line a person can read",
      "target_url": "<link to details>" | null
    }
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from gitops_agent.core.chat_report import (
    SLACK_SECTION_LIMIT,
    ChatMessage,
    code_block,
    cut_lines,
    esc,
    header,
    link,
    section,
    short,
)
from gitops_agent.core.ledger import MESSAGE_CHARS
from gitops_agent.core.report import cut

FAILURE_SCHEMA = "gitops-agent.failure/v1"
FailureKind = Literal["sync", "rollout"]
ROLLOUT_FAILED, ROLLOUT_TIMED_OUT = "RolloutFailed", "RolloutTimedOut"
#: the error quoted in a webhook payload, as the ledger keeps it; the whole error is in the logs
ERROR_LIMIT = MESSAGE_CHARS
#: the error quoted in Slack, as a code block (``` on each side included)
SLACK_ERROR_LIMIT = SLACK_SECTION_LIMIT


@dataclass(frozen=True)
class FailureSummary:
    """The state of one environment's syncs or rollouts after a pass: failed (``reason`` and
    ``error`` set) or fine (both empty: a resolution, if a failure was told)."""

    environment: str
    commit: str
    kind: FailureKind
    reason: str = ""
    error: str = ""
    target_url: str | None = None

    @property
    def failed(self) -> bool:
        return bool(self.reason or self.error)


def rollout_reason(message: str) -> str:
    """Timed out (the agent stopped waiting) or failed (Kubernetes said so)."""
    return ROLLOUT_TIMED_OUT if message.startswith("timed out") else ROLLOUT_FAILED


def failure_fingerprint(f: FailureSummary) -> str | None:
    """sha256 of what makes a failure the same one (None: nothing failed). A rollout is the same
    failure for the same commit and reason; a sync also by the shape of its error, digits aside."""
    if not f.failed:
        return None
    parts = [f.environment, f.kind, f.commit, f.reason]
    if f.kind == "sync":
        parts.append(re.sub(r"\d+", "#", " ".join(f.error.split())))
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()


def failure_message(f: FailureSummary) -> ChatMessage:
    """``sync.failed`` / ``rollout.failed``, or ``*.resolved`` when ``f`` is not a failure."""
    event = f"{f.kind}.{'failed' if f.failed else 'resolved'}"
    text = _text(f)
    return ChatMessage(f"{event} in {f.environment}", _slack(f, text), failure_payload(f, event, text))


def _text(f: FailureSummary) -> str:
    commit = f"commit {short(f.commit)}" if f.commit else "the config repository"
    if f.kind == "sync":
        if not f.failed:
            return f"Sync of {f.environment} works again ({commit})"
        what = f"{commit} could not be applied" if f.commit else "the config repository could not be read"
        return f"Sync of {f.environment} failed ({f.reason or 'error'}): {what}"
    if not f.failed:
        return f"Rollout in {f.environment} healthy again ({commit})"
    verb = "timed out" if f.reason == ROLLOUT_TIMED_OUT else "failed"
    return f"Rollout of {commit} in {f.environment} {verb}"


def _slack(f: FailureSummary, text: str) -> dict[str, Any]:
    icon = "❌" if f.failed else "✅"
    blocks: list[dict[str, Any]] = [header(f"{icon} {text}")]
    facts = {"Environment": esc(f.environment), "Commit": f"`{short(f.commit)}`" if f.commit else "unknown"}
    if f.failed:
        facts["Reason"] = esc(f.reason or "error")
    blocks.append(section(esc(text) + "." + link(f.target_url), facts))
    if f.error:  # errors quote manifests and API answers: anyone's text, kept in a code block
        blocks.append(section(code_block(f.error, SLACK_ERROR_LIMIT)))
    return {"text": esc(text), "blocks": blocks}


def failure_payload(f: FailureSummary, event: str, text: str) -> dict[str, Any]:
    return {
        "schema": FAILURE_SCHEMA,
        "event": event,
        "environment": f.environment,
        "commit": f.commit,
        "fingerprint": failure_fingerprint(f),
        "reason": f.reason,
        "error": cut_lines(f.error, ERROR_LIMIT),
        "text": cut(text, 300),
        "target_url": f.target_url,
    }
