"""How a pass maps onto a commit status (pure)."""

from __future__ import annotations

import pytest

from gitops_agent.cluster import ObjectPlan, SyncResult
from gitops_agent.core.drift import CHANGED, DriftedField, ObjectDrift
from gitops_agent.core.report import Phase, StatusState, commit_status
from gitops_agent.model import Action, Health, HealthStatus, ObjectKey
from gitops_agent.reconcile import PassResult
from gitops_agent.reporting import environment_report

KEY = ObjectKey("apps", "Deployment", "shop", "api")
SYNC = SyncResult("prod", "abc", False, (ObjectPlan(KEY, Action.CONFIGURED),))


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
        (PassResult("prod", "abc", "applied", sync=SYNC), Phase.HEALTHY, "success"),
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
        (PassResult("prod", "abc", "up-to-date", drift=(drift(False),)), Phase.DRIFT, "failure"),
        (PassResult("prod", "abc", "up-to-date", drift=(drift(True),)), Phase.DRIFT, "success"),
    ],
    ids=[
        "render",
        "validate",
        "apply",
        "applied",
        "rollout-failed",
        "progressing",
        "unexpected-drift",
        "expected-drift",
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
