"""The per-environment lock's rules: its name and Lease, what it says to a process that waits for
it or lost it, and times that can never let two processes write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gitops_agent.core.env_lock import (
    COMMIT_ANNOTATION,
    LockTimes,
    lock_body,
    lock_commit,
    lock_name,
    locked_message,
    lost_message,
    mine,
    unrenewed_message,
)
from gitops_agent.core.lease import LeaseRecord, parse_lease

NOW = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def record(holder: str, acquired_ago_s: float = 40) -> LeaseRecord:
    return LeaseRecord(holder, 30, NOW - timedelta(seconds=acquired_ago_s), NOW, 2, "7")


def test_the_lock_is_a_lease_named_after_the_environment_naming_the_commit() -> None:
    body = lock_body(
        environment="prod",
        namespace="gitops",
        me="agent-0-abc123",
        now=NOW,
        duration_s=30,
        previous=None,
        commit="c0ffee",
    )
    assert lock_name("prod") == "gitops-agent-env-prod"
    assert body["metadata"] == {
        "name": "gitops-agent-env-prod",
        "namespace": "gitops",
        "annotations": {COMMIT_ANNOTATION: "c0ffee"},
    }
    assert body["spec"]["holderIdentity"] == "agent-0-abc123" and body["spec"]["leaseDurationSeconds"] == 30
    assert lock_commit(body) == "c0ffee" and lock_commit(None) == ""


def test_a_renewal_is_conditional_on_the_version_read_and_keeps_the_acquire_time() -> None:
    previous = record("me")
    body = lock_body(environment="dev", namespace="ns", me="me", now=NOW, duration_s=30, previous=previous, commit="")
    assert body["metadata"]["resourceVersion"] == "7" and "annotations" not in body["metadata"]
    assert parse_lease(body).acquired == previous.acquired


def test_only_my_name_on_the_lease_means_i_hold_it() -> None:
    assert mine(record("me"), "me")
    assert not mine(record("other"), "me")
    assert not mine(record(""), "me")  # released
    assert not mine(None, "me")  # deleted


def test_a_waiting_pass_is_told_who_holds_the_lock_since_when_doing_what() -> None:
    message = locked_message("prod", record("laptop-alice-1a2b3c"), commit="0123456789abcdef", waited_s=30)
    assert message.startswith("environment 'prod' is locked by laptop-alice-1a2b3c since 2026-03-01T11:59:20Z")
    assert "applying 0123456789ab" in message and "waited 30s and wrote nothing" in message
    assert "--lock-timeout" in message


@pytest.mark.parametrize(
    ("lease", "says"),
    [
        (record("agent-1-ffffff"), "was taken over by agent-1-ffffff (since 2026-03-01T11:59:20Z)"),
        (record(""), "was released by someone else"),
        (None, "was deleted"),
    ],
    ids=["taken-over", "released", "deleted"],
)
def test_a_pass_that_lost_its_lock_says_it_was_cut_short(lease: LeaseRecord | None, says: str) -> None:
    message = lost_message("dev", lease)
    assert says in message and message.endswith("the pass was cut short: nothing more was written")
    assert message.startswith("the lock of environment 'dev' ")


def test_a_lock_not_renewed_in_time_cuts_the_pass_short_with_the_error() -> None:
    message = unrenewed_message("dev", 20.4, "cannot reach the Kubernetes API")
    assert message == (
        "the lock of environment 'dev' could not be renewed for 20s (cannot reach the Kubernetes API); "
        "the pass was cut short: nothing more was written"
    )


def test_a_holder_gives_up_before_its_lock_can_expire() -> None:
    assert LockTimes.of(30) == LockTimes(30, 5, 20) == LockTimes()
    assert LockTimes.of(3).renew_deadline_s == 2
    with pytest.raises(ValueError, match="renew_deadline_s"):
        LockTimes(duration_s=10, renew_deadline_s=10)
    with pytest.raises(ValueError, match="renew_deadline_s"):
        LockTimes.of(0)
