"""``Clusters``' discovery: passes that need it at once share one read (N environments starting
together send one, not N), and a pass that asks after a read started gets a read of its own."""

from __future__ import annotations

import threading
import time
from typing import Any

from gitops_agent.adapters.kube import Discovery, ResourceInfo
from gitops_agent.cluster.clients import Clusters
from gitops_agent.config import EnvironmentConfig

CONFIGMAPS = ResourceInfo("", "v1", "ConfigMap", "configmaps", True, frozenset({"get"}))


class SlowDiscovery:
    """A client whose discovery takes a while and counts its reads."""

    def __init__(self) -> None:
        self.reads = 0
        self.lock = threading.Lock()

    def discover(self) -> Discovery:
        with self.lock:
            self.reads += 1
        time.sleep(0.2)
        return Discovery([CONFIGMAPS])


def clusters_with(kube: Any) -> tuple[Clusters, EnvironmentConfig]:
    clusters = Clusters()
    clusters._clients[(None, None)] = kube  # as if connected
    return clusters, EnvironmentConfig(name="dev", path="envs/dev", namespace="dev")


def test_passes_that_need_discovery_at_once_share_one_read() -> None:
    kube = SlowDiscovery()
    clusters, env = clusters_with(kube)
    found: list[ResourceInfo | None] = []

    def one_pass() -> None:
        found.append(clusters.api(env).lookup("", "ConfigMap"))

    threads = [threading.Thread(target=one_pass) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert found == [CONFIGMAPS] * 20
    assert kube.reads <= 2  # one read; at most one more for a pass that asked after it started


def test_a_kind_missing_from_the_kept_discovery_is_read_again() -> None:
    kube = SlowDiscovery()
    clusters, env = clusters_with(kube)
    assert clusters.api(env).lookup("", "ConfigMap") == CONFIGMAPS
    assert kube.reads == 1
    assert clusters.api(env).lookup("", "Secret") is None  # a later view reads again once, then trusts it
    assert kube.reads == 2
