"""cluster.lock over a fake Lease store (the API itself in tests/integration/reconcile/test_lock.py):
one holder at a time, waits bounded and named, renewal before each write, and a holder that lost
its lock writes nothing more — not even a release."""

from __future__ import annotations

import copy
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from gitops_agent.adapters.kube import ResourceInfo
from gitops_agent.cluster.lock import EnvironmentLock, LockedError, LockLostError, Locks, LockSettings
from gitops_agent.core.env_lock import COMMIT_ANNOTATION, LockTimes
from gitops_agent.errors import ClusterError, ConflictError
from tests.support.polling import wait_until

TIMES = LockTimes(duration_s=30, renew_interval_s=3600, renew_deadline_s=20)  # no background renewal here


class LeaseStore:
    """One namespace of Leases as the API server keeps them: resourceVersion checks, or an outage.
    ``writes`` counts every write that reached it."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.namespaces: set[str] = set()
        self.version = 0
        self.writes = 0
        self.reads = 0
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ClusterError("cannot reach the Kubernetes API at https://127.0.0.1:6443: refused")

    def get(self, info: ResourceInfo, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        self.reads += 1
        if info.kind == "Namespace":
            return {"metadata": {"name": name}} if name in self.namespaces else None
        return copy.deepcopy(self.leases.get(name))

    def apply(self, obj: dict[str, Any], info: ResourceInfo, *, field_manager: str) -> dict[str, Any]:
        self._check()
        assert info.kind == "Namespace"
        self.namespaces.add(obj["metadata"]["name"])
        self.writes += 1
        return obj

    def create(self, obj: dict[str, Any], info: ResourceInfo, *, field_manager: str) -> dict[str, Any]:
        self._check()
        assert obj["metadata"]["namespace"] in self.namespaces, "a Lease needs its namespace"
        if obj["metadata"]["name"] in self.leases:
            raise ConflictError("Lease: already exists")
        return self._store(obj)

    def replace(self, obj: dict[str, Any], info: ResourceInfo, *, field_manager: str) -> dict[str, Any]:
        self._check()
        live = self.leases[obj["metadata"]["name"]]
        if obj["metadata"].get("resourceVersion") != live["metadata"]["resourceVersion"]:
            raise ConflictError("Lease: the object has been modified")
        return self._store(obj)

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.writes += 1
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.leases[obj["metadata"]["name"]] = stored
        return copy.deepcopy(stored)

    def holder(self, environment: str = "dev") -> str:
        return str(self.leases[f"gitops-agent-env-{environment}"]["spec"]["holderIdentity"])


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)


def lock(
    store: LeaseStore, clock: Clock, me: str, *, wait_s: float = 0, stop: threading.Event | None = None
) -> EnvironmentLock:
    settings = LockSettings(times=TIMES, wait_s=wait_s, poll_s=0.01)
    locks = Locks(
        me, namespace="gitops", field_manager="gitops-agent", settings=settings, stop=stop, now=clock.now, clock=clock
    )
    return locks.of(store, "dev")


def test_the_first_holder_creates_the_namespace_and_the_lease_naming_itself_and_its_commit() -> None:
    store, clock = LeaseStore(), Clock()
    with lock(store, clock, "daemon-0-aaaaaa") as mine:
        mine.acquire("c0ffee")
        assert mine.held and store.namespaces == {"gitops"}
        lease = store.leases["gitops-agent-env-dev"]
        assert lease["spec"]["holderIdentity"] == "daemon-0-aaaaaa" and lease["spec"]["leaseDurationSeconds"] == 30
        assert lease["metadata"]["annotations"] == {COMMIT_ANNOTATION: "c0ffee"}
    assert store.holder() == "", "released at the end of the with block"


def test_a_second_process_waits_then_is_refused_naming_the_holder_having_written_nothing() -> None:
    store, clock = LeaseStore(), Clock()
    first = lock(store, clock, "daemon-0-aaaaaa")
    first.acquire("c0ffee")
    writes = store.writes
    second = lock(store, clock, "laptop-bbbbbb")  # waits 0s (the real wait: tests/integration)
    with pytest.raises(LockedError) as refused:
        second.acquire("beef")
    assert refused.value.reason == "Locked"
    assert str(refused.value).startswith(
        f"environment 'dev' is locked by daemon-0-aaaaaa since {clock.now():%Y-%m-%dT%H:%M:%SZ}"
    )
    assert "applying c0ffee" in str(refused.value)
    assert store.writes == writes and not second.held
    second.release()  # never held: writes nothing
    assert store.writes == writes and store.holder() == "daemon-0-aaaaaa"


def test_a_waiting_process_takes_the_lock_as_soon_as_it_is_released() -> None:
    store, clock = LeaseStore(), Clock()
    first = lock(store, clock, "daemon-0-aaaaaa")
    first.acquire()
    second = lock(store, clock, "laptop-bbbbbb", wait_s=10)
    releaser = threading.Timer(0.1, first.release)
    releaser.start()
    second.acquire()
    releaser.join()
    assert second.held and store.holder() == "laptop-bbbbbb"


def test_a_process_stopping_stops_waiting() -> None:
    store, clock, stop = LeaseStore(), Clock(), threading.Event()
    lock(store, clock, "daemon-0-aaaaaa").acquire()
    stop.set()
    with pytest.raises(LockedError, match="locked by daemon-0-aaaaaa"):
        lock(store, clock, "daemon-1-cccccc", wait_s=3600, stop=stop).acquire()


def test_each_guard_renews_the_lock_and_an_outage_is_tolerated_until_the_renew_deadline() -> None:
    store, clock = LeaseStore(), Clock()
    held = lock(store, clock, "me")
    held.acquire()
    clock.t += 10
    held.guard()
    assert store.leases["gitops-agent-env-dev"]["spec"]["renewTime"].startswith(f"{clock.now():%Y-%m-%dT%H:%M:%S}")
    store.down = True
    clock.t += 19
    held.guard()  # 19s unrenewed: below the 20s deadline, 11s before anyone may take over
    clock.t += 2
    with pytest.raises(LockLostError, match=r"could not be renewed for 21s \(cannot reach"):
        held.guard()
    store.down = False
    with pytest.raises(LockLostError):
        held.guard()  # lost stays lost: the pass writes nothing more
    writes = store.writes
    held.release()
    assert store.writes == writes and store.holder() == "me", "a lost lock is not written, not even released"


def test_an_expired_lock_is_taken_over_and_its_old_holder_notices_at_its_next_guard() -> None:
    store, clock = LeaseStore(), Clock()
    old = lock(store, clock, "daemon-0-aaaaaa")
    old.acquire("c0ffee")
    clock.t += 29.9
    with pytest.raises(LockedError):
        lock(store, clock, "laptop-bbbbbb").acquire()
    clock.t += 0.2  # 30.1s unrenewed (stopped, say): expired
    new = lock(store, clock, "laptop-bbbbbb")
    new.acquire("beef")
    writes = store.writes
    with pytest.raises(LockLostError) as lost:
        old.guard()
    assert lost.value.reason == "LockLost"
    assert str(lost.value) == (
        "the lock of environment 'dev' was taken over by laptop-bbbbbb (since "
        f"{clock.now():%Y-%m-%dT%H:%M:%SZ}); the pass was cut short: nothing more was written"
    )
    old.release()
    assert store.writes == writes and store.holder() == "laptop-bbbbbb"
    assert store.leases["gitops-agent-env-dev"]["spec"]["leaseTransitions"] == 1


def test_two_processes_racing_for_a_free_lock_one_wins() -> None:
    store, clock = LeaseStore(), Clock()
    a, b = lock(store, clock, "a"), lock(store, clock, "b")
    real_create = store.create

    def b_first(obj: dict[str, Any], info: ResourceInfo, *, field_manager: str) -> dict[str, Any]:
        store.create = real_create  # type: ignore[method-assign]
        b.acquire()  # b creates it between a's read and a's create
        return real_create(obj, info, field_manager=field_manager)

    store.create = b_first  # type: ignore[method-assign]
    with pytest.raises(LockedError, match="locked by b"):
        a.acquire()  # a's create conflicts; a reads again and finds b holding it
    assert b.held and not a.held and store.holder() == "b"


def test_the_renewing_thread_keeps_a_lock_alive_past_its_duration() -> None:
    store = LeaseStore()
    settings = LockSettings(times=LockTimes(duration_s=0.3, renew_interval_s=0.02, renew_deadline_s=0.2), wait_s=0)
    held = Locks("me", namespace="gitops", field_manager="m", settings=settings).of(store, "dev")
    other = Locks("other", namespace="gitops", field_manager="m", settings=settings).of(store, "dev")
    with held:
        held.acquire()
        wait_until(lambda: store.version >= 5, timeout=5, message="four renewals by the background thread")
        with pytest.raises(LockedError):
            other.acquire()
        held.guard()
    assert store.holder() == ""


def test_a_guard_just_after_a_renewal_sends_nothing_and_renewals_and_the_release_are_one_write_each() -> None:
    store, clock = LeaseStore(), Clock()
    held = lock(store, clock, "me")
    held.acquire("c0ffee")
    reads, writes = store.reads, store.writes
    clock.t += 4.9  # within a quarter of the 20s renew deadline: nobody may have taken it over
    held.guard()
    assert (store.reads, store.writes) == (reads, writes)
    clock.t += 0.2
    held.guard()  # conditional on the version it wrote: no read needed
    assert (store.reads, store.writes) == (reads, writes + 1)
    held.release()
    assert (store.reads, store.writes) == (reads, writes + 2) and store.holder() == ""


def test_a_renewal_that_conflicts_reads_the_lease_and_notices_it_was_taken_over() -> None:
    store, clock = LeaseStore(), Clock()
    old = lock(store, clock, "daemon-0-aaaaaa")
    old.acquire()
    clock.t += 31  # expired: taken over by the rules
    lock(store, clock, "laptop-bbbbbb").acquire()
    with pytest.raises(LockLostError, match="taken over by laptop-bbbbbb"):
        old.guard()
