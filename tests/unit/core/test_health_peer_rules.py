"""The rules where we used to disagree with kstatus or Argo CD (issue 19), each on a captured object
(``tests/fixtures/live``) changed in one field to the situation: what the controller would write
next, so every other field is still the API server's own."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from gitops_agent.core.health import assess, explain_failure
from gitops_agent.model import HealthStatus
from tests.unit.core.test_health import live

C, P, F = HealthStatus.CURRENT, HealthStatus.IN_PROGRESS, HealthStatus.FAILED
Obj = dict[str, Any]


def changed(fixture: str, change: Callable[[Obj], None]) -> Obj:
    obj = copy.deepcopy(live(fixture))
    change(obj)
    return obj


def _condition(obj: Obj, kind: str, status: str, reason: str, message: str = "") -> None:
    conditions = [c for c in obj["status"].get("conditions") or [] if c["type"] != kind]
    obj["status"]["conditions"] = [*conditions, {"type": kind, "status": status, "reason": reason, "message": message}]


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:
        *parents, last = path.split(".")
        node = obj
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value

    return change


def _crashed_just_now(obj: Obj) -> None:
    """pod-crashloop one moment earlier: the container has exited, the back-off not begun."""
    c = obj["status"]["containerStatuses"][0]
    c["state"] = {"terminated": {"exitCode": 2, "reason": "Error", "message": "boot\npanic: no config\n"}}


def _run_to_completion_running(obj: Obj) -> None:
    obj["spec"]["restartPolicy"] = "Never"


def _hpa(conditions: list[tuple[str, str, str]]) -> Obj:
    """An autoscaling/v2 HPA as its controller reports it (none runs with metrics here)."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "api", "namespace": "health", "generation": 1},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"}, "maxReplicas": 3},
        "status": {
            "observedGeneration": 1,
            "currentReplicas": 2,
            "desiredReplicas": 2,
            "conditions": [{"type": t, "status": s, "reason": r, "message": f"{r} says so"} for t, s, r in conditions],
        },
    }


def _widget(status: Obj) -> Obj:
    return {"apiVersion": "health.example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "status": status}


CASES: dict[str, tuple[Obj, HealthStatus, str]] = {
    "deployment-not-progressing": (
        changed("deployment-available", lambda o: _condition(o, "Progressing", "False", "ReplicaSetUpdateFailed")),
        F,
        "not progressing (ReplicaSetUpdateFailed)",
    ),
    "deployment-counts-full-but-unavailable": (
        changed(
            "deployment-available",
            lambda o: _condition(o, "Available", "False", "MinimumReplicasUnavailable", "too few up"),
        ),
        P,
        "not available (MinimumReplicasUnavailable): too few up",
    ),
    "statefulset-revisions-not-recorded": (
        changed(
            "statefulset-ready",
            lambda o: (_set("status.currentRevision", None)(o), _set("status.updateRevision", None)(o)),
        ),
        P,
        "revisions not recorded",
    ),
    "statefulset-update-revision-only": (
        changed("statefulset-ready", _set("status.currentRevision", None)),
        P,
        "revisions not recorded",
    ),
    "daemonset-ready-below-available": (changed("daemonset-ready", _set("status.numberReady", 0)), P, "0/1 pods ready"),
    "replicaset-ready-below-available": (
        changed("replicaset-available", _set("status.readyReplicas", 1)),
        P,
        "1/2 replicas ready",
    ),
    "pod-crashed-before-backoff": (
        changed("pod-ready", _crashed_just_now),
        F,
        "container app exited 2 (Error): panic: no config",
    ),
    "pod-run-to-completion-running": (
        changed("pod-ready", _run_to_completion_running),
        P,
        "running, not completed yet",
    ),
    "pod-on-failure-running": (
        changed("pod-ready", _set("spec.restartPolicy", "OnFailure")),
        P,
        "running, not completed yet",
    ),
    "pod-run-to-completion-succeeded": (live("pod-succeeded"), C, "completed"),
    "job-suspended-by-condition": (
        changed("job-suspended", lambda o: _condition(o, "Suspended", "True", "JobSuspended", "Job suspended")),
        C,
        "suspended: Job suspended",
    ),
    "job-suspend-not-yet-done": (
        changed("job-suspended", lambda o: _set("status.conditions", None)(o)),
        P,
        "suspending",
    ),
    "job-resuming": (
        changed(
            "job-running",
            lambda o: (_set("spec.suspend", False)(o), _condition(o, "Suspended", "True", "JobSuspended")),
        ),
        P,
        "resuming",
    ),
    "hpa-cannot-get-scale": (
        _hpa([("AbleToScale", "False", "FailedGetScale")]),
        P,
        "cannot scale (FailedGetScale): FailedGetScale says so",
    ),
    "hpa-no-metrics": (
        _hpa([("AbleToScale", "True", "SucceededGetScale"), ("ScalingActive", "False", "FailedGetResourceMetric")]),
        P,
        "scaling not active (FailedGetResourceMetric)",
    ),
    "hpa-invalid-selector": (
        _hpa([("AbleToScale", "True", "SucceededGetScale"), ("ScalingActive", "False", "InvalidSelector")]),
        F,
        "scaling not active (InvalidSelector)",
    ),
    "hpa-scaling-disabled": (
        _hpa([("AbleToScale", "True", "SucceededGetScale"), ("ScalingActive", "False", "ScalingDisabled")]),
        C,
        "scaling disabled",
    ),
    "hpa-active": (
        _hpa([("AbleToScale", "True", "ReadyForNewScale"), ("ScalingActive", "True", "ValidMetricFound")]),
        C,
        "2/2 replicas",
    ),
    "hpa-not-assessed-yet": (_hpa([]), C, "not assessed by the autoscaler yet"),
    "custom-phase-failed": (
        _widget({"phase": "Failed", "message": "quota exceeded"}),
        F,
        "phase Failed: quota exceeded",
    ),
    "custom-phase-pending": (_widget({"phase": "Pending"}), P, "phase Pending"),
    "custom-phase-succeeded": (_widget({"phase": "Succeeded"}), C, "phase Succeeded"),
    "custom-phase-running-is-not-judged": (_widget({"phase": "Running"}), C, "exists (phase Running)"),
    "custom-conditions-before-phase": (
        _widget({"phase": "Failed", "conditions": [{"type": "Ready", "status": "True", "reason": "Fine"}]}),
        C,
        "ready",
    ),
}


@pytest.mark.parametrize(("obj", "status", "words"), list(CASES.values()), ids=list(CASES))
def test_peer_rules(obj: Obj, status: HealthStatus, words: str) -> None:
    health = assess(obj)
    assert (health.status, words in health.message) == (status, True), health


# --- pod reasons for every workload whose pods we can select ------------------------------------


def _pod_of(workload: Obj, pod_fixture: str) -> Obj:
    """A captured pod as the given workload's own: its selector's labels, its controller reference."""
    pod = copy.deepcopy(live(pod_fixture))
    meta = workload["metadata"]
    pod["metadata"]["namespace"] = meta["namespace"]
    pod["metadata"]["labels"] = dict(workload["spec"]["selector"]["matchLabels"])
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": workload["apiVersion"], "kind": workload["kind"], "name": meta["name"], "uid": meta["uid"],
         "controller": True}
    ]  # fmt: skip
    return pod


@pytest.mark.parametrize(
    ("workload", "pod", "message"),
    [
        (
            "statefulset-rolling",
            "pod-crashloop",
            "db: 1/2 ready, CrashLoopBackOff in container app, exit code 1 (Error)",
        ),
        ("daemonset-rolling-update", "pod-image-pull-backoff", "agent: 0/1 ready, ImagePullBackOff in container app"),
        ("job-failed", "pod-failed", "doomed: 0/1 succeeded, 1 failed, container task exited 1 (Error)"),
        ("statefulset-rolling", "pod-unschedulable", "db: 1/2 ready, unschedulable: 0/1 nodes are available"),
    ],
    ids=["statefulset-crashloop", "daemonset-image-pull", "job-exit-code", "statefulset-unschedulable"],
)
def test_every_workload_is_explained_by_its_own_pods(workload: str, pod: str, message: str) -> None:
    obj = live(workload)
    assert explain_failure(obj, [_pod_of(obj, pod)]).startswith(message)


def test_a_pod_of_another_workload_of_the_same_kind_explains_nothing() -> None:
    obj = live("statefulset-rolling")
    other = _pod_of(obj, "pod-crashloop")
    other["metadata"]["ownerReferences"][0]["uid"] = "another-statefulset-named-db-before-it-was-recreated"
    assert explain_failure(obj, [other]) == "db: 1/2 ready, no pods"


def test_a_bare_pod_explains_itself() -> None:
    assert explain_failure(changed("pod-ready", _crashed_just_now), []) == (
        "web-7847f7476f-9r997: container app exited 2 (Error): panic: no config"
    )


def test_a_pod_being_deleted_explains_nothing() -> None:
    obj = live("job-seed-failed")
    stopping = copy.deepcopy(live("pod-job-failed"))
    stopping["metadata"]["deletionTimestamp"] = "2026-12-02T08:03:00Z"
    assert explain_failure(obj, [stopping]) == "seed: 0/1 succeeded, 1 failed, no pods"
