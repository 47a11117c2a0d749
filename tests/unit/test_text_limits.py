"""Error texts are clipped to one documented size wherever the agent keeps or shows them: the ledger,
/status (JSON and page), chat payloads; GitHub's own limits where GitHub sets them (README table)."""

from __future__ import annotations

from gitops_agent.core.chat_failure import ERROR_LIMIT, FailureSummary, failure_message
from gitops_agent.core.ledger import MESSAGE_CHARS, SUMMARY_CHARS, LedgerEntry, clip, clipped
from gitops_agent.core.report import DESCRIPTION_LIMIT, cut
from gitops_agent.model import Health, HealthStatus
from gitops_agent.reconcile import PassResult
from gitops_agent.scheduler import EnvironmentView, SchedulerStatus
from gitops_agent.status_page import status_html, status_json

HUGE = "Deployment/shop/api-00000 is invalid; " * 5000  # ~190,000 characters


def status(result: PassResult, fetch_error: str = "") -> SchedulerStatus:
    view = EnvironmentView("prod", "report", "main", 60.0, False, False, result, 0.0, 1.0, None)
    return SchedulerStatus(True, "pod-a", (), fetch_error, (view,))


def test_clip_keeps_the_start_and_says_how_much_was_left_out() -> None:
    assert clip("short", 10) == "short"
    clipped_text = clip(HUGE, MESSAGE_CHARS)
    assert len(clipped_text) <= MESSAGE_CHARS and clipped_text.startswith(HUGE[:1000])
    assert clipped_text.endswith(f"({len(HUGE) - MESSAGE_CHARS + 60} more characters in the agent's log)")


def test_status_json_and_page_clip_every_error_text_as_the_ledger_does() -> None:
    failed = PassResult("prod", "a" * 40, "failed", error=HUGE, reason="ApplyFailed",
                        health=Health(HealthStatus.FAILED, HUGE))  # fmt: skip
    body = status_json(status(failed, fetch_error=HUGE))
    env = body["environments"][0]
    assert len(body["fetch_error"]) <= MESSAGE_CHARS
    assert len(env["last_error"]) <= MESSAGE_CHARS and env["last_error"] == clip(HUGE, MESSAGE_CHARS)
    assert len(env["health"]["message"]) <= MESSAGE_CHARS
    assert len(env["summary"]) <= SUMMARY_CHARS
    assert len(status_html(status(failed))) < 4 * MESSAGE_CHARS  # the page shows the clipped texts


def test_the_ledger_the_chat_payload_and_commit_statuses_keep_their_documented_sizes() -> None:
    entry = clipped(LedgerEntry("a" * 40, "2024-05-01T00:00:00Z", "1", "failed", message=HUGE, summary=HUGE))
    assert len(entry.message) <= MESSAGE_CHARS and len(entry.summary) <= SUMMARY_CHARS
    assert ERROR_LIMIT == MESSAGE_CHARS
    payload = failure_message(FailureSummary("prod", "a" * 40, "sync", "ApplyFailed", HUGE)).webhook
    assert len(payload["error"]) <= ERROR_LIMIT
    assert len(cut(HUGE, DESCRIPTION_LIMIT)) <= DESCRIPTION_LIMIT == 140
