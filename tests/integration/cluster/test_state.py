"""cluster.state and the inventory's place in a sync: written only when it changes, and a sync
whose inventory write fails says so and loses nothing (the next sync records what was applied)."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from gitops_agent.cluster import ClusterApi, SyncOptions, sync
from gitops_agent.cluster.state import StateStore
from gitops_agent.core.inventory import Inventory, inventory_name
from gitops_agent.core.ledger import APPLIED, Ledger, LedgerEntry
from gitops_agent.model import Action, ObjectKey
from tests.integration.cluster.conftest import Deny
from tests.integration.cluster.support import desired, dry_run_create
from tests.support.builders import configmap

pytestmark = pytest.mark.integration


def test_inventory_and_ledger_round_trip_and_an_unchanged_inventory_is_not_written(
    api: ClusterApi, names: dict[str, str]
) -> None:
    store = StateStore(api, namespace=names["agent"], field_manager="gitops-agent")
    assert store.read_inventory("dev") is None and store.read_ledger("dev") == Ledger()
    inventory = Inventory(commit="c1", keys=frozenset({ObjectKey("", "ConfigMap", "x", "a")}))
    store.write_inventory("dev", None, inventory)  # also creates the agent's namespace
    assert store.read_inventory("dev") == inventory
    writes = len(api.kube.writes)
    store.write_inventory("dev", inventory, inventory)
    assert len(api.kube.writes) == writes
    ledger = Ledger().record(LedgerEntry("c1", "2026-12-02T00:00:00Z", "0.1.0", APPLIED, "1 created"))
    store.write_ledger("dev", ledger)
    assert store.read_ledger("dev") == ledger


def test_a_refused_inventory_write_fails_the_sync_and_the_next_sync_records_what_was_applied(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient, deny: Deny
) -> None:
    agent_ns, name = names["agent"], inventory_name("dev")
    store = StateStore(api, namespace=agent_ns, field_manager=options.field_manager)
    k8s.CoreV1Api(api_client).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=agent_ns)))

    with deny(agent_ns, name, "CREATE", lambda: dry_run_create(api_client, agent_ns, name)):
        failed = sync(api, desired(configmap("a", {"k": "v"})), commit="c1", options=options)
        assert not failed.ok
        assert "test policy refuses" in failed.error and name in failed.error
        assert api.get(ObjectKey("", "ConfigMap", names["dev"], "a")) is not None  # applied before
        assert store.read_inventory("dev") is None

    again = sync(api, desired(configmap("a", {"k": "v"})), commit="c1", options=options)
    assert again.ok, again.error
    assert {o.key.name: o.action for o in again.objects if o.key.kind == "ConfigMap"} == {"a": Action.UNCHANGED}
    inventory = store.read_inventory("dev")
    assert inventory is not None and {k.name for k in inventory.keys} == {"a"}
    # ... so a later commit that removes it can prune it
    pruned = sync(api, desired(configmap("b", {})), commit="c2", options=options)
    assert ("a", Action.PRUNED) in [(o.key.name, o.action) for o in pruned.objects]
