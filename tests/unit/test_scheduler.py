"""The daemon over a fake Agent: leadership gates passes, fetches are shared, pushes coalesce,
environments are independent, shutdown waits (bounded) for the pass in flight."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from gitops_agent.config import EnvironmentConfig
from gitops_agent.errors import SourceError
from gitops_agent.logging_setup import setup_logging
from gitops_agent.reconcile import PassResult
from gitops_agent.scheduler import Scheduler, SchedulerOptions
from tests.support.fake_agent import COMMIT, FakeAgent, config
from tests.support.polling import wait_until


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def daemon(agent: FakeAgent) -> Iterator[Scheduler]:
    d = Scheduler(agent, options=SchedulerOptions(fetch_max_age_s=60, shutdown_timeout_s=5))
    d.start()
    yield d
    for gate in agent.gates.values():
        gate.set()
    d.stop()


def idle(daemon: Scheduler) -> bool:
    """No pass running and none pending: nothing starts again without a new request (or a tick)."""
    return not any(v.running for v in daemon.status().environments)


def test_no_pass_runs_until_this_replica_leads(daemon: Scheduler, agent: FakeAgent) -> None:
    daemon.trigger(["dev", "prod"])
    assert idle(daemon)  # the request was decided (refused) inside trigger: nothing was queued
    assert sum(agent.passes.values()) == 0
    daemon.set_leading(True)  # and nothing was kept for later: leading brings exactly one pass each
    wait_until(lambda: idle(daemon))
    assert agent.passes == {"dev": 1, "prod": 1}


def test_leading_passes_every_environment_once_with_one_shared_fetch(daemon: Scheduler, agent: FakeAgent) -> None:
    daemon.set_leading(True)
    wait_until(lambda: agent.passes == {"dev": 1, "prod": 1})
    assert agent.fetches == 1
    assert daemon.metrics.leader._value.get() == 1


def test_a_flood_of_pushes_during_a_pass_runs_one_more_pass_never_two_at_once(
    daemon: Scheduler, agent: FakeAgent
) -> None:
    gate = agent.hold("dev")
    daemon.set_leading(True)
    assert agent.entered["dev"].wait(5)
    for _ in range(100):
        assert daemon.push("refs/heads/main").environments == ("dev",)
    gate.set()
    wait_until(lambda: idle(daemon))  # the held pass and whatever the flood left pending are done
    assert agent.passes["dev"] == 2
    assert agent.max_active["dev"] == 1


def test_a_slow_environment_never_delays_another(daemon: Scheduler, agent: FakeAgent) -> None:
    agent.hold("dev")
    daemon.set_leading(True)
    assert agent.entered["dev"].wait(5)
    wait_until(lambda: agent.passes["prod"] == 1)
    daemon.push("refs/heads/release")
    wait_until(lambda: agent.passes["prod"] == 2)
    assert agent.passes["dev"] == 0
    assert [v.running for v in daemon.status().environments] == [True, False]


def test_a_push_fetches_again_even_right_after_a_fetch(daemon: Scheduler, agent: FakeAgent) -> None:
    daemon.set_leading(True)
    wait_until(lambda: sum(agent.passes.values()) == 2)
    daemon.trigger(["dev"])
    wait_until(lambda: agent.passes["dev"] == 2)
    assert agent.fetches == 1  # the fetch of a moment ago is reused
    daemon.push("refs/heads/release")
    wait_until(lambda: agent.passes["prod"] == 2)
    assert agent.fetches == 2


def test_a_push_to_no_followed_branch_triggers_nothing(daemon: Scheduler, agent: FakeAgent) -> None:
    daemon.set_leading(True)
    wait_until(lambda: idle(daemon))
    assert daemon.push("refs/heads/feature").environments == ()
    assert daemon.push("refs/tags/v1").environments == ()
    assert idle(daemon)  # a pass asked for is marked running before push returns: none was
    assert agent.passes == {"dev": 1, "prod": 1}


def test_a_follower_relays_pushes_to_the_leader(agent: FakeAgent) -> None:
    relayed: list[str] = []
    daemon = Scheduler(agent, relay=lambda ref: relayed.append(ref) is None)
    outcome = daemon.push("refs/heads/release")
    assert (outcome.environments, outcome.relayed, relayed) == (("prod",), True, ["refs/heads/release"])
    assert daemon.push("refs/heads/feature").relayed is False  # nothing follows it: nothing to relay
    assert relayed == ["refs/heads/release"]
    assert sum(agent.passes.values()) == 0


def test_a_failed_fetch_fails_each_pass_with_its_reason(agent: FakeAgent) -> None:
    agent.fetch_error = SourceError("https://example.invalid/config.git: cannot reach the remote")
    daemon = Scheduler(agent)
    daemon.start()
    daemon.set_leading(True)
    wait_until(lambda: all(v.last for v in daemon.status().environments))
    daemon.stop()
    status = daemon.status()
    assert all(v.last and v.last.reason == "SourceUnavailable" for v in status.environments)
    assert status.ready and "not fetched yet: https://example.invalid" in status.ready[0]


def test_a_crashing_pass_is_a_failed_pass_and_the_daemon_goes_on(daemon: Scheduler, agent: FakeAgent) -> None:
    def crash(env: object) -> PassResult:
        raise RuntimeError("boom")

    agent.result = crash
    daemon.set_leading(True)
    wait_until(lambda: all(v.last for v in daemon.status().environments))
    last = daemon.status().environments[0].last
    assert last is not None and (last.reason, last.error, last.commit) == (
        "InternalError",
        "internal error: boom",
        COMMIT,
    )
    agent.result = None
    daemon.trigger(["dev"])
    wait_until(lambda: agent.passes["dev"] == 2)


def test_losing_the_lease_stops_new_passes(daemon: Scheduler, agent: FakeAgent) -> None:
    gate = agent.hold("dev")
    daemon.set_leading(True)
    assert agent.entered["dev"].wait(5)
    daemon.push("refs/heads/main")  # one more pending
    daemon.set_leading(False)
    gate.set()
    wait_until(lambda: idle(daemon))  # the pass in flight ended, and the pending one was dropped
    assert agent.passes["dev"] == 1


def test_stop_waits_for_the_pass_in_flight_and_starts_no_more(agent: FakeAgent) -> None:
    daemon = Scheduler(agent, options=SchedulerOptions(shutdown_timeout_s=5))
    daemon.start()
    gate = agent.hold("dev")
    daemon.set_leading(True)
    assert agent.entered["dev"].wait(5)
    daemon.push("refs/heads/main")
    threading_timer(0.3, gate.set)
    started = time.monotonic()
    assert daemon.stop() is True
    assert 0.2 < time.monotonic() - started < 5
    assert agent.passes["dev"] == 1  # the pending pass never started
    daemon.trigger(["dev", "prod"])
    assert idle(daemon)  # refused inside trigger: nothing queued
    assert agent.passes["dev"] == 1


def test_stop_gives_up_waiting_after_its_bound(agent: FakeAgent) -> None:
    daemon = Scheduler(agent)
    daemon.start()
    gate = agent.hold("dev")
    daemon.set_leading(True)
    assert agent.entered["dev"].wait(5)
    assert daemon.stop(timeout_s=0.2) is False
    gate.set()


def test_environments_pass_again_at_their_interval() -> None:
    agent = FakeAgent(config(", interval: 1s"))
    daemon = Scheduler(agent)
    daemon.start()
    try:
        daemon.set_leading(True)
        wait_until(lambda: agent.passes["prod"] >= 3, timeout=6)
        assert agent.passes["dev"] == 1  # an hour's interval
    finally:
        daemon.stop()


def test_readiness_needs_a_fetch_and_reachable_clusters(agent: FakeAgent) -> None:
    answers = iter(["cluster (default context) is not reachable: refused", None])
    daemon = Scheduler(agent, probe=lambda: next(answers), options=SchedulerOptions(probe_interval_s=0))
    assert daemon.readiness() == (
        "the config repository was not fetched yet",
        "cluster (default context) is not reachable: refused",
    )
    daemon._fetch_if_stale()
    assert daemon.readiness() == ()


def test_a_raising_probe_is_a_reason_not_a_crash(agent: FakeAgent) -> None:
    def probe() -> str | None:
        raise OSError("no route")

    daemon = Scheduler(agent, probe=probe)
    assert daemon.readiness()[-1] == "cluster probe failed: no route"


def test_every_line_of_a_pass_names_environment_and_commit(agent: FakeAgent) -> None:
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    out = io.StringIO()
    setup_logging("json", stream=out)
    try:
        agent.result = log_inside
        daemon = Scheduler(agent)
        daemon.start()
        daemon.set_leading(True)
        wait_until(lambda: all(v.last for v in daemon.status().environments))
        daemon.stop()
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    of_pass = [line for line in lines if line["message"] in ("inside", "pass applied: nothing to do")]
    assert len(of_pass) == 4
    assert all(line["commit"] == COMMIT and line["environment"] in ("dev", "prod") for line in of_pass)


def log_inside(env: EnvironmentConfig) -> PassResult:
    logging.getLogger("gitops_agent.reconcile").info("inside")
    return PassResult(env.name, COMMIT, "applied")


def threading_timer(delay: float, action: Callable[[], object]) -> None:
    timer = threading.Timer(delay, action)
    timer.daemon = True
    timer.start()
