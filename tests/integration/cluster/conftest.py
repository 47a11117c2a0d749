"""Fixtures for the cluster verbs against the real API server: a ClusterApi, the options of a
sync into the test's namespaces, and admission policies that make chosen writes fail for real."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kubernetes import client as k8s

from gitops_agent.adapters.kube import KubeClient
from gitops_agent.cluster import ClusterApi, SyncOptions
from gitops_agent.errors import GitOpsError
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

#: refuses one operation on one object by name, in one namespace: a real admission failure
Deny = Callable[..., Any]


@pytest.fixture
def kube(kubeconfig: str) -> Iterator[KubeClient]:
    client = KubeClient.connect(kubeconfig=kubeconfig)
    yield client
    client.close()


@pytest.fixture
def api(kube: KubeClient) -> ClusterApi:
    return ClusterApi(kube)


@pytest.fixture
def options(names: dict[str, str]) -> SyncOptions:
    return SyncOptions(
        environment="dev", namespace=names["dev"], field_manager="gitops-agent", agent_namespace=names["agent"]
    )


@pytest.fixture
def deny(api_client: k8s.ApiClient) -> Iterator[Deny]:
    """``with deny(namespace, name, operation, probe)``: a ValidatingAdmissionPolicy refusing
    ``operation`` (CREATE, UPDATE, DELETE) on ConfigMaps whose name starts with ``name`` in
    ``namespace`` (dry-runs too, unless ``allow_dry_run``); ready once ``probe`` is refused."""
    custom = k8s.CustomObjectsApi(api_client)
    made: list[str] = []

    @contextmanager
    def policy(
        namespace: str, name: str, operation: str, probe: Callable[[], object], *, allow_dry_run: bool = False
    ) -> Iterator[None]:
        policy_name = f"deny-{uuid.uuid4().hex[:8]}"
        subject = "oldObject" if operation == "DELETE" else "object"
        expression = (
            "request.dryRun == true || " if allow_dry_run else ""
        ) + f"!{subject}.metadata.name.startsWith('{name}')"
        body = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": policy_name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": [operation],
                            "resources": ["configmaps"],
                        }
                    ]
                },
                "validations": [{"expression": expression, "message": f"test policy refuses {name}"}],
            },
        }
        binding = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": policy_name},
            "spec": {
                "policyName": policy_name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
            },
        }
        group, version = "admissionregistration.k8s.io", "v1"
        custom.create_cluster_custom_object(group, version, "validatingadmissionpolicies", body)
        custom.create_cluster_custom_object(group, version, "validatingadmissionpolicybindings", binding)
        made.append(policy_name)

        def refused() -> bool:
            try:
                probe()
            except (GitOpsError, k8s.ApiException) as exc:
                return "test policy refuses" in str(exc) or "test policy refuses" in str(getattr(exc, "body", ""))
            return False

        wait_until(refused, timeout=30, message=f"the admission policy refusing {operation} {name} to take effect")
        try:
            yield
        finally:
            _remove(custom, policy_name)
            made.remove(policy_name)
            # the API server drops a policy from its cache a moment after it is deleted
            wait_until(lambda: not refused(), timeout=30, message=f"the policy refusing {operation} {name} to go")

    yield policy
    for name in made:
        _remove(custom, name)


def _remove(custom: k8s.CustomObjectsApi, name: str) -> None:
    group, version = "admissionregistration.k8s.io", "v1"
    for plural in ("validatingadmissionpolicybindings", "validatingadmissionpolicies"):
        try:
            custom.delete_cluster_custom_object(group, version, plural, name)
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
