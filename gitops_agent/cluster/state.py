"""The agent's own records in the cluster, per environment, in the agent's namespace: the
inventory (what the environment applied: prune is "old inventory minus new snapshot") and the ledger
(which commits were applied, when, with what result).

Every write is conditional on the resourceVersion read (create when none was stored, else replace
naming it), never a blind overwrite: when another writer got there first (409), the record is read
again and ours is merged into it (ledger: our entries appended; inventory: ``merge_inventories``),
then written against the new resourceVersion. The agent's namespace is created when missing."""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace
from typing import Protocol

from gitops_agent.adapters.kube import KubeClient, ResourceInfo
from gitops_agent.cluster.api import ClusterApi
from gitops_agent.core.inventory import (
    Inventory,
    MissingShard,
    Stored,
    inventory_name,
    inventory_objects,
    merge_inventories,
    parse_inventory,
    shard_names,
)
from gitops_agent.core.ledger import Ledger, ledger_configmap, ledger_name, parse_ledger
from gitops_agent.errors import ConflictError, GitOpsError
from gitops_agent.model import KubeObject

log = logging.getLogger(__name__)

#: writes of one record tried before giving up (each after a conflict: another writer at the same time)
WRITE_ATTEMPTS = 5
#: reads of a sharded inventory retried when the index moved on while its shards were read
READ_ATTEMPTS = 5


class CachedLedgers(Protocol):
    """Ledgers kept by a watch (``watch.WatchCache.ledger``): (known, the ConfigMap or None)."""

    def ledger(
        self, env: str, kube: KubeClient, info: ResourceInfo, namespace: str, name: str
    ) -> tuple[bool, KubeObject | None]: ...


class StateStore:
    def __init__(self, api: ClusterApi, *, namespace: str, field_manager: str) -> None:
        self.api = api
        self.namespace = namespace
        self.field_manager = field_manager
        self._namespace_ready = False

    # --- inventory ------------------------------------------------------------------------

    def read_inventory(self, environment: str) -> Inventory | None:
        """The inventory with the resourceVersion it was read at (``Inventory.stored``)."""
        seen = None
        for _ in range(READ_ATTEMPTS):
            index = self._get(inventory_name(environment))
            if index is None:
                return None
            try:
                return parse_inventory(index, {name: self._get(name) for name in shard_names(index)})
            except MissingShard:
                version = (index.get("metadata") or {}).get("resourceVersion")
                if version == seen:  # the index did not move on: a shard is really gone
                    raise
                seen = version
        raise ConflictError(f"ConfigMap/{inventory_name(environment)} kept changing while it was read")

    def write_inventory(self, environment: str, old: Inventory | None, new: Inventory) -> Inventory:
        """Stores ``new`` over ``old`` (as read or last written: its resourceVersion is the write's
        precondition) and returns what is stored now. Writes nothing when nothing changed: a pass
        with no new commit writes nothing. On a conflict, merges with what another writer stored."""
        base, ours = old, new
        for _ in range(WRITE_ATTEMPTS):
            if base is not None and base == ours:
                return base
            try:
                return self._store_inventory(environment, base, ours)
            except ConflictError:
                theirs = self.read_inventory(environment)
                ours = merge_inventories(base, ours, theirs)
                base = theirs
        raise ConflictError(f"ConfigMap/{inventory_name(environment)}: other writers kept changing it; not written")

    def _store_inventory(self, environment: str, base: Inventory | None, ours: Inventory) -> Inventory:
        was = base.stored if base else Stored()
        layout = inventory_objects(environment, self.namespace, ours, token=secrets.token_hex(3), reuse=was.shards)
        created: list[str] = []
        try:
            for shard in layout.new_shards:  # under a fresh name: no reader sees them before the index
                self._write(shard, "")
                created.append(shard["metadata"]["name"])
            index = self._write(layout.index, was.version)
        except GitOpsError:
            self._delete(created)  # named by no index
            raise
        kept = {ref.name for ref in layout.shards}
        self._delete([ref.name for ref in was.shards if ref.name not in kept])  # the index points away now
        return replace(ours, stored=Stored(_version(index), layout.shards))

    # --- ledger ---------------------------------------------------------------------------

    def read_ledger(self, environment: str, cache: CachedLedgers | None = None) -> Ledger:
        """The ledger, from ``cache`` (the daemon's watch) when it is synced, else read live. Only a
        decision re-made under the environment's lock may rest on a cached read."""
        if cache is not None:
            info = self.api.resource("", "ConfigMap")
            known, found = cache.ledger(environment, self.api.kube, info, self.namespace, ledger_name(environment))
            if known:
                return parse_ledger(found)
        return parse_ledger(self._get(ledger_name(environment)))

    def write_ledger(self, environment: str, ledger: Ledger) -> Ledger:
        """Stores ``ledger`` (as read, plus the entries it recorded since) against the resourceVersion
        it was read at; on a conflict, appends its entries to the ledger as re-read. Returns it as stored."""
        for _ in range(WRITE_ATTEMPTS):
            try:
                stored = self._write(ledger_configmap(environment, self.namespace, ledger), ledger.version)
                return replace(ledger, added=(), updated=(), version=_version(stored))
            except ConflictError:
                fresh = self.read_ledger(environment)
                ledger = ledger.rebased(fresh)
                if ledger == fresh:
                    return fresh
        raise ConflictError(f"ConfigMap/{ledger_name(environment)}: other writers kept changing it; not written")

    # --- plumbing -------------------------------------------------------------------------

    def _get(self, name: str) -> KubeObject | None:
        return self.api.kube.get(self.api.resource("", "ConfigMap"), self.namespace, name)

    def _write(self, configmap: KubeObject, version: str) -> KubeObject:
        """Create (``version`` ""), else replace if still at ``version``; ConflictError otherwise."""
        info = self.api.resource("", "ConfigMap")
        if version:
            body = {**configmap, "metadata": {**configmap["metadata"], "resourceVersion": version}}
            return self.api.kube.replace(body, info, field_manager=self.field_manager)
        self._ensure_namespace()
        return self.api.kube.create(configmap, info, field_manager=self.field_manager)

    def _delete(self, names: list[str]) -> None:
        """Shards no index names; one left behind is only clutter, never read."""
        info = self.api.resource("", "ConfigMap")
        for name in names:
            try:
                self.api.kube.delete(info, self.namespace, name)
            except GitOpsError as exc:
                log.warning(
                    "ConfigMap/%s in %s, a stale inventory shard, is left behind: %s", name, self.namespace, exc
                )

    def _ensure_namespace(self) -> None:
        if self._namespace_ready:
            return
        info = self.api.resource("", "Namespace")
        if self.api.kube.get(info, "", self.namespace) is None:
            ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
            self.api.kube.apply(ns, info, field_manager=self.field_manager)
        self._namespace_ready = True


def _version(stored: KubeObject) -> str:
    return str((stored.get("metadata") or {}).get("resourceVersion", ""))
