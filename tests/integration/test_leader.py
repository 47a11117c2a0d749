"""Leader election against the real API server: one replica leads, another takes over when the
leader stops renewing (crash) or releases the Lease (shutdown), and a race to create has one winner.

Durations are shortened (3s lease, 0.3s renew) so take-overs happen within seconds. "Nothing
happens" is asserted after the electors did more rounds (``Rounds``), not after a sleep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from gitops_agent.adapters.kube import KubeClient
from gitops_agent.core.lease import parse_lease
from gitops_agent.leader import LEASES, LeaderElector, LeaderOptions
from gitops_agent.scheduler import Scheduler
from tests.support.fake_agent import FakeAgent
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

LEASE = "gitops-agent-leader"

Make = Callable[..., LeaderElector]


class Rounds:
    """Counts an elector's finished rounds (its loop calls ``step``), so a test can wait for "b tried
    three more times" instead of sleeping and hoping it did."""

    def __init__(self, elector: LeaderElector) -> None:
        self.count = 0
        self._lock = threading.Lock()
        step = elector.step

        def counted() -> bool:
            try:
                return step()
            finally:
                with self._lock:
                    self.count += 1

        elector.step = counted  # type: ignore[method-assign]

    def wait(self, more: int, timeout: float = 10) -> None:
        """Returns once ``more`` rounds started after this call have finished."""
        target = self.count + more + 1  # the round in progress now may have read the Lease before
        wait_until(lambda: self.count >= target, timeout=timeout, message=lambda: f"round {target} (at {self.count})")


@pytest.fixture
def make(kubeconfig: str, namespace: str) -> Iterator[Make]:
    made: list[LeaderElector] = []

    def elector(
        identity: str,
        on_change: Callable[[bool], None] = lambda _: None,
        on_push: Callable[[str], object] = lambda _: None,
    ) -> LeaderElector:
        options = LeaderOptions(
            namespace=namespace, name=LEASE, identity=identity, lease_duration_s=3, renew_interval_s=0.3,
            renew_deadline_s=2,
        )  # fmt: skip
        e = LeaderElector(KubeClient.connect(kubeconfig=kubeconfig), options, on_change=on_change, on_push=on_push)
        made.append(e)
        return e

    yield elector
    for e in made:
        e.stop(release=False)
        e.kube.close()


def holder(kube: KubeClient, namespace: str) -> tuple[str, int]:
    live = kube.get(LEASES, namespace, LEASE)
    assert live is not None
    record = parse_lease(live)
    return record.holder, record.transitions


def test_one_leads_and_the_other_takes_over_when_renewals_stop(make: Make, namespace: str) -> None:
    a, b = make("replica-a"), make("replica-b")
    a.start()
    wait_until(lambda: a.leading)
    b_rounds = Rounds(b)
    b.start()
    b_rounds.wait(3)  # a's Lease is live: b waits, round after round
    assert a.leading and not b.leading
    assert holder(b.kube, namespace) == ("replica-a", 0)

    stopped = time.monotonic()
    a.stop(release=False)  # like a crash: the Lease stays, un-renewed
    wait_until(lambda: b.leading, timeout=10)
    waited = time.monotonic() - stopped
    assert 1.5 < waited < 8, waited  # only once the 3s Lease expired
    assert holder(b.kube, namespace) == ("replica-b", 1)


def test_a_released_lease_is_taken_over_at_once(make: Make, namespace: str) -> None:
    a, b = make("replica-a"), make("replica-b")
    a.start()
    wait_until(lambda: a.leading)
    b_rounds = Rounds(b)
    b.start()
    b_rounds.wait(1)  # b is following, waiting for the Lease to expire
    assert not b.leading
    stopped = time.monotonic()
    a.stop(release=True)
    wait_until(lambda: b.leading, timeout=10)
    assert time.monotonic() - stopped < 2.5  # a few of b's 0.3s rounds, not the 3s expiry
    assert holder(b.kube, namespace)[0] == "replica-b"


def test_a_race_to_create_the_lease_has_one_winner(make: Make) -> None:
    electors = [make(f"replica-{i}") for i in range(5)]
    barrier = threading.Barrier(len(electors))
    results: list[bool] = []

    def contend(e: LeaderElector) -> None:
        barrier.wait()
        results.append(e.step())

    threads = [threading.Thread(target=contend, args=(e,)) for e in electors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, False, True]
    assert [e.step() for e in electors].count(True) == 1  # and it stays so


def test_only_the_leaders_daemon_runs_passes(make: Make) -> None:
    agents = {"a": FakeAgent(), "b": FakeAgent()}
    daemons = {name: Scheduler(agent) for name, agent in agents.items()}
    electors = {name: make(f"replica-{name}", on_change=daemons[name].set_leading) for name in daemons}
    for d in daemons.values():
        d.start()
    try:
        electors["a"].start()
        wait_until(lambda: sum(agents["a"].passes.values()) == 2)
        b_rounds = Rounds(electors["b"])
        electors["b"].start()
        b_rounds.wait(3)
        assert not electors["b"].leading and not daemons["b"].leading
        assert sum(agents["b"].passes.values()) == 0

        assert daemons["a"].stop()
        electors["a"].stop(release=True)
        wait_until(lambda: sum(agents["b"].passes.values()) == 2, timeout=10)
        assert sum(agents["a"].passes.values()) == 2
    finally:
        for d in daemons.values():
            d.stop()


def test_a_push_received_by_a_follower_reaches_the_leader_once(make: Make, namespace: str) -> None:
    pushes: list[str] = []
    a, b = make("replica-a", on_push=pushes.append), make("replica-b")
    a_rounds = Rounds(a)
    a.start()
    wait_until(lambda: a.leading)
    b.start()
    assert b.relay_push("refs/heads/main")
    assert b.relay_push("refs/heads/release")
    wait_until(lambda: sorted(pushes) == ["refs/heads/main", "refs/heads/release"])
    a_rounds.wait(3)  # three renewals later: consumed, not repeated
    assert a.leading and sorted(pushes) == ["refs/heads/main", "refs/heads/release"]
    live = b.kube.get(LEASES, namespace, LEASE)
    assert live is not None and parse_lease(live).pushed == ()
    assert not a.relay_push("refs/heads/main")  # the leader has nobody to relay to
