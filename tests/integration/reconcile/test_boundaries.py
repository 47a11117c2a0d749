"""Boundaries against the real API server: an environment writes only inside its scope; a snapshot
that leaves it fails whole, before any write, naming the file, the object and the rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from gitops_agent.agent import Agent
from gitops_agent.config import parse_config
from gitops_agent.core.prepare import ENV_LABEL
from gitops_agent.reconcile import FollowSettings
from tests.integration.conftest import AgentFactory
from tests.support.builders import ConfigRepo, config_yaml, configmap, deployment, make_config, widget_crd

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


def pvc(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


@pytest.mark.parametrize("first", ["dev", "prod"])
def test_objects_moved_between_environments_in_one_commit_are_handed_over_not_recreated(
    repo: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    api_client: k8s.ApiClient,
    first: str,
) -> None:
    shared = names["dev"]
    both = {"namespaces": [names["dev"], names["prod"]]}
    moved = [in_namespace(configmap("moved", {"k": "v"}), shared), pvc("data", shared)]
    repo.write("environments/dev/app.yaml", [configmap("settings", {}), *moved])
    repo.write("environments/prod/app.yaml", [configmap("settings", {})])
    repo.commit("in dev")
    text = yaml.safe_load(config_yaml(repo, names, tmp_path, scope=both))
    text["environments"][1]["scope"] = both
    # a claim stays Pending without a provisioner: don't follow rollouts
    agent = agent_factory(parse_config(yaml.safe_dump(text), source="test.yaml"), follow=FollowSettings(enabled=False))
    assert all(r.ok for r in agent.sync_all())
    core = k8s.CoreV1Api(api_client)
    uids = (core.read_namespaced_config_map("moved", shared).metadata.uid,
            core.read_namespaced_persistent_volume_claim("data", shared).metadata.uid)  # fmt: skip

    repo.write("environments/dev/app.yaml", [configmap("settings", {})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {}), *moved])
    repo.commit("moved to prod")
    order = ["dev", "prod"] if first == "dev" else ["prod", "dev"]
    results = {name: agent.sync_all(name)[0] for name in order}
    assert all(r.ok for r in results.values()), {n: r.error for n, r in results.items()}
    cm = core.read_namespaced_config_map("moved", shared)
    claim = core.read_namespaced_persistent_volume_claim("data", shared)
    assert (cm.metadata.uid, claim.metadata.uid) == uids, "handed over, not deleted and recreated"
    assert cm.metadata.labels[ENV_LABEL] == "prod" == claim.metadata.labels[ENV_LABEL]
    assert cm.metadata.deletion_timestamp is None and claim.metadata.deletion_timestamp is None
    # and dev no longer counts them as its own
    again = agent.sync_all("dev")[0]
    assert again.ok and not [o for o in (again.sync.objects if again.sync else ()) if o.key.name in ("moved", "data")]
