"""Snapshots for the cluster verbs' tests: DesiredObjects as a renderer would give them."""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from gitops_agent.model import DesiredObject, ObjectKey


def desired(*manifests: dict[str, Any]) -> list[DesiredObject]:
    return [DesiredObject(ObjectKey.of(m), m, f"{m['kind'].lower()}.yaml") for m in manifests]


def dry_run_delete(api_client: k8s.ApiClient, namespace: str, name: str) -> object:
    return k8s.CoreV1Api(api_client).delete_namespaced_config_map(name, namespace, dry_run="All")


def dry_run_create(api_client: k8s.ApiClient, namespace: str, name: str) -> object:
    body = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name=name))
    return k8s.CoreV1Api(api_client).create_namespaced_config_map(namespace, body, dry_run="All")
