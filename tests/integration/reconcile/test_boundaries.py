"""Boundaries against the real API server: an environment writes only inside its scope; a snapshot
that leaves it fails whole, before any write, naming the file, the object and the rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from gitops_agent.agent import Agent
from tests.integration.conftest import AgentFactory
from tests.support.builders import ConfigRepo, configmap, deployment, make_config, widget_crd

pytestmark = pytest.mark.integration


def writes(agent: Agent) -> list[tuple[str, Any]]:
    return list(agent.clusters.kube(agent.config.environments[0]).writes)


@pytest.fixture
def prod_synced(repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory) -> Agent:
    repo.write("environments/dev/app.yaml", [configmap("settings", {"mode": "dev"})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"mode": "prod"})])
    repo.commit("both")
    agent = agent_factory(make_config(repo, names, tmp_path))
    assert all(r.ok for r in agent.sync_all()), [r.error for r in agent.sync_all()]
    return agent


def in_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    obj["metadata"]["namespace"] = namespace
    return obj


@pytest.mark.parametrize(
    ("target", "rule"),
    [
        ("prod", "is not one of scope.namespaces"),
        ("agent-ledger", "is the agent's own"),
        ("agent-deployment", "is the agent's own"),
        ("cluster-role-binding", "cluster-scoped kind ClusterRoleBinding.rbac.authorization.k8s.io is not in scope"),
    ],
)
def test_a_dev_commit_reaching_outside_dev_is_refused_with_no_write_anywhere(
    prod_synced: Agent,
    repo: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    api_client: k8s.ApiClient,
    target: str,
    rule: str,
) -> None:
    core = k8s.CoreV1Api(api_client)
    ledger_before = core.read_namespaced_config_map("ledger-prod", names["agent"]).metadata.resource_version
    prod_before = core.read_namespaced_config_map("settings", names["prod"]).metadata.resource_version
    hostile = {
        "prod": in_namespace(configmap("settings", {"mode": "hijacked"}), names["prod"]),
        "agent-ledger": in_namespace(configmap("ledger-prod", {"entries": "[]"}), names["agent"]),
        "agent-deployment": in_namespace(deployment("steal"), names["agent"]),
        "cluster-role-binding": {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"own-{names['dev']}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": names["dev"]}],
        },
    }[target]
    repo.write("environments/dev/app.yaml", [configmap("settings", {"mode": "dev2"}), hostile])
    repo.commit("reach out")
    agent = agent_factory(prod_synced.config)

    dev = agent.sync_all("dev")[0]
    assert dev.outcome == "failed" and "outside environment 'dev''s scope" in dev.error and rule in dev.error, dev.error
    assert "environments/dev/app.yaml" in dev.error
    assert writes(agent) == [], "nothing at all was written"
    assert core.read_namespaced_config_map("settings", names["dev"]).data == {"mode": "dev"}
    assert core.read_namespaced_config_map("ledger-prod", names["agent"]).metadata.resource_version == ledger_before
    assert core.read_namespaced_config_map("settings", names["prod"]).metadata.resource_version == prod_before
    assert agent.snapshots is not None and agent.sync_all("prod")[0].ok, "prod goes on"


def test_a_cluster_scoped_custom_kind_is_judged_once_the_server_says_it_is_cluster_scoped(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> None:
    group = f"b{names['agent'].split('-')[1]}.example.com"
    crd = widget_crd(group)
    crd["spec"]["scope"] = "Cluster"
    ext = k8s.ApiextensionsV1Api(api_client)
    ext.create_custom_resource_definition(crd)
    try:
        widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
        repo.write("environments/dev/app.yaml", [configmap("settings", {}), widget])
        repo.write("environments/prod/app.yaml", [configmap("settings", {})])
        repo.commit()
        agent = agent_factory(make_config(repo, names, tmp_path))
        dev = agent.sync_all("dev")[0]
        assert dev.outcome == "failed" and f"cluster-scoped kind Widget.{group} is not in scope" in dev.error
        own = names["agent"]
        assert [w for w in writes(agent) if own not in (w[1].namespace, w[1].name)] == [], "only the agent's ledger"
        allowed = agent_factory(
            make_config(repo, names, tmp_path, scope={"namespaces": [names["dev"]], "cluster_kinds": ["Widget"]})
        )
        assert allowed.sync_all("dev")[0].ok
    finally:
        ext.delete_custom_resource_definition(f"widgets.{group}")
