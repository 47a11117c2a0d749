"""Health rules over objects captured from the real test control plane (tests/fixtures/live,
refreshed by ``python -m tests.fixtures.capture_health``). Situations the control plane cannot
produce (no load-balancer or custom-resource controllers there) are derived from a captured
object, and say so."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_agent.core.health import aggregate, assess, explain_deployment
from gitops_agent.model import HealthStatus

LIVE = Path(__file__).parent.parent / "fixtures" / "live"
C, P, F, U = HealthStatus.CURRENT, HealthStatus.IN_PROGRESS, HealthStatus.FAILED, HealthStatus.UNKNOWN


def live(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((LIVE / f"{name}.yaml").read_text())
    return obj


@pytest.mark.parametrize(
    ("fixture", "status", "words"),
    [
        ("deployment-available", C, "2/2 replicas available"),
        ("deployment-progressing", P, "0/2 replicas available"),
        ("deployment-deadline-exceeded", F, "progress deadline exceeded"),
        ("deployment-rolling", P, "1/2 replicas updated"),
        ("replicaset-available", C, "2/2"),
        ("pod-ready", C, "running and ready"),
        ("pod-crashloop", F, "CrashLoopBackOff in container app"),
        ("pod-pending", P, "pending"),
        ("job-complete", C, "complete"),
        ("job-failed", F, "backoff limit"),
        ("statefulset-ready", C, "2/2 replicas ready"),
        ("statefulset-rolling", P, ""),
        ("daemonset-ready", C, "1/1 pods available"),
        ("persistentvolumeclaim-pending", P, "not bound"),
        ("service-loadbalancer-pending", P, "waiting for a load balancer"),
        ("service-clusterip", C, "exists"),
        ("ingress-no-address", P, "waiting for a load balancer"),
        ("namespace-active", C, "active"),
        ("apiservice-available", C, "available"),
        ("customresourcedefinition-established", C, "established"),
    ],
)
def test_captured_objects(fixture: str, status: HealthStatus, words: str) -> None:
    health = assess(live(fixture))
    assert health.status is status, health
    assert words in health.message


def derived(fixture: str, change: Any) -> dict[str, Any]:
    obj = copy.deepcopy(live(fixture))
    change(obj)
    return obj


def _bump_generation(o: dict[str, Any]) -> None:
    o["metadata"]["generation"] += 1


def _image_pull(o: dict[str, Any]) -> None:
    o["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "ImagePullBackOff"}}


def _lb_address(o: dict[str, Any]) -> None:
    o["status"]["loadBalancer"] = {"ingress": [{"ip": "203.0.113.7"}]}


def _deleting(o: dict[str, Any]) -> None:
    o["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"


def _as_custom_resource(ready: str, reason: str) -> Any:
    def change(o: dict[str, Any]) -> None:
        o.update(apiVersion="capture.example.com/v1", kind="Widget")
        o["status"] = {"conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": "m"}]}

    return change


def _stalled(o: dict[str, Any]) -> None:
    o["status"]["conditions"].append({"type": "Stalled", "status": "True", "message": "stuck"})


@pytest.mark.parametrize(
    ("fixture", "change", "status"),
    [
        ("deployment-available", _bump_generation, P),  # the controller has not seen the change
        ("pod-crashloop", _image_pull, F),
        ("service-loadbalancer-pending", _lb_address, C),  # no load-balancer controller here
        ("deployment-available", _deleting, P),
        ("namespace-active", _as_custom_resource("True", "Reconciled"), C),  # no CR controller here
        ("namespace-active", _as_custom_resource("False", "Progressing"), P),
        ("namespace-active", _as_custom_resource("False", "InstallFailed"), F),
        ("deployment-available", _stalled, F),
    ],
    ids=["generation", "image-pull", "lb-address", "deleting", "cr-ready", "cr-progressing", "cr-failed", "stalled"],
)
def test_derived_objects(fixture: str, change: Any, status: HealthStatus) -> None:
    assert assess(derived(fixture, change)).status is status


def test_kinds_without_status_are_current_once_they_exist() -> None:
    assert assess({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}).status is C


def test_a_failing_deployment_is_explained_by_its_pods() -> None:
    message = explain_deployment(live("deployment-deadline-exceeded"), [live("pod-crashloop")])
    assert message == "crash: 0/2 ready, CrashLoopBackOff in container app"


def test_environment_health_is_the_worst() -> None:
    assert aggregate([C, U, P]) is P
    assert aggregate([C, F, P]) is F
    assert aggregate([C, U]) is U
    assert aggregate([]) is C
