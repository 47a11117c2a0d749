"""The test control plane is real: server-side apply, field ownership, CRDs, and kwok's pods."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.controlplane.harness import FAIL_ANNOTATION
from tests.integration.support import deployment, widget_crd

pytestmark = pytest.mark.integration


def ssa(api_client: k8s.ApiClient, path: str, body: dict[str, Any], manager: str) -> Any:
    """Server-side apply through the client's raw HTTP layer, as the agent's adapter does."""
    _, url, headers, _, _ = api_client.param_serialize(
        "PATCH",
        path,
        query_params=[("fieldManager", manager), ("force", "true")],
        header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api("PATCH", url, header_params=headers, body=json.dumps(body).encode())
    data = response.read()
    assert response.status in (200, 201), data
    return json.loads(data)


def eventually(check: Callable[[], Any], timeout_s: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def test_server_side_apply_and_kwok_make_a_deployment_available(api_client: k8s.ApiClient, namespace: str) -> None:
    body = {**deployment("web", replicas=3), "metadata": {"name": "web", "namespace": namespace}}
    ssa(api_client, f"/apis/apps/v1/namespaces/{namespace}/deployments/web", body, "gitops-agent-test")
    apps = k8s.AppsV1Api(api_client)

    def available() -> bool:
        status = apps.read_namespaced_deployment("web", namespace).status
        return status.available_replicas == 3

    eventually(available, what="3 available replicas")


def test_managed_fields_show_who_owns_replicas_after_a_second_manager_scales(
    api_client: k8s.ApiClient, namespace: str
) -> None:
    body = {**deployment("web", replicas=1), "metadata": {"name": "web", "namespace": namespace}}
    ssa(api_client, f"/apis/apps/v1/namespaces/{namespace}/deployments/web", body, "gitops-agent-test")
    apps = k8s.AppsV1Api(api_client)
    apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 4}}, field_manager="hpa-like")

    live = apps.read_namespaced_deployment("web", namespace)
    owners = {m.manager: json.dumps(m.fields_v1) for m in live.metadata.managed_fields}
    assert live.spec.replicas == 4
    assert '"f:replicas"' in owners["hpa-like"]
    assert '"f:replicas"' not in owners["gitops-agent-test"]
    assert '"f:template"' in owners["gitops-agent-test"]


def test_a_crd_becomes_established_and_serves_custom_resources(api_client: k8s.ApiClient, namespace: str) -> None:
    group = f"cp{namespace.split('-')[1]}.example.com"
    crd = widget_crd(group)
    ext = k8s.ApiextensionsV1Api(api_client)
    ext.create_custom_resource_definition(crd)
    try:

        def established() -> bool:
            conditions = ext.read_custom_resource_definition(f"widgets.{group}").status.conditions or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        eventually(established, 30, "Established")
        custom = k8s.CustomObjectsApi(api_client)
        widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 2}}
        custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", widget)
        got = custom.get_namespaced_custom_object(group, "v1", namespace, "widgets", "w")
        assert got["spec"] == {"size": 2}
    finally:
        ext.delete_custom_resource_definition(f"widgets.{group}")


def test_kwok_keeps_a_crashlooping_pod_unready_and_completes_jobs(api_client: k8s.ApiClient, namespace: str) -> None:
    crash = deployment("crash")
    crash["spec"]["template"]["metadata"]["annotations"] = {FAIL_ANNOTATION: "crashloop"}
    k8s.AppsV1Api(api_client).create_namespaced_deployment(namespace, crash)
    job = {
        "metadata": {"name": "once"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}},
    }
    k8s.BatchV1Api(api_client).create_namespaced_job(namespace, job)
    core = k8s.CoreV1Api(api_client)

    def crashlooping() -> bool:
        pods = core.list_namespaced_pod(namespace, label_selector="app=crash").items
        states = [s.state.waiting for p in pods for s in (p.status.container_statuses or [])]
        return bool(states) and all(w is not None and w.reason == "CrashLoopBackOff" for w in states)

    eventually(crashlooping, what="CrashLoopBackOff")

    def completed() -> bool:
        conditions = k8s.BatchV1Api(api_client).read_namespaced_job("once", namespace).status.conditions or []
        return any(c.type == "Complete" and c.status == "True" for c in conditions)

    eventually(completed, what="the Job to complete")
