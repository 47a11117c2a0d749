"""cluster.prepare against the real API server: scopes come from discovery."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gitops_agent.cluster import ClusterApi, SyncOptions
from gitops_agent.cluster.prepare import inventoried, prepare_snapshot
from gitops_agent.errors import ValidationError
from tests.integration.cluster.support import desired
from tests.support.builders import configmap

pytestmark = pytest.mark.integration


def test_namespaces_are_defaulted_by_scope_and_the_environment_namespace_is_added_not_inventoried(
    api: ClusterApi, options: SyncOptions, names: dict[str, str]
) -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "r", "namespace": "x"},
    }
    prepared = prepare_snapshot(api, desired(configmap("a", {}), role), options)
    keys = [str(p.key) for p in prepared]
    assert keys == [f"Namespace/{names['dev']}", "ClusterRole/r", f"ConfigMap/{names['dev']}/a"]
    assert [p.inventoried for p in prepared] == [False, True, True]
    assert [str(p.key) for p in inventoried(api, desired(configmap("a", {}), role), options)] == keys[1:]
    without = prepare_snapshot(api, desired(configmap("a", {})), replace(options, create_namespace=False))
    assert [p.key.kind for p in without] == ["ConfigMap"]


def test_a_kind_the_server_does_not_serve_is_refused_with_its_file(api: ClusterApi, options: SyncOptions) -> None:
    unknown = {"apiVersion": "nope.example.com/v1", "kind": "Gizmo", "metadata": {"name": "g"}}
    with pytest.raises(
        ValidationError, match=r"gizmo\.yaml: .*unknown kind 'Gizmo' in apiVersion 'nope\.example\.com/v1'"
    ):
        prepare_snapshot(api, desired(unknown), options)
