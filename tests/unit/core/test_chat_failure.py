"""core.chat_failure: failed syncs and rollouts for chat — when it is the same failure, what is said."""

from __future__ import annotations

from gitops_agent.core.chat_failure import (
    FAILURE_SCHEMA,
    ROLLOUT_FAILED,
    ROLLOUT_TIMED_OUT,
    FailureSummary,
    failure_fingerprint,
    failure_message,
    rollout_reason,
)
from tests.doubles.chat_server import slack_problems

SHA, OTHER = "0123456789abcdef0123456789abcdef01234567", "fedcba9876543210fedcba9876543210fedcba98"


def sync_failed(error: str = "Deployment/shop/api: field is immutable", commit: str = SHA) -> FailureSummary:
    return FailureSummary("prod", commit, "sync", "ApplyFailed", error, "https://agent.example/status")


def test_the_same_failure_again_has_the_same_fingerprint_whatever_its_numbers() -> None:
    assert failure_fingerprint(sync_failed("timed out after 30s")) == failure_fingerprint(
        sync_failed("timed out after 31s")
    )
    assert failure_fingerprint(sync_failed()) != failure_fingerprint(sync_failed(commit=OTHER))  # a new commit
    assert failure_fingerprint(sync_failed()) != failure_fingerprint(sync_failed("another error"))
    assert failure_fingerprint(FailureSummary("prod", SHA, "sync")) is None  # nothing failed


def test_a_rollout_is_the_same_failure_for_its_commit_and_reason() -> None:
    a = FailureSummary("prod", SHA, "rollout", ROLLOUT_FAILED, "api: 0/3 ready, CrashLoopBackOff")
    b = FailureSummary("prod", SHA, "rollout", ROLLOUT_FAILED, "api: 1/3 ready, ImagePullBackOff")
    late = FailureSummary("prod", SHA, "rollout", ROLLOUT_TIMED_OUT, "timed out after 630s: api")
    assert failure_fingerprint(a) == failure_fingerprint(b) != failure_fingerprint(late)
    assert rollout_reason("timed out after 630s: api: 0/3 ready") == ROLLOUT_TIMED_OUT
    assert rollout_reason("api: 0/3 ready (progress deadline exceeded)") == ROLLOUT_FAILED


def test_a_failed_sync_message_and_payload() -> None:
    m = failure_message(sync_failed())
    p = m.webhook
    assert (p["schema"], p["event"], p["environment"], p["commit"], p["reason"]) == (
        FAILURE_SCHEMA, "sync.failed", "prod", SHA, "ApplyFailed",
    )  # fmt: skip
    assert p["fingerprint"] == failure_fingerprint(sync_failed()) and p["error"].endswith("field is immutable")
    assert m.slack["text"] == "Sync of prod failed (ApplyFailed): commit 0123456789ab could not be applied"
    assert "field is immutable" in str(m.slack["blocks"]) and slack_problems(m.slack) == []


def test_resolutions_say_what_works_again() -> None:
    sync = failure_message(FailureSummary("prod", SHA, "sync")).webhook
    assert (sync["event"], sync["fingerprint"], sync["error"], sync["reason"]) == ("sync.resolved", None, "", "")
    rollout = failure_message(FailureSummary("prod", SHA, "rollout"))
    assert rollout.webhook["event"] == "rollout.resolved"
    assert rollout.slack["text"] == "Rollout in prod healthy again (commit 0123456789ab)"


def test_a_timed_out_rollout_says_so() -> None:
    m = failure_message(FailureSummary("prod", SHA, "rollout", ROLLOUT_TIMED_OUT, "timed out after 630s: api"))
    assert m.webhook["event"] == "rollout.failed" and m.webhook["reason"] == ROLLOUT_TIMED_OUT
    assert m.slack["text"] == "Rollout of commit 0123456789ab in prod timed out"


def test_a_huge_error_fits_slack_and_the_payload_bound() -> None:
    huge = "x" * 50_000 + "```" + "y" * 10
    m = failure_message(sync_failed(huge))
    assert slack_problems(m.slack) == []
    assert len(m.webhook["error"]) == 4000


def test_an_unreadable_repository_has_no_commit_to_name() -> None:
    m = failure_message(FailureSummary("prod", "", "sync", "SourceUnavailable", "git fetch failed"))
    assert m.slack["text"] == "Sync of prod failed (SourceUnavailable): the config repository could not be read"
    assert slack_problems(m.slack) == [] and m.webhook["commit"] == ""
