"""Session fixtures over the real test control plane (tests/controlplane/harness.py).

The control plane starts only when a test asks for it (``control_plane``, ``kubeconfig``,
``api_client``, ``namespace``...), so ``pytest tests/unit`` never starts one, nor builds one.
Such tests are marked ``integration`` automatically. ``GITOPS_AGENT_KUBECONFIG=path`` reuses a
running cluster (e.g. ``make cluster-up``, then ``GITOPS_AGENT_KUBECONFIG=.cluster/kubeconfig``).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.controlplane import harness
from tests.controlplane.harness import ControlPlane, RequestCounts
from tests.support.polling import wait_until

KUBECONFIG_ENV = "GITOPS_AGENT_KUBECONFIG"
KUSTOMIZE_ENV = "GITOPS_AGENT_KUSTOMIZE"
HELM_ENV = "GITOPS_AGENT_HELM"
BUILD_HELM = Path(__file__).parent / "controlplane" / "build-helm.sh"
NAMESPACE_LABEL = "gitops-agent.test/namespace"  # marks namespaces made by the `namespace` fixture


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane | None]:
    """The session's control plane, or None when ``$GITOPS_AGENT_KUBECONFIG`` names a running one."""
    if os.environ.get(KUBECONFIG_ENV):
        yield None
        return
    with ControlPlane(tmp_path_factory.mktemp("control-plane")) as plane:
        yield plane


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane | None) -> str:
    """Path of an admin kubeconfig for the session's cluster."""
    if control_plane is None:
        return os.environ[KUBECONFIG_ENV]
    return str(control_plane.kubeconfig)


@pytest.fixture(scope="session")
def api_client(kubeconfig: str) -> Iterator[k8s.ApiClient]:
    configuration = k8s.Configuration()
    load: Callable[..., None] = k8s_config.load_kube_config  # unannotated in the kubernetes package
    load(config_file=kubeconfig, client_configuration=configuration)
    with k8s.ApiClient(configuration) as client:
        yield client


@pytest.fixture
def api_request_counts(api_client: k8s.ApiClient) -> Callable[[], RequestCounts]:
    """Reads the API server's ``apiserver_request_total`` now; diff two reads with ``.since()``:

        before = api_request_counts()
        ...
        assert api_request_counts().since(before).writes("configmaps") == 1

    Counters are cluster-wide, so count resources only your test writes (see harness docstring).
    """
    return lambda: harness.api_request_counts(api_client)


@pytest.fixture
def namespace(api_client: k8s.ApiClient) -> Iterator[str]:
    """A fresh namespace, ready for pods (its default ServiceAccount exists), deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = k8s.CoreV1Api(api_client)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels={NAMESPACE_LABEL: "true"})))

    def service_account() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
            return True
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
            return False

    wait_until(service_account, timeout=60, interval=0.1, message=f"the default ServiceAccount of {name}")
    yield name
    try:
        core.delete_namespace(name)  # not waited for: the namespace controller finishes it
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture(autouse=True)
def kustomize_binary(request: pytest.FixtureRequest) -> None:
    """The agent renders Kustomize overlays with the kubectl built beside the control plane, so
    tests never depend on whatever kubectl a machine happens to have. Only integration tests may
    trigger the (cold: many minutes) build; other tests use it when it is already there."""
    if os.environ.get(KUSTOMIZE_ENV):
        return
    bins = harness.bin_dir() if request.node.get_closest_marker("integration") else harness.cached_bin_dir()
    if bins is not None:
        os.environ[KUSTOMIZE_ENV] = str(bins / "kubectl")


@pytest.fixture(autouse=True)
def helm_binary(request: pytest.FixtureRequest) -> None:
    """Charts render with the helm tests/controlplane/build-helm.sh builds (pinned, as the image's),
    never one a machine happens to have; integration tests build it when missing (about a minute)."""
    if os.environ.get(HELM_ENV) or not request.node.get_closest_marker("integration"):
        return
    built = subprocess.run(["bash", str(BUILD_HELM)], check=True, capture_output=True, text=True)
    os.environ[HELM_ENV] = built.stdout.strip()


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the cluster are `integration` even if unmarked; they run after the unit
    tests, so failures in the pure core show up first."""
    for item in items:
        if "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
    items.sort(key=lambda item: item.get_closest_marker("integration") is not None)
