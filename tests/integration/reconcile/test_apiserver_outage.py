"""The API server goes away in the middle of an apply and comes back.

On a control plane of its own (stopping the shared one would fail other tests): the pass that was
cut off fails with a clear error and prunes nothing, and the next pass converges: every object
exactly once, the inventory complete, the ledger telling what happened.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from gitops_agent.adapters.kube import KubeClient
from gitops_agent.composition import build_agent
from gitops_agent.model import Action
from tests.controlplane.harness import ControlPlane
from tests.support.builders import ConfigRepo, configmap, make_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with ControlPlane(tmp_path_factory.mktemp("outage-plane")) as plane:
        yield plane


def stop_after_applies(kube: KubeClient, plane: ControlPlane, count: int) -> None:
    """Fault injection at an exact moment: after ``count`` real applies the API server stops."""
    original = kube.apply
    seen = {"applies": 0}

    def apply(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if not kwargs.get("dry_run"):
            seen["applies"] += 1
            if seen["applies"] == count:
                # SIGKILL: requests in flight are cut, as in a crash (SIGTERM would let them finish)
                os.kill(plane.processes["kube-apiserver"].pid, signal.SIGKILL)
                plane.stop_apiserver()
        return result

    kube.apply = apply  # type: ignore[method-assign]


def test_an_apply_cut_off_by_an_outage_converges_on_the_next_pass(
    own_plane: ControlPlane, repo: ConfigRepo, tmp_path: Path
) -> None:
    names = {"dev": "outage-dev", "prod": "outage-prod", "agent": "outage-agent"}
    repo.write("environments/dev/app.yaml", [configmap(f"cm-{i}", {"i": str(i)}) for i in range(12)])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"v": "1"})])
    commit = repo.commit()
    config = make_config(repo, names, tmp_path)
    agent = build_agent(config, kubeconfig=str(own_plane.kubeconfig))
    try:
        stop_after_applies(agent.clusters.kube(config.environments[0]), own_plane, 5)
        dev = agent.sync_all("dev")[0]
        assert dev.outcome == "failed"
        assert "cannot reach the Kubernetes API" in dev.error, dev.error

        own_plane.start_apiserver_again()
        again = build_agent(config, kubeconfig=str(own_plane.kubeconfig)).sync_all("dev")[0]
        assert (again.outcome, again.commit) == ("applied", commit), again.error
        assert again.sync is not None and again.sync.changes.count(Action.CREATED) > 0, "the outage cut the apply short"
    finally:
        agent.close()

    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(own_plane.kubeconfig), client_configuration=configuration)
    with k8s.ApiClient(configuration) as api:
        core = k8s.CoreV1Api(api)
        live = sorted(
            cm.metadata.name
            for cm in core.list_namespaced_config_map("outage-dev").items
            if cm.metadata.name.startswith("cm-")
        )
        assert live == sorted(f"cm-{i}" for i in range(12))
        inventory = core.read_namespaced_config_map("inventory-dev", "outage-agent").data["objects"]
        assert sum(1 for line in inventory.splitlines() if "|ConfigMap|outage-dev|cm-" in line) == 12
        ledger = json.loads(core.read_namespaced_config_map("ledger-dev", "outage-agent").data["entries"])
        assert [e["result"] for e in ledger][-1] == "applied"
