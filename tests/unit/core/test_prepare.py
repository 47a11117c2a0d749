"""Preparing a snapshot for apply: scope, namespaces, labels, hashes, order, prune safety."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_agent.core.inventory import Inventory, inventory_configmap, parse_inventory, stale_keys
from gitops_agent.core.prepare import (
    ENV_LABEL,
    MANIFEST_HASH_ANNOTATION,
    manifest_hash,
    prepare,
    prune_order,
)
from gitops_agent.errors import ClusterError, ValidationError
from gitops_agent.model import DesiredObject, ObjectKey

SCOPES = {("", "ConfigMap"): True, ("", "Namespace"): False, ("apps", "Deployment"): True,
          ("rbac.authorization.k8s.io", "ClusterRole"): False,
          ("apiextensions.k8s.io", "CustomResourceDefinition"): False}  # fmt: skip


def scope_of(group: str, kind: str) -> bool | None:
    return SCOPES.get((group, kind))


def obj(api_version: str, kind: str, name: str, namespace: str | None = None, source: str = "a.yaml") -> DesiredObject:
    manifest: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}
    if namespace:
        manifest["metadata"]["namespace"] = namespace
    return DesiredObject(ObjectKey.of(manifest), manifest, source)


def run(*objects: DesiredObject) -> list[Any]:
    return list(prepare(objects, environment="dev", default_namespace="shop-dev", scope_of=scope_of))


def test_namespaced_objects_get_the_default_namespace_and_cluster_scoped_lose_theirs() -> None:
    cm, role = run(obj("v1", "ConfigMap", "cfg"), obj("rbac.authorization.k8s.io/v1", "ClusterRole", "r", "x"))[::-1]
    assert cm.key == ObjectKey("", "ConfigMap", "shop-dev", "cfg")
    assert "namespace" not in role.manifest["metadata"] and role.key.namespace == ""


def test_labels_and_hash_are_added_without_touching_the_input() -> None:
    original = obj("v1", "ConfigMap", "cfg")
    (p,) = run(original)
    assert p.manifest["metadata"]["labels"][ENV_LABEL] == "dev"
    assert p.manifest["metadata"]["annotations"][MANIFEST_HASH_ANNOTATION] == p.manifest_hash
    assert "labels" not in original.manifest["metadata"]


def test_hash_ignores_key_order_but_not_content() -> None:
    a = {"kind": "ConfigMap", "data": {"x": "1", "y": "2"}}
    b = {"data": {"y": "2", "x": "1"}, "kind": "ConfigMap"}
    assert manifest_hash(a) == manifest_hash(b)
    assert manifest_hash(a) != manifest_hash({"kind": "ConfigMap", "data": {"x": "1"}})


def test_unknown_kind_is_refused_with_the_file_name() -> None:
    with pytest.raises(ValidationError, match=r"b\.yaml: .*unknown kind 'Widget' in apiVersion 'acme\.io/v1'"):
        run(obj("acme.io/v1", "Widget", "w", source="b.yaml"))


def test_kind_defined_by_a_crd_in_the_same_snapshot_is_known() -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.acme.io"},
        "spec": {"group": "acme.io", "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets"}},
    }
    prepared = run(obj("acme.io/v1", "Widget", "w"), DesiredObject(ObjectKey.of(crd), crd, "crd.yaml"))
    assert [p.key.kind for p in prepared] == ["CustomResourceDefinition", "Widget"]
    assert prepared[1].key.namespace == "shop-dev"


def test_duplicates_after_namespace_defaulting_name_both_files() -> None:
    with pytest.raises(ValidationError, match=r"ConfigMap/shop-dev/cfg is defined twice: in a\.yaml and in b\.yaml"):
        run(
            obj("v1", "ConfigMap", "cfg", source="a.yaml"),
            obj("v1", "ConfigMap", "cfg", "shop-dev", "b.yaml"),
        )


def test_apply_order_puts_namespaces_and_crds_first_and_prune_order_reverses() -> None:
    prepared = run(
        obj("apps/v1", "Deployment", "api"),
        obj("v1", "ConfigMap", "cfg"),
        obj("rbac.authorization.k8s.io/v1", "ClusterRole", "r"),
        obj("v1", "Namespace", "shop-dev"),
    )
    kinds = [p.key.kind for p in prepared]
    assert kinds == ["Namespace", "ClusterRole", "ConfigMap", "Deployment"]
    assert [k.kind for k in prune_order(p.key for p in prepared)] == kinds[::-1]


def test_inventory_round_trips_through_a_configmap() -> None:
    keys = frozenset({ObjectKey("apps", "Deployment", "shop", "api"), ObjectKey("", "Namespace", "", "shop")})
    inv = Inventory("abc123", keys)
    assert parse_inventory(inventory_configmap("dev", "gitops-agent", inv)) == inv
    assert parse_inventory(None) is None


def test_corrupt_inventory_stops_pruning_with_a_clear_error() -> None:
    with pytest.raises(ClusterError, match="inventory is corrupt"):
        parse_inventory({"metadata": {"name": "inventory-dev"}, "data": {"objects": "not-a-key\n"}})


def test_stale_keys_are_the_set_difference() -> None:
    a, b = ObjectKey("", "ConfigMap", "s", "a"), ObjectKey("", "ConfigMap", "s", "b")
    assert stale_keys(Inventory("c", frozenset({a, b})), [a]) == {b}
    assert stale_keys(None, [a]) == frozenset()


def test_ledger_knows_the_current_commit_not_just_any_applied_one() -> None:
    from gitops_agent.core.ledger import APPLIED, FAILED, Ledger, LedgerEntry, ledger_configmap, parse_ledger

    def entry(commit: str, result: str) -> LedgerEntry:
        return LedgerEntry(commit=commit, time="t", agent_version="0", result=result)

    ledger = Ledger().record(entry("a", APPLIED)).record(entry("b", APPLIED)).record(entry("c", FAILED))
    assert ledger.is_current("b")
    assert not ledger.is_current("a"), "going back to an older commit is a new snapshot to apply"
    assert not ledger.is_current("c")
    assert parse_ledger(ledger_configmap("dev", "ops", ledger)) == ledger
