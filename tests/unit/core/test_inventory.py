"""core.inventory: created or adopted per object, 50,000 objects across shards of under 1 MiB,
inventories of older agents still read, and the merge of two writers' inventories."""

from __future__ import annotations

import functools
import hashlib
import json

import pytest

from gitops_agent.core.inventory import (
    INLINE_BYTES,
    Inventory,
    MissingShard,
    ShardRef,
    adoption,
    inventory_configmap,
    inventory_objects,
    merge_inventories,
    parse_inventory,
    shard_names,
)
from gitops_agent.errors import ClusterError
from gitops_agent.model import KubeObject, ObjectKey

MiB = 1024 * 1024


def key(name: str, namespace: str = "shop") -> ObjectKey:
    return ObjectKey("", "ConfigMap", namespace, name)


@functools.cache
def many(count: int, name_length: int = 0) -> frozenset[ObjectKey]:
    """``count`` keys as a large environment has them (several kinds and namespaces), or with
    hash-like names of ``name_length`` characters (the worst case for compression)."""
    kinds = [("", "ConfigMap"), ("apps", "Deployment"), ("", "Service"), ("", "ServiceAccount"), ("batch", "CronJob")]
    keys = set()
    for i in range(count):
        group, kind = kinds[i % len(kinds)]
        digest = hashlib.sha512(str(i).encode()).hexdigest()
        name = (digest * 2)[:name_length] if name_length else f"checkout-worker-{i:05d}"
        keys.add(ObjectKey(group, kind, f"team-{i % 40}-prod", name))
    return frozenset(keys)


def stored(inventory: Inventory, reuse: tuple[ShardRef, ...] = (), token: str = "a1b2c3") -> list[KubeObject]:
    """The ConfigMaps as the API server would hold them: the index first."""
    objects = inventory_objects("prod", "gitops-agent", inventory, token=token, reuse=reuse)
    return [objects.index, *objects.new_shards]


def read_back(configmaps: list[KubeObject]) -> Inventory | None:
    by_name = {c["metadata"]["name"]: c for c in configmaps}
    return parse_inventory(configmaps[0], {name: by_name.get(name) for name in shard_names(configmaps[0])})


def test_50000_keys_round_trip_in_shards_each_under_1_mib() -> None:
    keys = many(50_000)
    adopted = frozenset(sorted(keys, key=ObjectKey.encode)[::7])
    inventory = Inventory("c" * 40, keys, adopted)
    configmaps = stored(inventory)

    back = read_back(configmaps)
    assert back == inventory and back is not None and back.adopted == adopted and len(back.keys) == 50_000
    assert all(len(json.dumps(c)) < MiB for c in configmaps)
    index = configmaps[0]
    assert index["metadata"]["name"] == "inventory-prod" and "objects" not in index["data"]
    assert index["data"]["count"] == "50000" and index["data"]["commit"] == "c" * 40
    shards = configmaps[1:]
    assert [s["metadata"]["name"] for s in shards] == list(shard_names(index)) == ["inventory-prod-a1b2c3-0"]
    assert shards[0]["metadata"]["labels"]["gitops-agent.io/state-of"] == "prod"
    assert set(shards[0]["binaryData"]) == {"objects.gz", "adopted.gz"}


def test_50000_long_random_names_need_several_shards_each_under_1_mib() -> None:
    keys = many(50_000, name_length=120)
    configmaps = stored(Inventory("c1", keys))
    assert len(configmaps) > 3
    assert all(len(json.dumps(c)) < MiB for c in configmaps)
    assert read_back(configmaps) == Inventory("c1", keys)


def test_a_small_inventory_is_one_plain_configmap_that_older_agents_read() -> None:
    a, b = key("a"), key("b")
    configmaps = stored(Inventory("c1", frozenset({a, b}), frozenset({b})))
    assert len(configmaps) == 1
    assert configmaps[0]["data"] == {
        "commit": "c1",
        "objects": "|ConfigMap|shop|a\n|ConfigMap|shop|b\n",
        "adopted": "|ConfigMap|shop|b\n",
    }
    assert "binaryData" not in configmaps[0]
    assert configmaps[0] == inventory_configmap(
        "prod", "gitops-agent", Inventory("c1", frozenset({a, b}), frozenset({b}))
    )


def test_the_layout_switches_to_shards_only_beyond_the_inline_size() -> None:
    per_key = len(key("x" * 30).encode()) + 1
    fits = frozenset(key(f"{i:030d}") for i in range(INLINE_BYTES // per_key))
    assert len(stored(Inventory("c", fits))) == 1
    assert len(stored(Inventory("c", fits | {key("z" * 30)}))) == 2


def test_an_inventory_written_before_adoption_was_recorded_is_all_created() -> None:
    old = {
        "metadata": {"name": "inventory-dev", "resourceVersion": "42"},
        "data": {"commit": "c0", "objects": "apps|Deployment|shop|api\n"},
    }
    inventory = parse_inventory(old)
    assert inventory == Inventory("c0", frozenset({ObjectKey("apps", "Deployment", "shop", "api")}))
    assert inventory is not None and inventory.adopted == frozenset() and inventory.created == inventory.keys
    assert inventory.stored.version == "42" and inventory.stored.shards == ()
    assert parse_inventory(None) is None


def test_what_was_read_is_not_part_of_the_value() -> None:
    stored_one = parse_inventory(
        {"metadata": {"name": "inventory-dev", "resourceVersion": "7"}, "data": {"commit": "c", "objects": ""}}
    )
    assert stored_one == Inventory("c", frozenset())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"objects": "not-a-key\n"}, "inventory is corrupt"),
        ({"objects": "|ConfigMap|s|a\n", "adopted": "|ConfigMap|s|b\n"}, "inventory is corrupt"),
        ({"shards": "not json"}, "list of shards is corrupt"),
        ({"shards": json.dumps([{"name": "ledger-dev", "digest": "d", "objects": 1}])}, "foreign shard"),
    ],
    ids=["bad-line", "adopted-not-inventoried", "bad-index", "foreign-shard"],
)
def test_a_corrupt_inventory_stops_pruning_with_a_clear_error(data: dict[str, str], message: str) -> None:
    with pytest.raises(ClusterError, match=message):
        configmap = {"metadata": {"name": "inventory-dev"}, "data": data}
        parse_inventory(configmap, {name: None for name in shard_names(configmap)})


def test_a_shard_missing_or_not_what_the_index_says_is_told_apart_to_read_again() -> None:
    configmaps = stored(Inventory("c", many(20_000)))
    index, shard = configmaps[0], configmaps[1]
    with pytest.raises(MissingShard, match="is missing"):
        parse_inventory(index, {})
    other = stored(Inventory("c", many(20_001)))[1]
    with pytest.raises(MissingShard, match="not what the index says"):
        parse_inventory(index, {shard["metadata"]["name"]: other})


def test_a_shard_with_the_same_content_is_named_again_not_rewritten() -> None:
    keys = many(20_000, name_length=120)
    first = inventory_objects("prod", "gitops-agent", Inventory("c1", keys), token="aaaaaa")
    assert len(first.shards) > 1
    # a new commit with the same objects: every shard is the same, only the index changes
    again = inventory_objects("prod", "gitops-agent", Inventory("c2", keys), token="bbbbbb", reuse=first.shards)
    assert again.new_shards == () and again.shards == first.shards
    by_name = {c["metadata"]["name"]: c for c in first.new_shards}
    assert parse_inventory(again.index, by_name) == Inventory("c2", keys)
    # one object more: new shards under the new token, read back with whatever old shard is named again
    extra = ObjectKey("", "ConfigMap", "team-0-prod", "z" * 120)
    more = inventory_objects(
        "prod", "gitops-agent", Inventory("c3", keys | {extra}), token="cccccc", reuse=first.shards
    )
    assert more.new_shards and all(c["metadata"]["name"].startswith("inventory-prod-cccccc-") for c in more.new_shards)
    by_name.update((c["metadata"]["name"], c) for c in more.new_shards)
    assert parse_inventory(more.index, by_name) == Inventory("c3", keys | {extra})


def test_adoption_new_objects_that_existed_are_adopted_inventoried_ones_keep_their_flag() -> None:
    kept_adopted, kept_created, found, made = key("kept-adopted"), key("kept-created"), key("found"), key("made")
    old = Inventory("c1", frozenset({kept_adopted, kept_created}), frozenset({kept_adopted}))
    existed = {kept_adopted, kept_created, found}
    assert adoption(old, [kept_adopted, kept_created, found, made], existed) == {kept_adopted, found}
    assert adoption(None, [found, made], existed) == {found}


def inv(*names: str, adopted: tuple[str, ...] = (), commit: str = "c") -> Inventory:
    return Inventory(commit, frozenset(key(n) for n in names), frozenset(key(n) for n in adopted))


def test_a_merge_keeps_what_another_writer_added_and_what_we_dropped_stays_dropped() -> None:
    ancestor = inv("a", "b", "pruned")
    ours = inv("a", "b", "mine", commit="ours")  # we pruned "pruned", added "mine"
    theirs = inv("a", "b", "pruned", "their", adopted=("their",), commit="theirs")
    merged = merge_inventories(ancestor, ours, theirs)
    assert merged == inv("a", "b", "mine", "their", adopted=("their",), commit="ours")


def test_a_merge_keeps_ours_where_they_dropped_something_we_still_track() -> None:
    merged = merge_inventories(inv("a", "b"), inv("a", "b", "c"), inv("a"))
    assert merged.keys == inv("a", "b", "c").keys  # tracking too much is safe; losing track is not


def test_an_object_both_writers_added_is_adopted_only_if_both_say_so() -> None:
    ancestor = inv()
    assert merge_inventories(ancestor, inv("x", adopted=("x",)), inv("x")).adopted == frozenset()
    assert merge_inventories(ancestor, inv("x"), inv("x", adopted=("x",))).adopted == frozenset()
    assert merge_inventories(ancestor, inv("x", adopted=("x",)), inv("x", adopted=("x",))).adopted == {key("x")}
    # an object of the ancestor keeps our flag
    assert merge_inventories(inv("x", adopted=("x",)), inv("x", adopted=("x",)), inv("x")).adopted == {key("x")}


def test_a_merge_with_nothing_stored_is_ours_written_anew() -> None:
    merged = merge_inventories(inv("a"), inv("a", "b"), None)
    assert merged == inv("a", "b") and merged.stored.version == ""


def test_adopted_keys_must_be_inventoried() -> None:
    with pytest.raises(ValueError, match="adopted keys outside"):
        Inventory("c", frozenset(), frozenset({key("a")}))
