"""For the Secret tests against the real API server: an admission policy that refuses writes of a
Secret and quotes its values in the refusal, as a careless webhook would, and a canary Secret."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kubernetes import client as k8s

from tests.support.polling import wait_until


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def canary_secret(name: str, canary: str) -> dict[str, Any]:
    """A Secret holding the canary in ``data`` (base64) and in ``stringData``."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "data": {"token": b64(f"{canary}-data")},
        "stringData": {"password": f"{canary}-string"},
    }


@contextmanager
def echoing_refusal(api_client: k8s.ApiClient, namespace: str, probe: Callable[[], object]) -> Iterator[None]:
    """A ValidatingAdmissionPolicy refusing every write (dry-runs included) of a Secret in
    ``namespace``, its message quoting each value of the Secret's ``data`` (base64, as the server
    holds it); in force once ``probe`` is refused."""
    custom = k8s.CustomObjectsApi(api_client)
    name = f"echo-secret-{uuid.uuid4().hex[:8]}"
    message = "'refused, data is ' + object.data.map(k, k + '=' + string(object.data[k])).join(', ')"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["secrets"],
                    }
                ]
            },
            "validations": [{"expression": "!has(object.data)", "messageExpression": message}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
        },
    }
    group, version = "admissionregistration.k8s.io", "v1"
    custom.create_cluster_custom_object(group, version, "validatingadmissionpolicies", policy)
    custom.create_cluster_custom_object(group, version, "validatingadmissionpolicybindings", binding)

    def refused() -> bool:
        try:
            probe()
        except Exception as exc:  # the agent's errors and the client's alike
            return "refused, data is" in str(exc) or "refused, data is" in str(getattr(exc, "body", ""))
        return False

    try:
        wait_until(refused, timeout=30, message="the admission policy echoing Secrets to take effect")
        yield
    finally:
        for plural in ("validatingadmissionpolicybindings", "validatingadmissionpolicies"):
            custom.delete_cluster_custom_object(group, version, plural, name)
        wait_until(lambda: not refused(), timeout=30, message="the admission policy echoing Secrets to go")
