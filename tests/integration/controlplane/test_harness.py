"""The test control plane is real: server-side apply, field ownership, CRDs, kwok's pods and Jobs,
request counting, and a harness that leaves nothing behind when its process is killed.

Objects are plain JSON dicts, read and written through the client's raw HTTP layer, as the
agent's adapter does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.controlplane.harness import FAIL_ANNOTATION, NODE_NAME, RequestCounts
from tests.support import paths
from tests.support.builders import deployment
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

MANAGER = "gitops-agent-test"
REPO = paths.REPOSITORY


def call(
    api_client: k8s.ApiClient,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
    query: list[tuple[str, str]] | None = None,
) -> tuple[int, Any]:
    """One API request; returns the HTTP status and the decoded JSON body (errors included)."""
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    _, url, headers, _, _ = api_client.param_serialize(
        method, path, query_params=query or [], header_params=headers, auth_settings=["BearerToken"]
    )
    # the client JSON-encodes bodies itself for JSON content types only
    data = body if body is None or "json" in content_type else json.dumps(body).encode()
    response = api_client.call_api(method, url, header_params=headers, body=data)
    read: Callable[[], bytes] = response.read  # unannotated in the kubernetes package
    return int(response.status), json.loads(read())


def get(api_client: k8s.ApiClient, path: str) -> Any:
    status, body = call(api_client, "GET", path)
    assert status == 200, body
    return body


def apply(
    api_client: k8s.ApiClient, path: str, body: Any, manager: str, *, force: bool = True, dry_run: bool = False
) -> tuple[int, Any]:
    """Server-side apply of ``body`` at ``path`` as field manager ``manager``."""
    query = [("fieldManager", manager)]
    query += [("force", "true")] if force else []
    query += [("dryRun", "All")] if dry_run else []
    return call(api_client, "PATCH", path, body, content_type="application/apply-patch+yaml", query=query)


def job(name: str, annotations: dict[str, str] | None = None, backoff_limit: int = 6) -> dict[str, Any]:
    pod_spec = {"restartPolicy": "Never", "containers": [{"name": "task", "image": "example/task:1"}]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {"metadata": {"annotations": annotations or {}}, "spec": pod_spec},
        },
    }


def condition(obj: Any, kind: str) -> Any:
    """The status condition of type ``kind`` ({} when absent)."""
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


def test_server_side_apply_and_kwok_make_a_deployment_available(api_client: k8s.ApiClient, namespace: str) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
    status, applied = apply(api_client, path, deployment("web", replicas=3), MANAGER)
    assert status == 201, applied
    assert [m["manager"] for m in applied["metadata"]["managedFields"]] == [MANAGER]

    def available() -> Any:
        live = get(api_client, path)
        return live["status"].get("availableReplicas") == live["spec"]["replicas"] and live

    live = wait_until(available, timeout=60, interval=0.2, message="3 available replicas")
    assert live["status"]["readyReplicas"] == 3
    assert condition(live, "Available")["status"] == "True"
    pods = get(api_client, f"/api/v1/namespaces/{namespace}/pods?labelSelector=app%3Dweb")["items"]
    assert len(pods) == 3
    assert {p["spec"]["nodeName"] for p in pods} == {NODE_NAME}
    assert all(p["status"]["phase"] == "Running" and condition(p, "Ready")["status"] == "True" for p in pods)


def test_a_second_manager_takes_replicas_and_managed_fields_say_so(api_client: k8s.ApiClient, namespace: str) -> None:
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
    apply(api_client, path, deployment("web", replicas=1), MANAGER)
    takeover = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 4}}

    status, conflict = apply(api_client, path, takeover, "rival", force=False)
    assert status == 409, "without force, SSA refuses a field another manager owns"
    assert conflict["reason"] == "Conflict"
    assert any(f'conflict with "{MANAGER}"' in c["message"] for c in conflict["details"]["causes"])

    status, _ = apply(api_client, path, takeover, "rival")
    fields = {m["manager"]: m["fieldsV1"] for m in get(api_client, path)["metadata"]["managedFields"]}
    assert status == 200
    assert "f:replicas" in fields["rival"]["f:spec"]
    assert "f:replicas" not in fields[MANAGER]["f:spec"]
    assert "f:template" in fields[MANAGER]["f:spec"]

    # An imperative scale (kubectl scale, an HPA) is an Update through the scale subresource.
    scale = {"spec": {"replicas": 5}}
    merge = "application/merge-patch+json"
    status, _ = call(
        api_client, "PATCH", f"{path}/scale", scale, content_type=merge, query=[("fieldManager", "scaler")]
    )
    live = get(api_client, path)
    entries = {(m["manager"], m["operation"], m.get("subresource", "")): m for m in live["metadata"]["managedFields"]}
    assert status == 200
    assert live["spec"]["replicas"] == 5
    assert "f:replicas" in entries[("scaler", "Update", "scale")]["fieldsV1"]["f:spec"]
    assert ("rival", "Apply", "") not in entries, "rival's only field went to scaler, so its entry is gone"
    assert ("gitops-agent-test", "Apply", "") in entries


def test_a_crd_becomes_established_and_serves_custom_resources(api_client: k8s.ApiClient, namespace: str) -> None:
    group = f"t{uuid.uuid4().hex[:8]}.example.com"
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}],
        },
    }
    crd_path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{group}"
    status, _ = apply(api_client, crd_path, crd, MANAGER)
    assert status == 201
    try:
        wait_until(
            lambda: condition(get(api_client, crd_path), "Established").get("status") == "True",
            timeout=60, interval=0.2, message="the CRD Established",
        )  # fmt: skip
        widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 2}}
        path = f"/apis/{group}/v1/namespaces/{namespace}/widgets/w"

        def created() -> Any:
            # the new group's handler can lag Established by a moment: retry the first write briefly
            status, body = apply(api_client, path, widget, MANAGER)
            return status == 201 and body

        assert wait_until(created, timeout=30, interval=0.2, message="a Widget")["spec"] == {"size": 2}
        assert get(api_client, path)["spec"] == {"size": 2}
        # The schema is enforced. SSA answers a value of the wrong type with 500 "failed to create
        # typed patch object" (the agent's adapter counts it as the manifest's fault); create, 422.
        bad = {**widget, "metadata": {"name": "bad"}, "spec": {"size": "big"}}
        status, rejected = apply(api_client, f"/apis/{group}/v1/namespaces/{namespace}/widgets/bad", bad, MANAGER)
        assert (status, "failed to create typed patch object" in rejected["message"]) == (500, True), rejected
        status, rejected = call(api_client, "POST", f"/apis/{group}/v1/namespaces/{namespace}/widgets", bad)
        assert (status, rejected["reason"]) == (422, "Invalid"), rejected
    finally:
        call(api_client, "DELETE", crd_path)


def test_a_crashlooping_rollout_stays_unready(api_client: k8s.ApiClient, namespace: str) -> None:
    body = deployment("crash", replicas=2, annotations={FAIL_ANNOTATION: "crashloop"})
    apply(api_client, f"/apis/apps/v1/namespaces/{namespace}/deployments/crash", body, MANAGER)

    def crashlooping() -> Any:
        pods = get(api_client, f"/api/v1/namespaces/{namespace}/pods?labelSelector=app%3Dcrash")["items"]
        waiting = [s["state"].get("waiting", {}) for p in pods for s in p["status"].get("containerStatuses", [])]
        return len(pods) == len(waiting) == 2 and all(w.get("reason") == "CrashLoopBackOff" for w in waiting) and pods

    pods = wait_until(crashlooping, timeout=60, interval=0.2, message="two pods in CrashLoopBackOff")
    assert all(p["status"]["phase"] == "Running" and condition(p, "Ready")["status"] == "False" for p in pods)
    assert all(s["restartCount"] > 0 and not s["ready"] for p in pods for s in p["status"]["containerStatuses"])
    live = get(api_client, f"/apis/apps/v1/namespaces/{namespace}/deployments/crash")
    assert live["status"].get("availableReplicas", 0) == 0
    assert live["status"]["unavailableReplicas"] == 2


def test_a_job_completes_and_a_failing_job_fails(api_client: k8s.ApiClient, namespace: str) -> None:
    jobs = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    apply(api_client, f"{jobs}/once", job("once"), MANAGER)
    apply(api_client, f"{jobs}/doomed", job("doomed", {FAIL_ANNOTATION: "exit"}, backoff_limit=0), MANAGER)

    def finished(name: str, kind: str) -> Any:
        found = get(api_client, f"{jobs}/{name}")
        return condition(found, kind).get("status") == "True" and found

    done = wait_until(lambda: finished("once", "Complete"), timeout=60, interval=0.2, message="the Job to complete")
    assert done["status"]["succeeded"] == 1
    failed = wait_until(
        lambda: finished("doomed", "Failed"), timeout=60, interval=0.2, message="the failing Job to fail"
    )
    assert condition(failed, "Failed")["reason"] == "BackoffLimitExceeded"
    assert failed["status"]["failed"] == 1


def test_request_counts_see_our_writes_by_verb_and_resource(
    api_client: k8s.ApiClient, namespace: str, api_request_counts: Callable[[], RequestCounts]
) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "counted"}, "data": {"k": "v"}}
    path = f"/api/v1/namespaces/{namespace}/configmaps/counted"
    before = api_request_counts()
    apply(api_client, path, cm, MANAGER, dry_run=True)
    apply(api_client, path, cm, MANAGER)
    apply(api_client, path, {**cm, "data": {"k": "w"}}, MANAGER)
    get(api_client, path)
    delta = api_request_counts().since(before)

    # only APPLY is ours alone: controllers cleaning up earlier tests' namespaces, or publishing
    # kube-root-ca.crt into new ones, write configmaps too (DELETE, CREATE) at any moment
    assert delta.count(["APPLY"], "configmaps", dry_run=False) == 2
    assert delta.writes("configmaps", group="") >= 2
    assert delta.count(["APPLY"], "configmaps", dry_run=True) == 1
    assert delta.count(["GET"], "configmaps") >= 1
    assert delta.by_verb(dry_run=False)["APPLY"] >= 2


def test_a_killed_test_process_leaves_nothing_behind(tmp_path: Path) -> None:
    """SIGKILL of the process that started a control plane: its components die with it
    (PDEATHSIG) and the reaper removes the data."""
    state = tmp_path / "plane"
    script = (
        "import sys, time; from pathlib import Path; from tests.controlplane.harness import ControlPlane\n"
        "ControlPlane(Path(sys.argv[1])).start(); print('up', flush=True); time.sleep(600)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(state)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"up\n"  # bounded by the harness's own start timeout
        pids = [p["pid"] for p in json.loads((state / "pids.json").read_text())["processes"].values()]
        assert len(pids) == 5
        assert (state / "etcd").is_dir()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def all_gone() -> bool:
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        return not alive and not (state / "etcd").exists() and not (state / "pki").exists()

    wait_until(all_gone, timeout=30, interval=0.2, message="the components to exit and the data to go")
    assert "the test process died" in (state / "logs" / "reaper.log").read_text()
