"""Commits are snapshots: applied once, drift explained, repaired only under ``enforce``.

Against the real control plane: other field managers change objects the way ``kubectl scale``,
``kubectl edit`` and an HPA do, and the agent must attribute, classify and (not) revert that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from gitops_agent.core.drift import CHANGED, MISSING
from gitops_agent.reconcile import PassResult
from tests.integration.conftest import AgentFactory
from tests.support.builders import ConfigRepo, configmap, deployment, make_config

pytestmark = pytest.mark.integration


def scale(api_client: k8s.ApiClient, namespace: str, replicas: int, manager: str) -> None:
    """As ``kubectl scale`` or an HPA does: through the scale subresource, under its own manager."""
    k8s.AppsV1Api(api_client).patch_namespaced_deployment_scale(
        "api", namespace, {"spec": {"replicas": replicas}}, field_manager=manager
    )


def live_replicas(api_client: k8s.ApiClient, namespace: str) -> int:
    return int(k8s.AppsV1Api(api_client).read_namespaced_deployment("api", namespace).spec.replicas)


def drift_of(result: PassResult, kind: str = "Deployment") -> Any:
    return next(d for d in result.drift if d.key.kind == kind)


@pytest.fixture
def synced(repo: ConfigRepo, names: dict[str, str], tmp_path: Path) -> ConfigRepo:
    repo.write("environments/dev/app.yaml", [configmap("settings", {"mode": "dev"}), deployment("api", replicas=2)])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"mode": "prod"})])
    repo.commit("first")
    return repo


@pytest.mark.parametrize("policy", ["report", "enforce"])
def test_a_scale_by_another_manager_is_attributed_and_reverted_only_under_enforce(
    synced: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    api_client: k8s.ApiClient,
    policy: str,
) -> None:
    agent = agent_factory(make_config(synced, names, tmp_path, policy=policy))
    assert agent.sync_all("dev")[0].outcome == "applied"
    scale(api_client, names["dev"], 5, "kubectl-scale")

    dev = agent.sync_all("dev")[0]
    assert dev.ok, dev.error
    if policy == "report":
        assert dev.outcome == "up-to-date" and dev.repaired is None
        drift = drift_of(dev)
        ((field),) = drift.fields
        assert (drift.state, field.path, field.desired, field.live) == (CHANGED, "/spec/replicas", 2, 5)
        assert (field.manager, field.expected) == ("kubectl-scale", False)
        assert live_replicas(api_client, names["dev"]) == 5, "report must not revert"
    else:
        assert dev.repaired is not None and dev.repaired.ok
        assert [o.key.name for o in dev.repaired.objects if o.action.value == "configured"] == ["api"]
        assert dev.drift == ()
        assert live_replicas(api_client, names["dev"]) == 2, "enforce reverts unexpected drift"


def test_the_same_change_by_an_expected_manager_is_expected_and_never_taken_back(
    synced: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> None:
    # enforce, to show that even self-heal leaves an expected controller's fields alone
    agent = agent_factory(make_config(synced, names, tmp_path, policy="enforce"))
    assert agent.sync_all("dev")[0].ok
    scale(api_client, names["dev"], 7, "kube-controller-manager")  # what the HPA does

    dev = agent.sync_all("dev")[0]
    drift = drift_of(dev)
    assert drift.expected and drift.fields[0].manager == "kube-controller-manager"
    assert dev.repaired is None

    # a new commit changes the image: it lands, and spec.replicas stays the HPA's
    synced.write("environments/dev/app.yaml", [configmap("settings", {"mode": "dev"}), deployment("api", "api:2", 2)])
    synced.commit("new image")
    dev = agent.sync_all("dev")[0]
    assert dev.outcome == "applied", dev.error
    live = k8s.AppsV1Api(api_client).read_namespaced_deployment("api", names["dev"])
    assert live.spec.template.spec.containers[0].image == "api:2"
    assert live.spec.replicas == 7


def test_a_deleted_object_is_reported_missing(
    synced: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> None:
    agent = agent_factory(make_config(synced, names, tmp_path))
    assert agent.sync_all("dev")[0].ok
    k8s.CoreV1Api(api_client).delete_namespaced_config_map("settings", names["dev"])
    (report,) = agent.drift_all("dev")
    assert [(d.key.name, d.state, d.expected) for d in report.drift] == [("settings", MISSING, False)]


def test_a_commit_is_applied_once_and_a_restart_keeps_the_ledger(
    synced: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> None:
    config = make_config(synced, names, tmp_path)
    first = agent_factory(config)
    assert [r.outcome for r in first.sync_all()] == ["applied", "applied"]
    scale(api_client, names["dev"], 4, "kubectl-scale")
    assert first.sync_all("dev")[0].outcome == "up-to-date"

    # a new agent (as after a restart) reads the ledger from the cluster: nothing re-applied
    restarted = agent_factory(config)
    again = restarted.sync_all()
    assert [r.outcome for r in again] == ["up-to-date", "up-to-date"]
    counts = restarted.clusters.kube(config.environments[0]).requests
    assert counts["apply"] == 0 and counts["apply-dry-run"] == 0
    assert live_replicas(api_client, names["dev"]) == 4
    ledger_cm = k8s.CoreV1Api(api_client).read_namespaced_config_map("ledger-dev", names["agent"])
    assert ledger_cm.data["entries"].count('"result": "applied"') == 1


def test_a_commit_that_changes_only_dev_is_a_no_op_for_prod_and_spares_unrelated_edits(
    synced: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> None:
    agent = agent_factory(make_config(synced, names, tmp_path))
    assert all(r.ok for r in agent.sync_all())
    scale(api_client, names["dev"], 3, "kubectl-scale")  # a person's edit during an incident

    synced.write("environments/dev/app.yaml", [configmap("settings", {"mode": "dev2"}), deployment("api", replicas=2)])
    synced.commit("dev settings only")
    dev, prod = agent.sync_all()
    assert dev.outcome == "applied" and dev.sync is not None
    assert {o.key.name: o.action.value for o in dev.sync.objects if o.key.kind != "Namespace"} == {
        "settings": "configured",
        "api": "unchanged",
    }
    assert live_replicas(api_client, names["dev"]) == 3, "an unrelated edit is not undone by someone else's release"
    assert prod.outcome == "reached", "prod's objects did not change: recorded, nothing written"


def test_manual_policy_waits_for_an_explicit_sync(
    synced: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> None:
    agent = agent_factory(make_config(synced, names, tmp_path, policy="manual"))
    assert agent.sync_all("dev")[0].outcome == "waiting"
    assert agent.sync_all("dev", explicit=True)[0].outcome == "applied"
    assert k8s.CoreV1Api(api_client).read_namespaced_config_map("settings", names["dev"]).data == {"mode": "dev"}


@pytest.mark.parametrize("count", [40, 200])
def test_a_no_change_pass_costs_requests_per_kind_not_per_object(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, count: int
) -> None:
    per_kind = count // 2
    objects = [configmap(f"cm-{i}", {"i": str(i)}) for i in range(per_kind)]
    objects += [{**configmap(f"sa-{i}", {}), "kind": "ServiceAccount", "data": None} for i in range(per_kind)]
    for o in objects[per_kind:]:
        del o["data"]
    repo.write("environments/dev/app.yaml", objects)
    repo.write("environments/prod/app.yaml", [configmap("settings", {"mode": "prod"})])
    repo.commit()
    agent = agent_factory(make_config(repo, names, tmp_path))
    assert agent.sync_all("dev")[0].ok

    client = agent.clusters.kube(agent.config.environments[0])
    client.requests.clear()
    assert agent.sync_all("dev")[0].outcome == "up-to-date"
    total = sum(client.requests.values())
    # discovery (2) + ledger (1) + one labelled list per kind (Namespace, ConfigMap, ServiceAccount)
    assert total <= 8, dict(client.requests)
    assert client.requests["get"] <= 1
