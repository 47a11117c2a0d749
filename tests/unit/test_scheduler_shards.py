"""The scheduler sharded (``set_members``): a replica passes only the environments it owns, whoever
leads; a push is passed here for its own and relayed to the other owners once (never relayed again);
/status names the members and each environment's owner; the owned gauge counts its share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gitops_agent.core.shard import owned_by
from gitops_agent.scheduler import ApprovedPass, Scheduler, SchedulerOptions
from tests.support.fake_agent import COMMIT, FakeAgent
from tests.support.polling import wait_until

ENVS = ("dev", "prod")


def _me_owning_dev() -> tuple[str, str]:
    """Two member names such that the first owns dev and the second prod."""
    for i in range(100):
        me = f"replica-{i}"
        if owned_by(me, ENVS, (me, "other")) == {"dev"}:
            return me, "other"
    raise AssertionError("no such name")


ME, OTHER = _me_owning_dev()


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def daemon(agent: FakeAgent) -> Iterator[Scheduler]:
    d = Scheduler(agent, options=SchedulerOptions(fetch_max_age_s=60, shutdown_timeout_s=5, identity=ME))
    d.set_members(())  # sharded, not joined yet
    d.start()
    yield d
    d.stop()


def idle(daemon: Scheduler) -> bool:
    return not any(v.running for v in daemon.status().environments)


def test_not_joined_nothing_passes_even_leading(daemon: Scheduler, agent: FakeAgent) -> None:
    daemon.set_leading(True)
    daemon.trigger(ENVS)
    assert idle(daemon) and sum(agent.passes.values()) == 0


def test_a_member_passes_only_what_it_owns_and_gives_up_what_it_lost(daemon: Scheduler, agent: FakeAgent) -> None:
    daemon.set_members((ME, OTHER))
    wait_until(lambda: agent.passes == {"dev": 1})
    assert daemon.metrics.owned._value.get() == 1
    daemon.trigger(ENVS)
    wait_until(lambda: idle(daemon))
    assert agent.passes == {"dev": 2}
    daemon.set_members((ME,))  # the other left: prod is handed over, and passed at once
    wait_until(lambda: agent.passes == {"dev": 2, "prod": 1})
    daemon.set_members((OTHER,))  # a member that is not in the list owns nothing
    daemon.trigger(ENVS)
    assert idle(daemon) and agent.passes == {"dev": 2, "prod": 1}
    assert daemon.metrics.owned._value.get() == 0


def test_a_push_is_passed_here_for_its_own_and_relayed_once_to_the_other_owners(
    daemon: Scheduler, agent: FakeAgent
) -> None:
    relayed: list[tuple[str, str]] = []
    daemon.member_relay = lambda member, ref: relayed.append((member, ref)) is None
    daemon.set_members((ME, OTHER))
    wait_until(lambda: agent.passes == {"dev": 1})
    outcome = daemon.push("refs/heads/release")  # prod follows it: OTHER's
    assert (outcome.environments, outcome.relayed, relayed) == (("prod",), True, [(OTHER, "refs/heads/release")])
    assert daemon.push("refs/heads/release", relay=False).relayed is False  # a relayed push: not again
    assert len(relayed) == 1
    daemon.push("refs/heads/main")  # dev follows it: ours
    wait_until(lambda: agent.passes == {"dev": 2})
    assert len(relayed) == 1


def test_status_names_members_and_owners(daemon: Scheduler) -> None:
    daemon.set_members((ME, OTHER))
    status = daemon.status()
    assert status.members == (ME, OTHER)
    assert {v.name: v.owner for v in status.environments} == {"dev": ME, "prod": OTHER}


def test_the_leader_runs_an_approved_pass_of_an_environment_it_does_not_own(
    daemon: Scheduler, agent: FakeAgent
) -> None:
    daemon.set_members((ME, OTHER))
    daemon.set_leading(True)
    wait_until(lambda: agent.passes == {"dev": 1})
    assert daemon.approve("prod", ApprovedPass(COMMIT, "ada"))
    wait_until(lambda: agent.passes == {"dev": 1, "prod": 1})
    daemon.trigger(["prod"])  # and only that one: prod's own passes stay its owner's
    assert idle(daemon) and agent.passes == {"dev": 1, "prod": 1}


def test_gates_hold_readiness(daemon: Scheduler) -> None:
    daemon.gates.append(lambda: "not a member yet")
    assert "not a member yet" in daemon.readiness()


def test_any_member_takes_an_approval_for_an_environment_it_does_not_own(daemon: Scheduler, agent: FakeAgent) -> None:
    """Webhooks reach one replica through the Service: a follower that is a member runs the
    approved pass itself (the environment's lock keeps it from overlapping the owner's)."""
    assert not daemon.takes_approvals  # not joined yet
    assert not daemon.approve("prod", ApprovedPass(COMMIT, "ada"))
    daemon.set_members((ME, OTHER))
    wait_until(lambda: agent.passes == {"dev": 1})
    assert daemon.takes_approvals and not daemon.leading
    assert daemon.approve("prod", ApprovedPass(COMMIT, "ada"))
    wait_until(lambda: agent.passes == {"dev": 1, "prod": 1})
    daemon.trigger(["prod"])  # prod's own passes stay its owner's
    assert idle(daemon) and agent.passes == {"dev": 1, "prod": 1}


class _PrEnvironments:
    """What the scheduler asks of PR environments, recorded."""

    def __init__(self) -> None:
        self.deploys: list[int] = []
        self.closes: list[int] = []

    def submit(self, number: int, head_sha: str, base_ref: str) -> tuple[str, ...]:
        self.deploys.append(number)
        return ("dev",)

    def closed(self, number: int) -> None:
        self.closes.append(number)

    def sweep(self) -> None: ...

    def stop(self) -> None: ...


def test_any_member_deploys_and_removes_a_pull_request_s_environments(daemon: Scheduler) -> None:
    """As approvals: the replica the webhook reached, a member, deploys (each PR environment's lock
    keeps two replicas apart); one not joined yet takes none."""
    prs = _PrEnvironments()
    daemon.pr_environments = prs  # type: ignore[assignment]  # a recorder, not the real deployer
    assert daemon.deploy_pull_request(7, COMMIT, "main") == ()
    daemon.set_members((ME, OTHER))
    assert not daemon.leading
    assert daemon.deploy_pull_request(7, COMMIT, "main") == ("dev",)
    daemon.pull_request_closed(7)
    assert prs.deploys == [7] and prs.closes == [7]
