"""cluster.state and the inventory's place in a sync, against the real API server: 50,000 objects
across shards, writes conditional on the resourceVersion read (a concurrent writer's change is
merged, never lost), the union recorded before the first write of a pass and the exact set after,
and each object recorded as created or adopted."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import Any

import pytest
from kubernetes import client as k8s

from gitops_agent.adapters.kube import KubeClient
from gitops_agent.cluster import ClusterApi, SyncOptions, sync
from gitops_agent.cluster.state import StateStore
from gitops_agent.cluster.wait import wait_for_crds
from gitops_agent.core.inventory import Inventory, inventory_name
from gitops_agent.core.ledger import APPLIED, FAILED, Ledger, LedgerEntry
from gitops_agent.core.prepare import PreparedObject
from gitops_agent.model import Action, ObjectKey
from tests.integration.cluster.conftest import Deny
from tests.integration.cluster.support import desired, dry_run_create
from tests.support.builders import configmap

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


@pytest.fixture
def other_api(kubeconfig: str) -> Iterator[ClusterApi]:
    """A second client: another agent process writing the same records."""
    client = KubeClient.connect(kubeconfig=kubeconfig)
    yield ClusterApi(client)
    client.close()


def store_of(api: ClusterApi, names: dict[str, str]) -> StateStore:
    return StateStore(api, namespace=names["agent"], field_manager="gitops-agent")


def state_configmaps(core: k8s.CoreV1Api, namespace: str, environment: str = "dev") -> dict[str, Any]:
    """The agent's records of one environment as the API server holds them, by name."""
    found = core.list_namespaced_config_map(namespace, label_selector=f"gitops-agent.io/state-of={environment}")
    return {cm.metadata.name: cm for cm in found.items}


def size(cm: Any) -> int:
    """Bytes of a ConfigMap's content as the API server counts them against its 1 MiB."""
    return sum(len(k) + len(v) for k, v in (cm.data or {}).items()) + sum(
        len(k) + len(v) * 3 // 4 for k, v in (cm.binary_data or {}).items()
    )


def inventory_writes(api: ClusterApi, names: dict[str, str], since: int = 0) -> list[tuple[str, str]]:
    """The agent's writes to the environment's inventory ConfigMaps (verb, name), failed ones too."""
    return [
        (verb, key.name)
        for verb, key in list(api.kube.writes)[since:]
        if key.namespace == names["agent"] and key.name.startswith(inventory_name("dev"))
    ]


def cm(namespace: str, name: str) -> ObjectKey:
    return ObjectKey("", "ConfigMap", namespace, name)


def many(namespace: str, count: int) -> frozenset[ObjectKey]:
    return frozenset(cm(namespace, f"checkout-worker-{i:05d}") for i in range(count))


# --- the store --------------------------------------------------------------------------------


def test_inventory_and_ledger_round_trip_and_an_unchanged_inventory_is_not_written(
    api: ClusterApi, names: dict[str, str], api_client: k8s.ApiClient
) -> None:
    store = store_of(api, names)
    assert store.read_inventory("dev") is None and store.read_ledger("dev") == Ledger()
    inventory = Inventory(commit="c1", keys=frozenset({cm("x", "a"), cm("x", "b")}), adopted=frozenset({cm("x", "b")}))
    written = store.write_inventory("dev", None, inventory)  # also creates the agent's namespace
    assert store.read_inventory("dev") == inventory == written
    stored = k8s.CoreV1Api(api_client).read_namespaced_config_map(inventory_name("dev"), names["agent"])
    assert stored.data == {"commit": "c1", "objects": "|ConfigMap|x|a\n|ConfigMap|x|b\n", "adopted": "|ConfigMap|x|b\n"}
    assert written.stored.version == stored.metadata.resource_version
    writes = len(api.kube.writes)
    store.write_inventory("dev", written, inventory)
    assert len(api.kube.writes) == writes
    ledger = Ledger().record(LedgerEntry("c1", "2026-12-02T00:00:00Z", "0.1.0", APPLIED, "1 created"))
    store.write_ledger("dev", ledger)
    assert store.read_ledger("dev") == ledger


def test_50000_objects_are_written_in_shards_under_1_mib_and_read_back(
    api: ClusterApi, names: dict[str, str], api_client: k8s.ApiClient
) -> None:
    core, agent_ns = k8s.CoreV1Api(api_client), names["agent"]
    store = store_of(api, names)
    keys = many(names["dev"], 50_000)
    adopted = frozenset(sorted(keys, key=ObjectKey.encode)[::100])
    first = store.write_inventory("dev", None, Inventory("c1", keys, adopted))

    stored = state_configmaps(core, agent_ns)
    assert len(stored) == 2, sorted(stored)  # the index and one shard: 50,000 keys compress well
    assert all(size(c) < MiB for c in stored.values())
    index = stored[inventory_name("dev")]
    assert index.data["count"] == "50000" and "objects" not in index.data
    assert [s["name"] for s in json.loads(index.data["shards"])] == [n for n in stored if n != inventory_name("dev")]
    read = store_of(api, names).read_inventory("dev")
    assert read == Inventory("c1", keys, adopted) and read is not None and read.adopted == adopted

    # the next commit with the same objects: only the index changes, its shard is named again
    since = len(api.kube.writes)
    second = store.write_inventory("dev", read, Inventory("c2", keys, adopted))
    assert inventory_writes(api, names, since) == [("update", inventory_name("dev"))]
    assert set(state_configmaps(core, agent_ns)) == set(stored)
    assert second.stored.shards == first.stored.shards

    # back to a few objects: inline again, and the shard the index no longer names is deleted
    since = len(api.kube.writes)
    store.write_inventory("dev", second, Inventory("c3", frozenset({cm(names["dev"], "a")})))
    shard = next(n for n in stored if n != inventory_name("dev"))
    assert inventory_writes(api, names, since) == [("update", inventory_name("dev")), ("delete", shard)]
    assert set(state_configmaps(core, agent_ns)) == {inventory_name("dev")}
    assert store.read_inventory("dev") == Inventory("c3", frozenset({cm(names["dev"], "a")}))


def test_an_inventory_written_by_an_older_agent_is_read_as_all_created_and_replaced_conditionally(
    api: ClusterApi, names: dict[str, str], api_client: k8s.ApiClient
) -> None:
    core = k8s.CoreV1Api(api_client)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=names["agent"])))
    old = k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name=inventory_name("dev")), data={"commit": "c0", "objects": "|ConfigMap|x|a\n"}
    )
    core.create_namespaced_config_map(names["agent"], old)
    read = store_of(api, names).read_inventory("dev")
    assert read == Inventory("c0", frozenset({cm("x", "a")})) and read is not None and read.adopted == frozenset()
    store_of(api, names).write_inventory("dev", read, Inventory("c1", frozenset({cm("x", "a"), cm("x", "b")})))
    assert api.kube.requests["create"] == 0 and api.kube.requests["update"] == 1


def test_a_concurrent_inventory_write_is_merged_not_lost(
    api: ClusterApi, names: dict[str, str], api_client: k8s.ApiClient, other_api: ClusterApi
) -> None:
    ours, theirs = store_of(api, names), store_of(other_api, names)
    base = ours.write_inventory("dev", None, Inventory("c1", frozenset({cm("x", "kept"), cm("x", "pruned")})))
    # another writer changes it between our read and our write
    other = theirs.read_inventory("dev")
    assert other is not None
    theirs.write_inventory(
        "dev", other, Inventory("c1", other.keys | {cm("x", "theirs")}, frozenset({cm("x", "theirs")}))
    )
    between = k8s.CoreV1Api(api_client).read_namespaced_config_map(inventory_name("dev"), names["agent"])

    since = len(api.kube.writes)
    written = ours.write_inventory("dev", base, Inventory("c2", frozenset({cm("x", "kept"), cm("x", "mine")})))

    expected = Inventory(
        "c2", frozenset({cm("x", "kept"), cm("x", "mine"), cm("x", "theirs")}), frozenset({cm("x", "theirs")})
    )
    assert written == expected and store_of(api, names).read_inventory("dev") == expected
    # one replace refused (409: not at the resourceVersion we read), one against theirs
    assert inventory_writes(api, names, since) == [("update", inventory_name("dev"))] * 2
    after = k8s.CoreV1Api(api_client).read_namespaced_config_map(inventory_name("dev"), names["agent"])
    assert int(after.metadata.resource_version) > int(between.metadata.resource_version)


def test_a_concurrent_write_of_a_sharded_inventory_is_merged_and_leaves_no_stray_shard(
    api: ClusterApi, names: dict[str, str], api_client: k8s.ApiClient, other_api: ClusterApi
) -> None:
    core = k8s.CoreV1Api(api_client)
    ours, theirs = store_of(api, names), store_of(other_api, names)
    keys = many(names["dev"], 30_000)
    base = ours.write_inventory("dev", None, Inventory("c1", keys))
    other = theirs.read_inventory("dev")
    assert other is not None
    theirs.write_inventory("dev", other, Inventory("c1", keys | {cm("x", "theirs")}))

    written = ours.write_inventory("dev", base, Inventory("c2", keys | {cm("x", "mine")}))

    assert written.keys == keys | {cm("x", "theirs"), cm("x", "mine")}
    assert store_of(api, names).read_inventory("dev") == written
    stored = state_configmaps(core, names["agent"])
    named = {s["name"] for s in json.loads(stored[inventory_name("dev")].data["shards"])}
    assert set(stored) == {inventory_name("dev"), *named}, "the refused attempt's shards and the replaced ones are gone"


def test_a_concurrent_ledger_write_is_merged_our_entry_appended(
    api: ClusterApi, names: dict[str, str], other_api: ClusterApi
) -> None:
    ours, theirs = store_of(api, names), store_of(other_api, names)
    ours.write_ledger("dev", Ledger().record(LedgerEntry("c1", "t1", "0.1", APPLIED)))
    read = ours.read_ledger("dev")
    # `rollback --now` from a laptop records its entry while our pass runs
    rollback = LedgerEntry("c0", "t2", "0.1", APPLIED, rolled_back_from="c1")
    theirs.write_ledger("dev", theirs.read_ledger("dev").record(rollback))

    written = ours.write_ledger("dev", read.record(LedgerEntry("c2", "t3", "0.1", FAILED, message="boom")))

    commits = [e.commit for e in store_of(api, names).read_ledger("dev").entries]
    assert commits == ["c1", "c0", "c2"] == [e.commit for e in written.entries]
    assert api.kube.requests["update"] == 2  # the refused replace, then ours on top of theirs


# --- the inventory in a sync ------------------------------------------------------------------


def test_each_object_is_recorded_as_created_or_adopted_and_keeps_its_flag(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient
) -> None:
    ns = names["dev"]
    assert sync(api, desired(configmap("first", {})), commit="c1", options=options).ok  # creates the namespace
    k8s.CoreV1Api(api_client).create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="found")))

    result = sync(
        api, desired(*(configmap(n, {"k": "v"}) for n in ("first", "found", "made"))), commit="c2", options=options
    )
    assert result.ok, result.error
    inventory = store_of(api, names).read_inventory("dev")
    assert inventory is not None and inventory.commit == "c2"
    assert inventory.keys == {cm(ns, "first"), cm(ns, "found"), cm(ns, "made")}
    assert inventory.adopted == {cm(ns, "found")}, "only the one that existed before the agent applied it"

    # a later pass keeps the flags, though every one of them exists by now
    assert sync(
        api, desired(*(configmap(n, {"k": "w"}) for n in ("first", "found", "made"))), commit="c3", options=options
    ).ok
    again = store_of(api, names).read_inventory("dev")
    assert again is not None and again.commit == "c3" and again.adopted == {cm(ns, "found")}


def test_a_pass_that_changes_nothing_writes_nothing_and_a_dry_run_records_nothing(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient
) -> None:
    assert sync(api, desired(configmap("a", {})), commit="c1", options=options).ok
    core = k8s.CoreV1Api(api_client)
    before = core.read_namespaced_config_map(inventory_name("dev"), names["agent"]).metadata.resource_version
    writes = len(api.kube.writes)
    assert sync(api, desired(configmap("a", {})), commit="c1", options=options).ok
    assert sync(api, desired(configmap("a", {}), configmap("b", {})), commit="c2", options=options, dry_run=True).ok
    assert len(api.kube.writes) == writes
    assert core.read_namespaced_config_map(inventory_name("dev"), names["agent"]).metadata.resource_version == before


def test_the_union_is_recorded_before_the_first_write_and_stays_when_the_apply_fails_half_way(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient, deny: Deny
) -> None:
    ns, store = names["dev"], store_of(api, names)
    assert sync(api, desired(configmap("old", {})), commit="c1", options=options).ok
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner"}}
    seen: list[Inventory | None] = []

    def look_then_wait(api: ClusterApi, crds: Sequence[PreparedObject]) -> None:  # between the stages
        seen.append(store.read_inventory("dev"))
        wait_for_crds(api, crds)

    core = k8s.CoreV1Api(api_client)

    def probe() -> None:  # a real create: while the policy is not in force yet it succeeds; undo it
        core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="late-probe")))
        core.delete_namespaced_config_map("late-probe", ns)

    since = len(api.kube.writes)
    with deny(ns, "late", "CREATE", probe, allow_dry_run=True):
        result = sync(api, desired(sa, configmap("late", {})), commit="c2", options=options, wait=look_then_wait)
    assert not result.ok and "test policy refuses late" in result.error, result.error

    union = {cm(ns, "old"), ObjectKey("", "ServiceAccount", ns, "runner"), cm(ns, "late")}
    assert seen and seen[0] is not None and (seen[0].commit, seen[0].keys) == ("c1", union), "before any object"
    inventory = store.read_inventory("dev")
    assert inventory is not None and (inventory.commit, inventory.keys) == ("c1", union)
    assert inventory_writes(api, names, since) == [("update", inventory_name("dev"))], "recorded once, before"
    assert api.get(ObjectKey("", "ServiceAccount", ns, "runner")) is not None

    # a later commit without them prunes what the failed pass wrote
    third = sync(api, desired(configmap("old", {})), commit="c3", options=options)
    assert third.ok, third.error
    assert api.get(ObjectKey("", "ServiceAccount", ns, "runner")) is None
    final = store.read_inventory("dev")
    assert final is not None and (final.commit, final.keys) == ("c3", {cm(ns, "old")})


def test_a_refused_inventory_record_fails_the_pass_before_any_object_is_written(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient, deny: Deny
) -> None:
    agent_ns, name = names["agent"], inventory_name("dev")
    store = store_of(api, names)
    k8s.CoreV1Api(api_client).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=agent_ns)))

    with deny(agent_ns, name, "CREATE", lambda: dry_run_create(api_client, agent_ns, name)):
        failed = sync(api, desired(configmap("a", {"k": "v"})), commit="c1", options=options)
        assert not failed.ok
        assert "test policy refuses" in failed.error and name in failed.error
        assert [w for w in api.kube.writes if w[1].namespace != agent_ns] == [], "no object of the snapshot"
        assert api.get(cm(names["dev"], "a")) is None
        assert store.read_inventory("dev") is None

    again = sync(api, desired(configmap("a", {"k": "v"})), commit="c1", options=options)
    assert again.ok, again.error
    assert {o.key.name: o.action for o in again.objects if o.key.kind == "ConfigMap"} == {"a": Action.CREATED}
    inventory = store.read_inventory("dev")
    assert inventory is not None and {k.name for k in inventory.keys} == {"a"}
    pruned = sync(api, desired(configmap("b", {})), commit="c2", options=options)
    assert ("a", Action.PRUNED) in [(o.key.name, o.action) for o in pruned.objects]


def test_when_the_inventory_write_after_apply_fails_a_later_commit_still_prunes_what_that_pass_wrote(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient, deny: Deny
) -> None:
    """Issue 13: make the inventory write fail, then commit the removal of an object from that pass."""
    ns, agent_ns, name = names["dev"], names["agent"], inventory_name("dev")
    store, core = store_of(api, names), k8s.CoreV1Api(api_client)
    assert sync(api, desired(configmap("a", {})), commit="c1", options=options).ok

    def probe() -> object:
        body = {"metadata": {"labels": {"probe": "1"}}}
        return core.patch_namespaced_config_map(name, agent_ns, body, dry_run="All")

    with ExitStack() as refusing:

        def refuse_then_wait(api: ClusterApi, crds: Sequence[PreparedObject]) -> None:
            # mid-pass, after the union was recorded: every later update of the inventory is refused
            refusing.enter_context(deny(agent_ns, name, "UPDATE", probe))
            wait_for_crds(api, crds)

        failed = sync(
            api, desired(configmap("a", {}), configmap("b", {})), commit="c2", options=options, wait=refuse_then_wait
        )
        assert not failed.ok and "test policy refuses" in failed.error and name in failed.error, failed.error
        assert api.get(cm(ns, "b")) is not None, "b was applied; only the inventory's last write failed"
    recorded = store.read_inventory("dev")
    assert recorded is not None and (recorded.commit, recorded.keys) == ("c1", {cm(ns, "a"), cm(ns, "b")})

    removed = sync(api, desired(configmap("a", {})), commit="c3", options=options)
    assert removed.ok, removed.error
    assert ("b", Action.PRUNED) in [(o.key.name, o.action) for o in removed.objects]
    assert api.get(cm(ns, "b")) is None
    final = store.read_inventory("dev")
    assert final is not None and (final.commit, final.keys) == ("c3", {cm(ns, "a")})
