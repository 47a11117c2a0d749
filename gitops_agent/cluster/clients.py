"""One Kubernetes client per kubeconfig context and identity, made on first use and shared by every
pass: the agent's own (its state: inventories, ledgers, locks) and, for an environment with a
``service_account``, one acting as that ServiceAccount for everything the environment reads and
writes, so the cluster's RBAC bounds it."""

from __future__ import annotations

import threading
import time

from gitops_agent.adapters.kube import Discovery, KubeClient
from gitops_agent.cluster.api import ClusterApi
from gitops_agent.config import EnvironmentConfig

#: a discovery older than this is read again (a version the server prefers now, a kind removed)
DISCOVERY_TTL_S = 600.0


class Clusters:
    def __init__(self, *, kubeconfig: str | None = None, impersonate: str | None = None) -> None:
        self._kubeconfig = kubeconfig
        self._impersonate = impersonate
        self._clients: dict[tuple[str | None, str | None], KubeClient] = {}
        self._discovered: dict[int, tuple[float, Discovery]] = {}  # by client: when read, what
        self._reading: dict[int, threading.Lock] = {}  # by client: one discovery read at a time
        self._lock = threading.Lock()

    def kube(self, env: EnvironmentConfig) -> KubeClient:
        """The client the environment's objects are read and written with."""
        if env.impersonate:
            return self._client(env.context, env.impersonate, for_environment=True)
        return self._client(env.context, self._impersonate)

    def agent_kube(self, env: EnvironmentConfig) -> KubeClient:
        """The agent's own client in the environment's cluster."""
        return self._client(env.context, self._impersonate)

    def home_kube(self) -> KubeClient:
        """The agent's own client in the current context's cluster, where the leader's Lease and
        chat's memory live (made on first use)."""
        return self._client(None, self._impersonate)

    def api(self, env: EnvironmentConfig) -> ClusterApi:
        """A view for one pass over the cluster's last discovery (younger than ``DISCOVERY_TTL_S``),
        read again when a kind or version is missing from it, so kinds added since are known and a
        pass with nothing new sends no discovery request."""
        return self._api(self.kube(env))

    def agent_api(self, env: EnvironmentConfig) -> ClusterApi:
        return self._api(self.agent_kube(env))

    def _api(self, kube: KubeClient) -> ClusterApi:
        with self._lock:
            known = self._discovered.get(id(kube))
        fresh = known is not None and time.monotonic() - known[0] < DISCOVERY_TTL_S
        return ClusterApi(kube, known[1] if known and fresh else None, discover=lambda: self._discover(kube))

    def _discover(self, kube: KubeClient) -> Discovery:
        """A discovery read for a pass: the passes that need one at once (every environment at
        start-up, all of them after the TTL) share a single read, one that started after they asked."""
        asked = time.monotonic()
        with self._lock:
            reading = self._reading.setdefault(id(kube), threading.Lock())
        with reading:
            with self._lock:
                known = self._discovered.get(id(kube))
            if known is not None and known[0] >= asked:
                return known[1]
            started = time.monotonic()
            discovery = kube.discover()
            with self._lock:
                self._discovered[id(kube)] = (started, discovery)
            return discovery

    def _client(self, context: str | None, identity: str | None, *, for_environment: bool = False) -> KubeClient:
        with self._lock:
            if (context, identity) not in self._clients:
                self._clients[(context, identity)] = KubeClient.connect(
                    kubeconfig=self._kubeconfig, context=context, impersonate=identity, for_environment=for_environment
                )
            return self._clients[(context, identity)]

    def request_counts(self) -> dict[str, int]:
        """Kubernetes API requests sent so far, by verb, over every cluster."""
        total: dict[str, int] = {}
        with self._lock:
            clients = list(self._clients.values())
        for client in clients:
            for verb, n in client.requests.items():
                total[verb] = total.get(verb, 0) + n
        return total

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
            self._discovered, self._reading = {}, {}
        for client in clients:
            client.close()
