"""core.sync_rules: what a sync refuses before writing, and which objects need no apply."""

from __future__ import annotations

import pytest

from gitops_agent.core.inventory import Inventory
from gitops_agent.core.prepare import ENV_LABEL, MANIFEST_HASH_ANNOTATION, PreparedObject
from gitops_agent.core.sync_rules import new_namespaces, refuse_empty, refuse_foreign, settled, waits_for_first_stage
from gitops_agent.errors import ValidationError
from gitops_agent.model import KubeObject, ObjectKey

CFG = ObjectKey("", "ConfigMap", "shop", "cfg")
NS = ObjectKey("", "Namespace", "", "shop")


def prepared(
    key: ObjectKey, data: dict[str, str] | None = None, digest: str = "h1", *, inventoried: bool = True
) -> PreparedObject:
    manifest: KubeObject = {
        "apiVersion": "v1",
        "kind": key.kind,
        "metadata": {"name": key.name, "labels": {ENV_LABEL: "dev"}},
    }
    if key.namespace:
        manifest["metadata"]["namespace"] = key.namespace
    if data is not None:
        manifest["data"] = data
    return PreparedObject(key, manifest, "app.yaml", digest, inventoried=inventoried)


def live(key: ObjectKey, data: dict[str, str], *, digest: str = "", env: str = "dev") -> KubeObject:
    meta: dict[str, object] = {"name": key.name, "namespace": key.namespace, "labels": {ENV_LABEL: env}}
    if digest:
        meta["annotations"] = {MANIFEST_HASH_ANNOTATION: digest}
    return {"apiVersion": "v1", "kind": key.kind, "metadata": meta, "data": data}


def test_an_empty_snapshot_may_not_prune_everything_unless_allowed() -> None:
    inventory = Inventory("c1", frozenset({CFG}))
    own_namespace = [prepared(NS, inventoried=False)]
    with pytest.raises(ValidationError, match="renders zero objects; refusing to prune all 1 objects"):
        refuse_empty("dev", own_namespace, inventory, allow_empty=False)
    refuse_empty("dev", own_namespace, inventory, allow_empty=True)
    refuse_empty("dev", own_namespace, None, allow_empty=False)  # nothing to lose
    refuse_empty("dev", [prepared(CFG)], inventory, allow_empty=False)


def test_an_object_another_environment_manages_is_refused() -> None:
    refuse_foreign("dev", [prepared(CFG)], {CFG: live(CFG, {}, env="dev")})
    refuse_foreign("dev", [prepared(CFG)], {})
    with pytest.raises(ValidationError, match="already managed by environment 'prod'"):
        refuse_foreign("dev", [prepared(CFG)], {CFG: live(CFG, {}, env="prod")})


def test_settled_objects_are_not_applied() -> None:
    p = prepared(CFG, {"a": "1"}, "h1")
    assert not settled(p, None)
    assert settled(p, live(CFG, {"a": "changed by hand"}, digest="h1")), "same intent: drift alone is not re-applied"
    assert not settled(p, live(CFG, {"a": "changed by hand"}, digest="h1"), force=True)
    assert not settled(p, live(CFG, {"a": "1"}, digest="h1", env="prod")), "taking it over is a write"
    assert settled(p, live(CFG, {"a": "1"}, digest="old")), "live already covers the manifest"
    assert not settled(p, live(CFG, {"a": "2"}, digest="old"))
    assert settled(p, live(CFG, {"a": "2"}, digest="old"), only=frozenset()), "not among the objects asked for"
    assert not settled(p, live(CFG, {"a": "2"}, digest="h1"), only=frozenset({CFG})), "repair ignores the hash"


def test_what_waits_for_stage_one() -> None:
    fresh = new_namespaces([prepared(NS), prepared(CFG)], {})
    assert fresh == {"shop"}
    assert new_namespaces([prepared(NS)], {NS: {"metadata": {"name": "shop"}}}) == set()
    assert waits_for_first_stage(prepared(CFG), kind_served=True, new_namespaces=fresh)
    assert not waits_for_first_stage(prepared(CFG), kind_served=True, new_namespaces=set())
    assert waits_for_first_stage(
        prepared(ObjectKey("x.io", "Widget", "other", "w")), kind_served=False, new_namespaces=set()
    )
    assert not waits_for_first_stage(prepared(NS), kind_served=True, new_namespaces=fresh)
