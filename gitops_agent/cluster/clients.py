"""One Kubernetes client per kubeconfig context, made on first use and shared by every pass."""

from __future__ import annotations

import threading

from gitops_agent.adapters.kube import KubeClient
from gitops_agent.cluster.api import ClusterApi
from gitops_agent.config import EnvironmentConfig


class Clusters:
    def __init__(self, *, kubeconfig: str | None = None, impersonate: str | None = None) -> None:
        self._kubeconfig = kubeconfig
        self._impersonate = impersonate
        self._clients: dict[str | None, KubeClient] = {}
        self._lock = threading.Lock()

    def kube(self, env: EnvironmentConfig) -> KubeClient:
        with self._lock:
            if env.context not in self._clients:
                self._clients[env.context] = KubeClient.connect(
                    kubeconfig=self._kubeconfig, context=env.context, impersonate=self._impersonate
                )
            return self._clients[env.context]

    def api(self, env: EnvironmentConfig) -> ClusterApi:
        """A fresh view for one pass: discovery is read anew, so kinds added since are known."""
        return ClusterApi(self.kube(env))

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
        for client in clients:
            client.close()
