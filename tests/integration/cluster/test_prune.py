"""cluster.prune against the real API server: only what is still ours goes, and a delete the
server refuses stays in the inventory to be retried, never stopping the other deletes."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
from kubernetes import client as k8s

from gitops_agent.cluster import ClusterApi, SyncOptions, sync
from gitops_agent.cluster.prune import plan_prunes, prune
from gitops_agent.cluster.state import StateStore
from gitops_agent.core.prepare import ENV_LABEL, PRUNE_ANNOTATION
from gitops_agent.core.scope import Scope
from gitops_agent.model import Action, ObjectKey
from tests.integration.cluster.conftest import Deny
from tests.integration.cluster.support import desired, dry_run_delete
from tests.support.builders import configmap, widget_crd
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration


def cm_key(namespace: str, name: str) -> ObjectKey:
    return ObjectKey("", "ConfigMap", namespace, name)


def test_only_objects_still_labelled_ours_and_unprotected_are_deleted(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient
) -> None:
    ns = names["dev"]
    first = sync(
        api,
        desired(*(configmap(n, {"a": "1"}) for n in ("plain", "kept", "moved", "gone"))),
        commit="c1",
        options=options,
    )
    assert first.ok, first.error
    core = k8s.CoreV1Api(api_client)
    core.patch_namespaced_config_map("kept", ns, {"metadata": {"annotations": {PRUNE_ANNOTATION: "disabled"}}})
    core.patch_namespaced_config_map("moved", ns, {"metadata": {"labels": {ENV_LABEL: "prod"}}})
    core.delete_namespaced_config_map("gone", ns)

    stale = [cm_key(ns, n) for n in ("plain", "kept", "moved", "gone")]
    planned = {p.key.name: (p.action, p.message) for p in plan_prunes(api, stale, options)}
    assert planned["plain"] == (Action.PRUNED, "")
    assert planned["kept"][0] is Action.SKIPPED and "protected" in planned["kept"][1]
    assert planned["moved"][0] is Action.SKIPPED and "'prod'" in planned["moved"][1]
    assert planned["gone"] == (Action.SKIPPED, "already gone")

    done = {p.key.name: p.action for p in prune(api, stale, options)}
    assert done == {"plain": Action.PRUNED, "kept": Action.SKIPPED, "moved": Action.SKIPPED, "gone": Action.SKIPPED}
    left = {cm.metadata.name for cm in core.list_namespaced_config_map(ns).items}
    assert {"kept", "moved"} <= left and not {"plain", "gone"} & left


def test_pruning_off_deletes_nothing(api: ClusterApi, options: SyncOptions, names: dict[str, str]) -> None:
    assert sync(api, desired(configmap("a", {})), commit="c1", options=options).ok
    from dataclasses import replace

    plans = prune(api, [cm_key(names["dev"], "a")], replace(options, prune=False))
    assert [(p.action, p.message) for p in plans] == [(Action.SKIPPED, "pruning is off")]
    assert api.get(cm_key(names["dev"], "a")) is not None


def test_a_refused_delete_survives_in_the_inventory_and_is_retried_next_pass(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient, deny: Deny
) -> None:
    ns = names["dev"]
    assert sync(
        api, desired(configmap("keep", {}), configmap("stuck", {}), configmap("free", {})), commit="c1", options=options
    ).ok
    store = StateStore(api, namespace=names["agent"], field_manager=options.field_manager)

    with deny(ns, "stuck", "DELETE", lambda: dry_run_delete(api_client, ns, "stuck")):
        second = sync(api, desired(configmap("keep", {})), commit="c2", options=options)
        assert not second.ok and second.reason == "PruneFailed"
        actions = {o.key.name: o.action for o in second.objects if o.key.kind == "ConfigMap"}
        assert actions == {"keep": Action.UNCHANGED, "stuck": Action.FAILED, "free": Action.PRUNED}
        assert "test policy refuses stuck" in second.error
        inventory = store.read_inventory("dev")
        assert inventory is not None and inventory.commit == "c2"
        assert {k.name for k in inventory.keys} == {"keep", "stuck"}  # the survivor is kept, to retry

    third = sync(api, desired(configmap("keep", {})), commit="c2", options=options)
    assert third.ok, third.error
    assert [(o.key.name, o.action) for o in third.objects if o.action is Action.PRUNED] == [("stuck", Action.PRUNED)]
    inventory = store.read_inventory("dev")
    assert inventory is not None and {k.name for k in inventory.keys} == {"keep"}


def pvc(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def test_an_adopted_namespace_holding_a_claim_is_released_not_deleted_when_git_drops_it(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient
) -> None:
    core = k8s.CoreV1Api(api_client)
    payments = f"pay-{names['dev']}"
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=payments)))
    core.create_namespaced_persistent_volume_claim(payments, pvc("data"))
    scoped = replace(options, scope=Scope(namespaces=(names["dev"], payments)))
    labelled = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": payments, "labels": {"team": "pay"}}}
    first = sync(api, desired(configmap("a", {}), labelled), commit="c1", options=scoped)
    assert first.ok, first.error
    store = StateStore(api, namespace=names["agent"], field_manager=options.field_manager)
    inventory = store.read_inventory("dev")
    assert inventory is not None and ObjectKey("", "Namespace", "", payments) in inventory.adopted

    second = sync(api, desired(configmap("a", {})), commit="c2", options=scoped)
    assert second.ok, second.error
    [released] = [o for o in second.objects if o.key.name == payments]
    assert released.action is Action.RELEASED and "existed before the agent applied it" in released.message
    ns = core.read_namespace(payments)
    assert ns.metadata.deletion_timestamp is None and ns.metadata.labels.get("team") == "pay"
    assert ENV_LABEL not in ns.metadata.labels, "the agent's marks are taken off"
    assert core.read_namespaced_persistent_volume_claim("data", payments).metadata.deletion_timestamp is None
    core.delete_namespace(payments)


def test_a_crd_the_agent_created_is_released_not_deleted_unless_the_environment_allows_it(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient
) -> None:
    group = f"p{names['agent'].split('-')[1]}.example.com"
    ext = k8s.ApiextensionsV1Api(api_client)
    scoped = replace(options, scope=Scope(namespaces=(names["dev"],), cluster_kinds=("CustomResourceDefinition",)))
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {}}
    try:
        assert sync(api, desired(widget_crd(group), widget), commit="c1", options=scoped).ok
        removed = sync(api, desired(configmap("a", {})), commit="c2", options=scoped)
        actions = {o.key.kind: o.action for o in removed.objects}
        assert actions["CustomResourceDefinition"] is Action.RELEASED and actions["Widget"] is Action.PRUNED
        assert ext.read_custom_resource_definition(f"widgets.{group}").metadata.deletion_timestamp is None
        # released, it is no longer the agent's: taken back into git it counts as adopted, and stays
        assert sync(api, desired(widget_crd(group)), commit="c3", options=scoped).ok
        allowed = replace(scoped, prune_allow=("CustomResourceDefinition",))
        kept = sync(api, desired(configmap("a", {})), commit="c4", options=allowed)
        assert {o.key.kind: o.action for o in kept.objects}["CustomResourceDefinition"] is Action.RELEASED
        # opted in, a CRD the agent created itself is deleted
        assert sync(api, desired(widget_crd(f"new.{group}")), commit="c5", options=allowed).ok
        gone = sync(api, desired(configmap("a", {})), commit="c6", options=allowed)
        assert {o.key.kind: o.action for o in gone.objects}["CustomResourceDefinition"] is Action.PRUNED
        assert wait_until(
            lambda: not [c for c in ext.list_custom_resource_definition().items if c.spec.group == f"new.{group}"]
        )
    finally:
        with contextlib.suppress(k8s.ApiException):
            ext.delete_custom_resource_definition(f"widgets.{group}")


def test_an_object_recreated_by_someone_between_the_read_and_the_delete_is_left_alone(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient
) -> None:
    ns = names["dev"]
    assert sync(api, desired(configmap("a", {}), configmap("b", {})), commit="c1", options=options).ok
    core = k8s.CoreV1Api(api_client)
    old_uid = core.read_namespaced_config_map("b", ns).metadata.uid

    def recreate_meanwhile(key: ObjectKey) -> str | None:  # called after the read, before the delete
        core.delete_namespaced_config_map("b", ns)
        labels = {ENV_LABEL: "dev"}
        core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="b", labels=labels)))
        return None

    [plan] = prune(api, [ObjectKey("", "ConfigMap", ns, "b")], options, claimed_by=recreate_meanwhile)
    assert plan.action is Action.SKIPPED and "recreated by someone else" in plan.message
    assert core.read_namespaced_config_map("b", ns).metadata.uid != old_uid, "the new object is still there"
