"""The inventory: per environment, which objects the agent applied, kept in the cluster.

Pruning is ``old inventory - new snapshot`` by set difference, never a label query alone: a label
can be copied onto an object by hand, an inventory entry can only be written by the agent.
The inventory lives in a ConfigMap in the agent's namespace so it survives agent restarts and is
readable with ``kubectl get configmap -n gitops-agent inventory-<env> -o yaml``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from gitops_agent.core.prepare import MANAGED_BY, MANAGED_BY_LABEL, STATE_OF_LABEL
from gitops_agent.errors import ClusterError
from gitops_agent.model import KubeObject, ObjectKey

INVENTORY_PREFIX = "inventory-"


@dataclass(frozen=True)
class Inventory:
    commit: str
    keys: frozenset[ObjectKey]


def inventory_name(environment: str) -> str:
    return f"{INVENTORY_PREFIX}{environment}"


def state_configmap(name: str, namespace: str, environment: str, role: str, data: dict[str, str]) -> KubeObject:
    """A ConfigMap holding part of the agent's own state about one environment."""
    labels = {STATE_OF_LABEL: environment, MANAGED_BY_LABEL: MANAGED_BY, "gitops-agent.io/role": role}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": data,
    }


def inventory_configmap(environment: str, namespace: str, inventory: Inventory) -> KubeObject:
    objects = "".join(f"{k.encode()}\n" for k in sorted(inventory.keys))
    data = {"commit": inventory.commit, "objects": objects}
    return state_configmap(inventory_name(environment), namespace, environment, "inventory", data)


def parse_inventory(configmap: KubeObject | None) -> Inventory | None:
    """None when the environment was never applied."""
    if configmap is None:
        return None
    data = configmap.get("data") or {}
    try:
        keys = frozenset(ObjectKey.decode(line) for line in str(data.get("objects", "")).splitlines() if line)
    except ValueError as exc:
        name = (configmap.get("metadata") or {}).get("name")
        raise ClusterError(
            f"ConfigMap/{name}: the inventory is corrupt ({exc}); nothing will be pruned until it is fixed"
        ) from exc
    return Inventory(commit=str(data.get("commit", "")), keys=keys)


def stale_keys(old: Inventory | None, new_keys: Iterable[ObjectKey]) -> frozenset[ObjectKey]:
    """What the previous apply wrote that the new snapshot no longer has."""
    if old is None:
        return frozenset()
    return old.keys - frozenset(new_keys)
