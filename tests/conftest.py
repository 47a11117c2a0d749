"""Session fixtures over the real test control plane (tests/controlplane/harness.py).

The control plane starts only when a test asks for it, so ``pytest tests/unit`` never starts one.
``GITOPS_AGENT_KUBECONFIG=path`` reuses a running one (``make cluster-up``) instead.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.controlplane.harness import ControlPlane, bin_dir


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane | None]:
    if os.environ.get("GITOPS_AGENT_KUBECONFIG"):
        yield None
        return
    with ControlPlane(tmp_path_factory.mktemp("control-plane")) as plane:
        yield plane


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane | None) -> str:
    if control_plane is None:
        return os.environ["GITOPS_AGENT_KUBECONFIG"]
    return str(control_plane.kubeconfig)


@pytest.fixture(scope="session", autouse=True)
def kustomize_binary() -> None:
    """The agent renders Kustomize overlays with the kubectl built beside the control plane, so
    tests never depend on whatever kubectl a machine happens to have."""
    os.environ.setdefault("GITOPS_AGENT_KUSTOMIZE", str(bin_dir() / "kubectl"))


@pytest.fixture(scope="session")
def api_client(kubeconfig: str) -> Iterator[k8s.ApiClient]:
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    with k8s.ApiClient(configuration) as client:
        yield client


@pytest.fixture
def namespace(api_client: k8s.ApiClient) -> Iterator[str]:
    """A fresh namespace, ready for pods (its default ServiceAccount exists), deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = k8s.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name}})
    deadline = time.monotonic() + 30
    while True:
        try:
            core.read_namespaced_service_account("default", name)
            break
        except k8s.ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    yield name
    try:
        core.delete_namespace(name)
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Integration tests run after unit tests: failures in the pure core show up first."""
    items.sort(key=lambda item: item.get_closest_marker("integration") is not None)
