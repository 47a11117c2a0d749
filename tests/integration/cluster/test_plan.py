"""cluster.plan against the real API server: what an apply would change, decided locally where
the manifest's hash or the live object answers, else by a server-side dry-run; never a write."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from kubernetes import client as k8s

from gitops_agent.cluster import ClusterApi, SyncOptions, sync
from gitops_agent.cluster.plan import plan_sync
from gitops_agent.cluster.prepare import prepare_snapshot
from gitops_agent.cluster.read import read_live
from gitops_agent.core.drift import DriftPolicy, ExpectedManager
from gitops_agent.model import Action
from tests.integration.cluster.support import desired
from tests.support.builders import configmap, deployment

pytestmark = pytest.mark.integration


def test_each_object_is_created_configured_or_unchanged_and_nothing_is_written(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient
) -> None:
    assert sync(
        api, desired(configmap("same", {"a": "1"}), configmap("edited", {"a": "1"})), commit="c1", options=options
    ).ok
    k8s.CoreV1Api(api_client).patch_namespaced_config_map("edited", names["dev"], {"data": {"a": "by hand"}})
    snapshot = desired(configmap("same", {"a": "1"}), configmap("edited", {"a": "1"}), configmap("new", {"b": "2"}))
    prepared = prepare_snapshot(api, snapshot, options)
    writes = len(api.kube.writes)
    dry_runs = api.kube.requests["apply-dry-run"]

    plan = plan_sync(api, prepared, read_live(api, prepared), options)
    by_name = {k.name: p for k, p in plan.plans.items() if k.kind == "ConfigMap"}
    assert by_name["same"].action is Action.UNCHANGED  # same hash: decided without the server
    assert by_name["edited"].action is Action.UNCHANGED  # same intent: drift alone is not re-applied
    assert by_name["new"].action is Action.CREATED
    assert re.search(r"^\+  b: ['\"]?2['\"]?$", by_name["new"].diff, re.M), by_name["new"].diff
    assert plan.deferred == ()
    assert api.kube.requests["apply-dry-run"] - dry_runs == 1, "only the new object needed the server"
    assert len(api.kube.writes) == writes

    forced = plan_sync(api, prepared, read_live(api, prepared), replace(options, force=True))
    edited = next(p for k, p in forced.plans.items() if k.name == "edited")
    assert edited.action is Action.CONFIGURED and edited.paths == ("/data/a",)


def test_a_new_namespace_s_objects_are_deferred_until_stage_one(api: ClusterApi, options: SyncOptions) -> None:
    prepared = prepare_snapshot(api, desired(configmap("a", {})), options)
    plan = plan_sync(api, prepared, read_live(api, prepared), options)
    assert [p.key.name for p in plan.deferred] == ["a"]
    assert [p.key.kind for p in plan.to_apply(first_stage=True)] == ["Namespace"]


def test_fields_an_expected_manager_owns_are_left_out_of_the_apply(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient
) -> None:
    policy = DriftPolicy(
        field_manager="gitops-agent", expected_managers=(ExpectedManager("hpa-test", ("/spec/replicas",)),)
    )
    options = replace(options, drift_policy=policy)
    assert sync(api, desired(deployment("web", replicas=2)), commit="c1", options=options).ok
    apps = k8s.AppsV1Api(api_client)
    apps.patch_namespaced_deployment_scale("web", names["dev"], {"spec": {"replicas": 5}}, field_manager="hpa-test")

    changed = deployment("web", image="registry.example/api:2.0", replicas=2)  # a new release
    prepared = prepare_snapshot(api, desired(changed), options)
    plan = plan_sync(api, prepared, read_live(api, prepared), options)
    web = next(p for p in plan.prepared if p.key.kind == "Deployment")
    assert "replicas" not in web.manifest["spec"]
    assert sync(api, desired(changed), commit="c2", options=options).ok
    live = apps.read_namespaced_deployment("web", names["dev"])
    assert live.spec.replicas == 5, "the release took replicas back from the expected manager"
    assert live.spec.template.spec.containers[0].image == "registry.example/api:2.0"
