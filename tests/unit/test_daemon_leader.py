"""Lease decisions: create, renew, wait, take over an expired or released Lease."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gitops_agent.core.lease import (
    PUSHED_REFS_ANNOTATION,
    Decision,
    LeaseRecord,
    format_time,
    lease_body,
    parse_lease,
    released_body,
    should_acquire,
    with_pushed_ref,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def lease(holder: str, renewed_ago_s: float | None, duration_s: float = 15) -> LeaseRecord:
    renewed = NOW - timedelta(seconds=renewed_ago_s) if renewed_ago_s is not None else None
    return LeaseRecord(holder, duration_s, NOW - timedelta(hours=1), renewed, 3, "42")


@pytest.mark.parametrize(
    ("record", "decision"),
    [
        (None, Decision.CREATE),
        (lease("me", 3), Decision.RENEW),
        (lease("me", 60), Decision.RENEW),
        (lease("other", 3), Decision.WAIT),
        (lease("other", 14.9), Decision.WAIT),
        (lease("other", 15), Decision.TAKE_OVER),
        (lease("other", 60), Decision.TAKE_OVER),
        (lease("", 1), Decision.TAKE_OVER),
        (lease("other", None), Decision.TAKE_OVER),
    ],
    ids=["none", "mine", "mine-expired", "live", "almost-expired", "just-expired", "long-expired", "released",
         "never-renewed"],
)  # fmt: skip
def test_should_acquire(record: LeaseRecord | None, decision: Decision) -> None:
    assert should_acquire(record, NOW, "me") is decision


def test_taking_over_counts_a_transition_and_keeps_the_resource_version() -> None:
    body = lease_body(name="l", namespace="ns", me="me", now=NOW, duration_s=15, previous=lease("other", 60))
    assert body["metadata"] == {"name": "l", "namespace": "ns", "resourceVersion": "42"}
    assert body["spec"] == {
        "holderIdentity": "me",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-03-01T12:00:00.123456Z",
        "renewTime": "2026-03-01T12:00:00.123456Z",
        "leaseTransitions": 4,
    }


def test_renewing_keeps_acquire_time_and_transitions() -> None:
    previous = lease("me", 5)
    spec = lease_body(name="l", namespace="ns", me="me", now=NOW, duration_s=15, previous=previous)["spec"]
    assert spec["acquireTime"] == format_time(NOW - timedelta(hours=1))
    assert spec["renewTime"] == format_time(NOW)
    assert spec["leaseTransitions"] == 3


def test_a_new_lease_has_no_resource_version_and_no_transition() -> None:
    body = lease_body(name="l", namespace="ns", me="me", now=NOW, duration_s=15, previous=None)
    assert "resourceVersion" not in body["metadata"]
    assert body["spec"]["leaseTransitions"] == 0


def test_a_released_lease_is_taken_over_at_once() -> None:
    body = released_body(name="l", namespace="ns", now=NOW, previous=lease("me", 1))
    assert should_acquire(parse_lease(body), NOW, "other") is Decision.TAKE_OVER


def test_parse_round_trips_what_lease_body_writes() -> None:
    body = lease_body(name="l", namespace="ns", me="me", now=NOW, duration_s=15, previous=lease("other", 60))
    body["metadata"]["resourceVersion"] = "43"
    assert parse_lease(body) == LeaseRecord("me", 15, NOW, NOW, 4, "43", pushed=())


def test_garbled_times_read_as_expired() -> None:
    record = parse_lease({"spec": {"holderIdentity": "other", "leaseDurationSeconds": 15, "renewTime": "yesterday"}})
    assert should_acquire(record, NOW, "me") is Decision.TAKE_OVER


def test_relayed_pushes_are_read_and_consumed_by_the_next_renewal() -> None:
    live = lease_body(name="l", namespace="ns", me="leader", now=NOW, duration_s=15, previous=None)
    live["metadata"]["resourceVersion"] = "7"
    relayed = with_pushed_ref(with_pushed_ref(live, "refs/heads/main"), "refs/heads/release")
    relayed = with_pushed_ref(relayed, "refs/heads/main")
    record = parse_lease(relayed)
    assert record.pushed == ("refs/heads/main", "refs/heads/release")
    assert record.resource_version == "7" and "annotations" not in live["metadata"]  # the input is untouched
    renewed = lease_body(name="l", namespace="ns", me="leader", now=NOW, duration_s=15, previous=record)
    assert parse_lease(renewed).pushed == ()


@pytest.mark.parametrize("value", ["not json", '{"a": 1}', "[1, 2]"], ids=["garbled", "object", "numbers"])
def test_a_garbled_pushed_refs_annotation_reads_as_none(value: str) -> None:
    assert parse_lease({"metadata": {"annotations": {PUSHED_REFS_ANNOTATION: value}}}).pushed == ()
