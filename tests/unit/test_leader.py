"""Lease decisions (create, renew, wait, take over an expired or released Lease, relayed pushes) and
the election loop's own rules over a fake Lease store."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

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
from gitops_agent.errors import ClusterError, ConflictError
from gitops_agent.leader import LeaderElector, LeaderOptions

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


# --- the election loop's own rules, over a fake Lease store (the API is tested in integration) -----


class LeaseStore:
    """Holds one Lease like the API server does: resourceVersion checks, or an outage."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ClusterError("cannot reach the Kubernetes API at https://127.0.0.1:6443: refused")

    def get(self, info: object, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        return copy.deepcopy(self.lease)

    def create(self, obj: dict[str, Any], info: object, *, field_manager: str) -> dict[str, Any]:
        self._check()
        if self.lease is not None:
            raise ConflictError("Lease/ns/l: already exists")
        return self._store(obj)

    def replace(self, obj: dict[str, Any], info: object, *, field_manager: str) -> dict[str, Any]:
        self._check()
        assert self.lease is not None
        if obj["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise ConflictError("Lease/ns/l: the object has been modified")
        return self._store(obj)

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.lease = copy.deepcopy(obj)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)


def elector(store: LeaseStore, clock: Clock, me: str, changes: list[bool]) -> LeaderElector:
    options = LeaderOptions(namespace="ns", name="l", identity=me)
    return LeaderElector(store, options, on_change=changes.append, now=clock.now, clock=clock)


def test_a_leader_that_cannot_renew_steps_down_before_its_lease_expires() -> None:
    store, clock, changes = LeaseStore(), Clock(), []
    me = elector(store, clock, "me", changes)
    assert me.step() and changes == [True]
    store.down = True
    clock.t += 9
    assert me.step()  # within the 10s renew deadline: still leading
    clock.t += 2
    assert not me.step()  # past it, and 4s before the 15s Lease could be taken over
    assert changes == [True, False]


def test_the_other_replica_waits_for_expiry_then_takes_over() -> None:
    store, clock, a_changes, b_changes = LeaseStore(), Clock(), [], []
    a, b = elector(store, clock, "a", a_changes), elector(store, clock, "b", b_changes)
    assert a.step() and not b.step()
    clock.t += 14.9
    assert not b.step()
    clock.t += 0.2
    assert b.step()
    assert not a.step() and a_changes == [True, False]  # a sees b's Lease and steps down


def test_relayed_pushes_reach_on_push_only_after_the_renewal_succeeds() -> None:
    store, clock, pushes = LeaseStore(), Clock(), []
    options = LeaderOptions(namespace="ns", name="l", identity="leader")
    leader = LeaderElector(store, options, on_change=lambda _: None, on_push=pushes.append, now=clock.now, clock=clock)
    follower = elector(store, clock, "follower", [])
    leader.step()
    assert follower.relay_push("refs/heads/main")
    assert not leader.relay_push("refs/heads/main")  # the leader has nobody to tell
    leader.step()
    leader.step()
    assert pushes == ["refs/heads/main"]


def test_the_renew_deadline_must_be_below_the_lease_duration() -> None:
    with pytest.raises(ValueError, match="renew_deadline_s"):
        LeaderElector(LeaseStore(), LeaderOptions(namespace="ns", renew_deadline_s=15), on_change=print)
