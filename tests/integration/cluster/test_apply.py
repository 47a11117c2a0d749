"""cluster.apply and cluster.wait: stages, CRDs waited on before their custom resources, and an
apply refused half way leaves what it wrote in the inventory, with nothing pruned."""

from __future__ import annotations

from dataclasses import replace

import pytest
from kubernetes import client as k8s

from gitops_agent.cluster import ClusterApi, SyncOptions, sync
from gitops_agent.cluster.state import StateStore
from gitops_agent.core.scope import Scope
from gitops_agent.model import Action, ObjectKey
from tests.integration.cluster.conftest import Deny
from tests.integration.cluster.support import desired, dry_run_create
from tests.support.builders import configmap, widget_crd

pytestmark = pytest.mark.integration


def test_a_crd_and_its_custom_resources_in_a_new_namespace_apply_in_one_sync(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient
) -> None:
    group = f"w{names['agent'].split('-')[1]}.example.com"
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}}
    try:
        scope = Scope(namespaces=(names["dev"],), cluster_kinds=("CustomResourceDefinition",))
        result = sync(api, desired(widget_crd(group), widget), commit="c1", options=replace(options, scope=scope))
        assert result.ok, result.error
        actions = {str(o.key): o.action for o in result.objects}
        assert actions[f"Widget/{names['dev']}/w"] is Action.CREATED
        assert actions[f"CustomResourceDefinition/widgets.{group}"] is Action.CREATED
        assert api.get(ObjectKey(group, "Widget", names["dev"], "w")) is not None
        assert set(result.applied_keys) >= {ObjectKey(group, "Widget", names["dev"], "w")}
    finally:
        k8s.ApiextensionsV1Api(api_client).delete_custom_resource_definition(f"widgets.{group}")


def test_a_dry_run_plans_a_new_namespace_s_objects_without_writing_anything(
    api: ClusterApi, options: SyncOptions, names: dict[str, str]
) -> None:
    writes = len(api.kube.writes)
    result = sync(api, desired(configmap("a", {"k": "v"})), commit="c1", options=options, dry_run=True)
    assert result.ok and result.dry_run, result.error
    by_key = {str(o.key): o for o in result.objects}
    planned = by_key[f"ConfigMap/{names['dev']}/a"]
    assert planned.action is Action.CREATED and "once its namespace exists" in planned.message
    assert "+  k: v" in planned.diff
    assert len(api.kube.writes) == writes


def test_an_apply_refused_half_way_keeps_what_it_wrote_in_the_inventory_and_prunes_nothing(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient, deny: Deny
) -> None:
    ns = names["dev"]
    assert sync(api, desired(configmap("old", {})), commit="c1", options=options).ok
    store = StateStore(api, namespace=names["agent"], field_manager=options.field_manager)
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner"}}

    with deny(ns, "refused", "CREATE", lambda: dry_run_create(api_client, ns, "refused")):
        # ServiceAccounts go before ConfigMaps: the SA is written, then the ConfigMap is refused
        # (by the dry-run already: the policy refuses dry-runs too, so nothing at all is written)
        result = sync(api, desired(sa, configmap("refused", {})), commit="c2", options=options)
    assert not result.ok and "test policy refuses refused" in result.error
    assert api.get(ObjectKey("", "ConfigMap", ns, "old")) is not None, "nothing is pruned after a failed apply"
    inventory = store.read_inventory("dev")
    assert inventory is not None and inventory.commit == "c1"
    assert {k.name for k in inventory.keys} == {"old"}
    assert api.get(ObjectKey("", "ServiceAccount", ns, "runner")) is None, (
        "a snapshot that fails its dry-run writes nothing"
    )


def test_an_apply_refused_after_its_dry_run_keeps_what_it_wrote_in_the_inventory_and_prunes_nothing(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient, deny: Deny
) -> None:
    ns = names["dev"]
    assert sync(api, desired(configmap("old", {})), commit="c1", options=options).ok
    store = StateStore(api, namespace=names["agent"], field_manager=options.field_manager)
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner"}}
    core = k8s.CoreV1Api(api_client)

    def probe() -> None:  # a real create: while the policy is not in force yet it succeeds; undo it
        core.create_namespaced_config_map(ns, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="late-probe")))
        core.delete_namespaced_config_map("late-probe", ns)

    with deny(ns, "late", "CREATE", probe, allow_dry_run=True):
        # ServiceAccounts go before ConfigMaps: the SA is written, then the ConfigMap is refused
        result = sync(api, desired(sa, configmap("late", {})), commit="c2", options=options)
    assert not result.ok and "apply stopped at ConfigMap" in result.error, result.error
    assert "test policy refuses late" in result.error
    assert api.get(ObjectKey("", "ServiceAccount", ns, "runner")) is not None
    assert api.get(ObjectKey("", "ConfigMap", ns, "old")) is not None, "nothing is pruned after a failed apply"
    inventory = store.read_inventory("dev")
    assert inventory is not None and inventory.commit == "c1"
    # recorded before the first write: the whole snapshot, so a later commit can prune the SA
    assert {k.name for k in inventory.keys} == {"old", "runner", "late"}
