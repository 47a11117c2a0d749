"""Health rules over objects captured from the real test control plane (``tests/fixtures/live``,
written by ``tests/fixtures/capture_health.py``, ``capture_health_extra.py``, ``capture_health_kinds.py`` and
``capture_live.py``). A file whose status no controller there could write says
``# synthetic: <why>`` in its first lines; none is written by hand."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from gitops_agent.core.health import aggregate, assess, explain_failure, selects
from gitops_agent.model import HealthStatus
from tests.support import paths

LIVE = paths.FIXTURES / "live"
C, P, F, U = HealthStatus.CURRENT, HealthStatus.IN_PROGRESS, HealthStatus.FAILED, HealthStatus.UNKNOWN


def live(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((LIVE / f"{name}.yaml").read_text())
    return obj


#: fixture -> (status, words its message must contain)
CAPTURED: dict[str, tuple[HealthStatus, str]] = {
    # generic layer
    "deployment-generation-behind": (P, "has not observed generation 2 yet"),
    "deployment-deleting": (P, "being deleted"),
    "namespace-terminating": (P, "being deleted"),
    "widget-stalled": (F, "stalled: spec.size must be positive"),
    "widget-reconciling": (P, "reconciling: upgrading to 1.2"),
    # Deployment
    "deployment-available": (C, "2/2 replicas available"),
    "deployment-progressing": (P, "0/2 replicas available (0 ready)"),
    "deployment-rolling": (P, "1/2 replicas updated"),
    "deployment-deadline-exceeded": (F, "progress deadline exceeded"),
    "deployment-unschedulable": (F, "progress deadline exceeded"),
    "deployment-paused": (P, "rollout paused: 0/1 replicas updated"),
    "deployment-paused-available": (C, "1/1 replicas available (paused)"),
    "deployment-surging": (P, "1 old replica still running"),
    "deployment-replica-failure": (P, "exceeded quota"),
    # StatefulSet, DaemonSet, ReplicaSet
    "statefulset-ready": (C, "2/2 replicas ready"),
    "statefulset-rolling": (P, "1/2 replicas ready"),
    "statefulset-partitioned": (C, "partition 1"),
    "statefulset-ondelete": (C, "OnDelete"),
    "statefulset-updating": (P, "0/2 replicas at the new revision"),
    "statefulset-shrinking": (P, "1 replica pending termination"),
    "daemonset-ready": (C, "1/1 pods available"),
    "daemonset-rolling-update": (P, "0/1 pods available"),
    "daemonset-updating": (P, "0/1 pods updated"),
    "daemonset-unobserved": (P, "not scheduled by the controller yet"),  # its status: zeros, no observedGeneration
    "replicaset-available": (C, "2/2 replicas available"),
    "replicaset-starting": (P, "0/1 replicas available (0 ready)"),
    "replicaset-replica-failure": (P, "replica failure: pods"),
    # Pod
    "pod-ready": (C, "running and ready"),
    "pod-succeeded": (C, "completed"),
    "pod-pending": (P, "unschedulable: 0/1 nodes are available"),
    "pod-unschedulable": (P, "unschedulable: 0/1 nodes are available"),
    "pod-not-started": (P, "pending, not ready"),
    "pod-crashloop": (F, "CrashLoopBackOff in container app"),
    "pod-image-pull-backoff": (F, "ImagePullBackOff in container app"),
    "pod-failed": (F, "container task exited 1 (Error)"),
    # Job
    "job-complete": (C, "complete"),
    "job-suspended": (C, "suspended"),
    "job-running": (P, "running: 1 active"),
    "job-failed": (F, "failed (BackoffLimitExceeded): Job has reached the specified backoff limit"),
    # core and networking
    "persistentvolumeclaim-bound": (C, "bound"),
    "persistentvolumeclaim-pending": (P, "not bound"),
    "persistentvolumeclaim-lost": (F, "lost its volume"),
    "service-clusterip": (C, "exists"),
    "service-loadbalancer-pending": (P, "waiting for a load balancer address"),
    "service-loadbalancer-ready": (C, "load balancer at 203.0.113.7"),
    "ingress-no-address": (C, "no load balancer address published; not waited for"),  # kstatus
    "ingress-address": (C, "load balancer at 203.0.113.7"),
    "namespace-active": (C, "active"),
    # API extensions
    "customresourcedefinition-established": (C, "established"),
    "customresourcedefinition-names-conflict": (F, 'names not accepted: "WidgetList" is already in use'),
    "apiservice-available": (C, "available"),
    "apiservice-unavailable": (P, "service/missing"),
    # custom resources: standard conditions, or nothing to judge
    "widget-ready": (C, "ready: installed"),
    "widget-not-ready": (P, "not ready (Progressing)"),
    "widget-ready-unknown": (P, "ready unknown: checking the release"),
    "widget-failed": (F, "not ready (InstallFailed): chart acme/api not found"),
    "widget-stale": (P, "Ready is for generation 1, not 2 yet"),
    "widget-no-status": (C, "exists"),
    # issue 19: kinds beyond Deployments (capture_health_kinds.py)
    "horizontalpodautoscaler-no-target": (P, "cannot scale (FailedGetScale): the HPA controller was unable"),
    "horizontalpodautoscaler-no-metrics": (P, "scaling not active (FailedGetResourceMetric)"),
    "statefulset-crashloop": (P, "0/1 replicas ready"),
    "pod-statefulset-crashloop": (F, "CrashLoopBackOff in container app, exit code 1 (Error)"),
    "pod-run-to-completion-running": (P, "running, not completed yet"),  # kstatus: Current
    "daemonset-crashloop": (P, "0/1 pods available (0 ready)"),
    "pod-daemonset-crashloop": (F, "CrashLoopBackOff in container app, exit code 1 (Error)"),
    "job-seed-failed": (F, "failed (BackoffLimitExceeded)"),
    "pod-job-failed": (F, "failed: container task exited 1 (Error)"),
}


@pytest.mark.parametrize(("fixture", "status", "words"), [(f, *v) for f, v in CAPTURED.items()], ids=list(CAPTURED))
def test_captured_objects(fixture: str, status: HealthStatus, words: str) -> None:
    health = assess(live(fixture))
    assert (health.status, words in health.message) == (status, True), health


def test_every_captured_fixture_is_in_the_table() -> None:
    assert sorted(p.stem for p in LIVE.glob("*.yaml")) == sorted(CAPTURED)


# --- explaining a failing Deployment by its pods -------------------------------------------------


def _owned_by_another_replicaset(pod: dict[str, Any]) -> dict[str, Any]:
    """The same pod, as if a second Deployment with an overlapping selector owned it."""
    other = copy.deepcopy(pod)
    other["metadata"]["ownerReferences"][0]["name"] = "crash-canary-5d8c9b7f6"
    return other


@pytest.mark.parametrize(
    ("deployment", "pods", "message"),
    [
        ("deployment-deadline-exceeded", ["pod-crashloop"], "crash: 0/2 ready, CrashLoopBackOff in container app"),
        (
            "deployment-unschedulable",
            ["pod-unschedulable"],
            "stuck: 0/2 ready, unschedulable: 0/1 nodes are available: 1 node(s) didn't match",
        ),
        ("deployment-replica-failure", [], 'capped: 0/1 ready, replica failure: pods "capped-'),
        (
            "deployment-deadline-exceeded",
            ["pod-ready", "pod-image-pull-backoff", "pod-succeeded"],
            "crash: 0/2 ready, no pods",
        ),
        ("deployment-progressing", ["pod-crashloop"], "crash: 0/2 ready, CrashLoopBackOff in container app"),
        ("deployment-surging", ["pod-not-started"], "surge: 1/1 ready, 1 pod not ready"),
        (
            "statefulset-crashloop",
            ["pod-statefulset-crashloop"],
            "ledger: 0/1 ready, CrashLoopBackOff in container app",
        ),
        ("statefulset-ready", ["pod-statefulset-crashloop"], "db: 2/2 ready, no pods"),
        (
            "daemonset-crashloop",
            ["pod-job-failed", "pod-daemonset-crashloop"],
            "collector: 0/1 ready, CrashLoopBackOff",
        ),
        (
            "job-seed-failed",
            ["pod-daemonset-crashloop", "pod-job-failed"],
            "seed: 0/1 succeeded, 1 failed, container task",
        ),
        ("job-failed", ["pod-job-failed"], "doomed: 0/1 succeeded, 1 failed, no pods"),
    ],
    ids=[
        "crashloop",
        "unschedulable",
        "quota",
        "other-pods-ignored",
        "before-the-deadline",
        "not-started",
        "statefulset-owns-its-pod",
        "another-statefulsets-pod",
        "daemonset-owns-its-pod",
        "job-owns-its-pod",
        "another-jobs-pod",
    ],
)
def test_a_failing_workload_is_explained_by_its_pods(deployment: str, pods: list[str], message: str) -> None:
    assert explain_failure(live(deployment), [live(p) for p in pods]).startswith(message)


def _orphaned(pod: dict[str, Any]) -> dict[str, Any]:
    """The same pod before any ReplicaSet adopted it."""
    orphan = copy.deepcopy(pod)
    del orphan["metadata"]["ownerReferences"]
    return orphan


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_owned_by_another_replicaset, "crash: 0/2 ready, no pods"),
        (_orphaned, "crash: 0/2 ready, CrashLoopBackOff in container app, exit code 1 (Error)"),
    ],
    ids=["another-replicaset", "not-adopted-yet"],
)
def test_pods_count_through_the_owner_chain(change: Any, message: str) -> None:
    assert explain_failure(live("deployment-deadline-exceeded"), [change(live("pod-crashloop"))]) == message


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        ({"matchLabels": {"app": "api"}}, {"app": "api", "pod-template-hash": "x"}, True),
        ({"matchLabels": {"app": "api"}}, {"app": "web"}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}, {"tier": "b"}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, {"tier": "a"}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"tier": ""}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"tier": ""}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "Gt", "values": ["1"]}]}, {"tier": "2"}, False),
        ({}, {"app": "api"}, False),
    ],
    ids=["labels", "labels-differ", "in", "not-in", "not-in-absent", "exists", "does-not-exist", "bad-op", "empty"],
)
def test_label_selectors(selector: dict[str, Any], labels: dict[str, str], selected: bool) -> None:
    assert selects(selector, labels) is selected


# --- an environment's health -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "worst"),
    [([C, U, P], P), ([C, F, P], F), ([C, U], U), ([C, C], C), ([], C)],
    ids=["in-progress-over-unknown", "failed-over-all", "unknown-over-current", "all-current", "nothing"],
)
def test_environment_health_is_the_worst(statuses: list[HealthStatus], worst: HealthStatus) -> None:
    assert aggregate(statuses) is worst
