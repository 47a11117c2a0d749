"""How a pass maps onto a commit status (pure)."""

from __future__ import annotations

import pytest

from gitops_agent.cluster import ObjectPlan, SyncResult
from gitops_agent.core.drift import CHANGED, DriftedField, ObjectDrift
from gitops_agent.core.ledger import LedgerEntry
from gitops_agent.core.report import Phase, StatusState, commit_status
from gitops_agent.model import Action, Health, HealthStatus, ObjectKey
from gitops_agent.reconcile import PassResult
from gitops_agent.reporting import environment_report

KEY = ObjectKey("apps", "Deployment", "shop", "api")
SYNC = SyncResult("prod", "abc", False, (ObjectPlan(KEY, Action.CONFIGURED),))
CURRENT = Health(HealthStatus.CURRENT, "healthy (1 object)")


def running(rollout: str, message: str = "") -> LedgerEntry:
    return LedgerEntry("abc", "2026-12-02T00:00:00Z", "0.1", "applied", "1 configured, 2 unchanged", rollout=rollout,
                       rollout_message=message)  # fmt: skip


def drift(expected: bool) -> ObjectDrift:
    field = DriftedField("/spec/replicas", 2, 5, "kubectl-scale", "t", expected)
    return ObjectDrift(KEY, CHANGED, (field,))


@pytest.mark.parametrize(
    ("result", "phase", "state"),
    [
        (
            PassResult("prod", "abc", "failed", error="a.yaml: bad", reason="RenderFailed"),
            Phase.RENDERING_FAILED,
            "error",
        ),
        (PassResult("prod", "abc", "failed", error="dup", reason="ValidationFailed"), Phase.VALIDATION_FAILED, "error"),
        (PassResult("prod", "abc", "failed", error="boom", reason="ClusterError"), Phase.APPLY_FAILED, "error"),
        (PassResult("prod", "abc", "applied", sync=SYNC, health=CURRENT), Phase.HEALTHY, "success"),
        (PassResult("prod", "abc", "reached", sync=SYNC, health=CURRENT), Phase.HEALTHY, "success"),
        (PassResult("prod", "abc", "applied", sync=SYNC), Phase.PROGRESSING, "pending"),
        (
            PassResult("prod", "abc", "applied", sync=SYNC, health=Health(HealthStatus.FAILED, "api: 0/3 ready")),
            Phase.ROLLOUT_FAILED,
            "failure",
        ),
        (
            PassResult("prod", "abc", "applied", sync=SYNC, health=Health(HealthStatus.IN_PROGRESS, "api 1/3")),
            Phase.PROGRESSING,
            "pending",
        ),
        (PassResult("prod", "abc", "up-to-date", drift=(drift(False),), health=CURRENT), Phase.HEALTHY, "failure"),
        (PassResult("prod", "abc", "up-to-date", drift=(drift(True),), health=CURRENT), Phase.HEALTHY, "success"),
        (PassResult("prod", "abc", "up-to-date"), Phase.PROGRESSING, "pending"),
        (PassResult("prod", "abc", "waiting", drift=(drift(True),)), Phase.WAITING, "pending"),
    ],
    ids=[
        "render",
        "validate",
        "apply",
        "applied",
        "reached",
        "applied-not-followed",
        "rollout-failed",
        "progressing",
        "unexpected-drift",
        "expected-drift",
        "up-to-date-rollout-never-recorded",
        "waiting-manual",
    ],
)
def test_pass_to_status(result: PassResult, phase: Phase, state: str) -> None:
    report = environment_report(result)
    assert report.phase is phase
    assert commit_status(report).state is StatusState(state)


def test_rollout_failure_names_the_reason() -> None:
    result = PassResult(
        "prod", "abc", "applied", sync=SYNC, health=Health(HealthStatus.FAILED, "api: CrashLoopBackOff")
    )
    assert commit_status(environment_report(result)).description == "rollout failed: api: CrashLoopBackOff"


def test_between_commits_the_status_repeats_what_the_apply_did() -> None:
    result = PassResult("prod", "abc", "up-to-date", health=CURRENT, running=running("Current"))
    status = commit_status(environment_report(result))
    assert (status.state, status.description) == (StatusState.SUCCESS, "1 configured; rollout healthy")


def test_a_waiting_commit_says_how_to_approve_it() -> None:
    status = commit_status(environment_report(PassResult("prod", "abc", "waiting", running=running("Current"))))
    assert status.state is StatusState.PENDING
    assert status.description == "waiting for approval; gitops-agent sync --env prod"


def test_a_rollout_nobody_followed_is_pending_not_success() -> None:
    status = commit_status(environment_report(PassResult("prod", "abc", "applied", sync=SYNC)))
    assert (status.state, status.description) == (
        StatusState.PENDING,
        "1 configured; rollout in progress: not followed yet",
    )
