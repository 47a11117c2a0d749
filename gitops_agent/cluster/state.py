"""The agent's own records in the cluster, per environment, in the agent's namespace: the
inventory (what the environment applied: prune is "old inventory minus new snapshot") and the ledger
(which commits were applied, when, with what result)."""

from __future__ import annotations

from gitops_agent.cluster.api import ClusterApi
from gitops_agent.core.inventory import Inventory, inventory_configmap, inventory_name, parse_inventory
from gitops_agent.core.ledger import Ledger, ledger_configmap, ledger_name, parse_ledger
from gitops_agent.model import KubeObject


class StateStore:
    def __init__(self, api: ClusterApi, *, namespace: str, field_manager: str) -> None:
        self.api = api
        self.namespace = namespace
        self.field_manager = field_manager

    def read_inventory(self, environment: str) -> Inventory | None:
        return parse_inventory(self._get(inventory_name(environment)))

    def write_inventory(self, environment: str, old: Inventory | None, new: Inventory) -> None:
        """Writes nothing when nothing changed: a pass with no new commit writes nothing."""
        if old != new:
            self._put(inventory_configmap(environment, self.namespace, new))

    def read_ledger(self, environment: str) -> Ledger:
        return parse_ledger(self._get(ledger_name(environment)))

    def write_ledger(self, environment: str, ledger: Ledger) -> None:
        self._put(ledger_configmap(environment, self.namespace, ledger))

    def _get(self, name: str) -> KubeObject | None:
        return self.api.kube.get(self.api.resource("", "ConfigMap"), self.namespace, name)

    def _put(self, configmap: KubeObject) -> None:
        self._ensure_namespace()
        self.api.kube.apply(configmap, self.api.resource("", "ConfigMap"), field_manager=self.field_manager)

    def _ensure_namespace(self) -> None:
        info = self.api.resource("", "Namespace")
        if self.api.kube.get(info, "", self.namespace) is None:
            ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
            self.api.kube.apply(ns, info, field_manager=self.field_manager)
