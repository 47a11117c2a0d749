"""The scheduler's side of approvals (a pass with the approved commit pinned, after the pass in
flight, never beside it) and ``history`` naming the approver. The HTTP and GitHub sides are in
``tests/integration/test_approvals.py``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from gitops_agent.adapters.git_source import CommitInfo
from gitops_agent.config import EnvironmentConfig
from gitops_agent.core.ledger import LedgerEntry
from gitops_agent.present import format_history
from gitops_agent.queries import HistoryEntry
from gitops_agent.reconcile import PassRequest, PassResult
from gitops_agent.scheduler import ApprovedPass, Scheduler, SchedulerOptions
from tests.support.fake_agent import COMMIT, FakeAgent
from tests.support.polling import wait_until

OLD = "fedcba9876543210fedcba9876543210fedcba98"


class RecordingAgent(FakeAgent):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, PassRequest]] = []

    def reconcile(self, env: EnvironmentConfig, request: PassRequest | None = None) -> PassResult:
        self.requests.append((env.name, request or PassRequest()))
        return super().reconcile(env, request)


@pytest.fixture
def agent() -> RecordingAgent:
    return RecordingAgent()


@pytest.fixture
def daemon(agent: RecordingAgent) -> Iterator[Scheduler]:
    d = Scheduler(agent, options=SchedulerOptions(fetch_max_age_s=60, shutdown_timeout_s=5))
    yield d
    d.stop()


def test_an_approved_pass_runs_after_the_pass_in_flight_with_its_commit_pinned(
    daemon: Scheduler, agent: RecordingAgent
) -> None:
    daemon.set_leading(True)
    wait_until(lambda: agent.passes["prod"] == 1)
    gate = agent.hold("prod")
    daemon.trigger(["prod"])
    assert agent.entered["prod"].wait(5)
    told: list[PassResult] = []
    done = threading.Event()

    def on_done(result: PassResult) -> None:
        told.append(result)
        done.set()

    assert daemon.approve("prod", ApprovedPass(COMMIT, "alice", on_done))
    gate.set()
    assert done.wait(5)
    assert agent.max_active["prod"] == 1
    name, request = agent.requests[-1]
    assert (name, request.explicit, request.commit, request.approved_by) == ("prod", True, COMMIT, "alice")
    assert told[0].environment == "prod"
    assert not any(r.approved_by for _, r in agent.requests[:-1])  # only the one pass took it


def test_an_approval_the_branch_moved_past_runs_a_plain_pass_and_says_so(
    daemon: Scheduler, agent: RecordingAgent
) -> None:
    daemon.set_leading(True)
    wait_until(lambda: agent.passes["prod"] == 1)
    told: list[PassResult] = []
    assert daemon.approve("prod", ApprovedPass(OLD, "alice", told.append))
    wait_until(lambda: bool(told))
    _, request = agent.requests[-1]
    assert (request.explicit, request.commit, request.approved_by) == (False, None, "")
    assert told[0].commit != OLD


def test_an_unsharded_follower_takes_no_approval(daemon: Scheduler, agent: RecordingAgent) -> None:
    assert not daemon.approve("prod", ApprovedPass(COMMIT, "alice"))
    assert daemon.current_target("prod") == COMMIT and agent.fetches == 1  # a fresh fetch first


def test_history_names_who_approved_an_apply() -> None:
    entry = LedgerEntry(COMMIT, "2026-05-04T10:00:00Z", "0.1.0", "applied", "1 configured", approved_by="alice")
    commit = CommitInfo(COMMIT, "Dev", datetime(2026, 5, 4, 9, 0, tzinfo=UTC), "release two")
    text = format_history("prod", [HistoryEntry(entry, (commit,), running=True)])
    assert text.splitlines()[0] == (
        f"2026-05-04T10:00:00Z  {COMMIT[:12]}  applied  1 configured  (approved by @alice)  <- running"
    )
