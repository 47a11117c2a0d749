"""cluster.prune against the real API server: only what is still ours goes, and a delete the
server refuses stays in the inventory to be retried, never stopping the other deletes."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from gitops_agent.cluster import ClusterApi, SyncOptions, sync
from gitops_agent.cluster.prune import plan_prunes, prune
from gitops_agent.cluster.state import StateStore
from gitops_agent.core.prepare import ENV_LABEL, PRUNE_ANNOTATION
from gitops_agent.model import Action, ObjectKey
from tests.integration.cluster.conftest import Deny
from tests.integration.cluster.support import desired, dry_run_delete
from tests.support.builders import configmap

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
