"""Watches when the API server goes away, and when their resourceVersion is compacted away, on a
control plane of its own (stopping or compacting the shared one would upset other tests)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from gitops_agent.cluster.watch import WatchCache, WatchOptions
from gitops_agent.composition import build_agent
from gitops_agent.core.live_cache import gone
from tests.controlplane.harness import ControlPlane
from tests.integration.reconcile.test_watch import Passes, drifted, kubectl_edit, running, synced
from tests.support.builders import ConfigRepo, configmap, deployment, make_config

pytestmark = pytest.mark.integration

#: short watches and backoff, so a test sees a re-watch and a re-list within seconds
QUICK = WatchOptions(watch_timeout_s=2, backoff_s=0.2, max_backoff_s=1.0)


@pytest.fixture(scope="module")
def own_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with ControlPlane(tmp_path_factory.mktemp("watch-plane")) as plane:
        yield plane


@pytest.fixture
def own_names(own_plane: ControlPlane) -> dict[str, str]:
    suffix = str(time.monotonic_ns())[-6:]
    return {"dev": f"wdev-{suffix}", "prod": f"wprod-{suffix}", "agent": f"wagent-{suffix}"}


def apps_api(plane: ControlPlane) -> k8s.AppsV1Api:
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(plane.kubeconfig), client_configuration=configuration)
    return k8s.AppsV1Api(k8s.ApiClient(configuration))


def etcd(plane: ControlPlane, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """etcd's own v3 HTTP gateway (the real store's compaction, nothing simulated)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{plane.ports['etcd']}{path}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def compact(plane: ControlPlane) -> int:
    revision = int(etcd(plane, "/v3/kv/range", {"key": "AA=="})["header"]["revision"])
    etcd(plane, "/v3/kv/compaction", {"revision": revision, "physical": True})
    return revision


def wait_synced(watches: WatchCache) -> None:
    deadline = time.monotonic() + 30
    while not watches.synced("dev"):
        assert time.monotonic() < deadline, "the watches never came back"
        time.sleep(0.1)


@pytest.fixture
def app(repo: ConfigRepo) -> ConfigRepo:
    repo.write("environments/dev/app.yaml", [configmap("settings", {"v": "1"}), deployment("api", replicas=1)])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"v": "1"})])
    repo.commit("first")
    return repo


def test_watches_resume_after_an_api_server_restart_and_see_a_later_edit(
    own_plane: ControlPlane, own_names: dict[str, str], app: ConfigRepo, tmp_path: Path
) -> None:
    passes = Passes()
    config = make_config(app, own_names, tmp_path, interval="1h")
    agent = build_agent(config, kubeconfig=str(own_plane.kubeconfig), listeners=[passes])
    try:
        for _, watches in running(agent, QUICK):
            synced(watches, passes, "dev")
            own_plane.stop_apiserver()
            deadline = time.monotonic() + 15
            while watches.synced("dev"):  # a broken watch is not read from
                assert time.monotonic() < deadline, "the watches never noticed the outage"
                time.sleep(0.1)
            own_plane.start_apiserver_again()
            wait_synced(watches)
            edited = kubectl_edit(apps_api(own_plane), own_names["dev"], 3)
            seen, _ = passes.wait(drifted("dev"), after=edited, timeout=10)
            assert seen - edited < 2.0
    finally:
        agent.close()


def test_a_watch_from_a_compacted_resource_version_gets_410_and_relists(
    own_plane: ControlPlane, own_names: dict[str, str], app: ConfigRepo, tmp_path: Path
) -> None:
    passes = Passes()
    config = make_config(app, own_names, tmp_path, interval="1h")
    agent = build_agent(config, kubeconfig=str(own_plane.kubeconfig), listeners=[passes])
    try:
        for _, watches in running(agent, QUICK):
            synced(watches, passes, "dev")
            old = min(w.store.resource_version for w in watches._watchers.values())
            kubectl_edit(apps_api(own_plane), own_names["dev"], 1)  # moves history on past ``old``
            compact(own_plane)
            # the API server's watch cache still holds ``old``; started again, it holds only what
            # is newer, and etcd no longer has ``old``
            own_plane.stop_apiserver()
            own_plane.start_apiserver_again()
            api = agent.clusters.api(config.environments[0])
            events = api.kube.watch(
                api.resource("apps", "Deployment"), namespace=own_names["dev"], label_selector="x",
                resource_version=old, timeout_s=5,
            )  # fmt: skip
            kind, status = next(iter(events))
            assert (kind, gone(status)) == ("ERROR", True), status
            wait_synced(watches)  # after the restart, listed again from the new history
            relists = agent.clusters.request_counts().get("list-watch", 0)
            for watcher in list(watches._watchers.values()):  # as if they had watched from there
                watcher.store.resource_version = old
            deadline = time.monotonic() + 10
            while agent.clusters.request_counts().get("list-watch", 0) == relists:
                assert time.monotonic() < deadline, "no re-list after 410 Gone"
                time.sleep(0.05)
            edited = kubectl_edit(apps_api(own_plane), own_names["dev"], 4)
            passes.wait(drifted("dev"), after=edited, timeout=10)
    finally:
        agent.close()
