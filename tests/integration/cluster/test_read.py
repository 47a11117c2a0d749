"""cluster.read against the real API server: as few reads as answer the question."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from gitops_agent.cluster import ClusterApi, SyncOptions, sync
from gitops_agent.cluster.prepare import prepare_snapshot
from gitops_agent.cluster.read import GET_RATHER_THAN_LIST, LiveReads, read_labelled, read_live
from gitops_agent.core.prepare import ENV_LABEL
from gitops_agent.model import ObjectKey
from tests.integration.cluster.support import desired
from tests.support.builders import configmap

pytestmark = pytest.mark.integration


def cms(n: int) -> list[dict[str, object]]:
    return [configmap(f"cm-{i}", {"i": str(i)}) for i in range(n)]


def test_a_snapshot_s_live_objects_are_one_list_per_kind_and_namespace_and_a_namespace_by_name(
    api: ClusterApi, options: SyncOptions
) -> None:
    assert sync(api, desired(*cms(5)), commit="c1", options=options).ok
    prepared = prepare_snapshot(api, desired(*cms(6)), options)
    before = dict(api.kube.requests)
    live = read_live(api, prepared)
    assert {k.name for k in live if k.kind == "ConfigMap"} >= {f"cm-{i}" for i in range(5)}
    assert all(k.name != "cm-5" for k in live), "not created yet"
    assert api.kube.requests["list"] - before.get("list", 0) == 1  # the ConfigMaps in dev
    assert api.kube.requests["get"] - before.get("get", 0) == 1  # its Namespace, by name: not every one


def test_labelled_reads_find_extras_and_objects_whose_label_was_removed(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient
) -> None:
    ns = names["dev"]
    assert sync(api, desired(*cms(3)), commit="c1", options=options).ok
    core = k8s.CoreV1Api(api_client)
    core.patch_namespaced_config_map("cm-1", ns, {"metadata": {"labels": {ENV_LABEL: None}}})
    body = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="by-hand", labels={ENV_LABEL: "dev"}))
    core.create_namespaced_config_map(ns, body)
    wanted = [ObjectKey("", "ConfigMap", ns, f"cm-{i}") for i in range(3)]
    live, extra = read_labelled(api, wanted, "dev")
    assert set(live) == set(wanted), "the unlabelled one is fetched by name: drift, not missing"
    assert [o["metadata"]["name"] for o in extra] == ["by-hand"]


def test_a_few_objects_are_got_by_name_and_many_by_one_list(api: ClusterApi, options: SyncOptions) -> None:
    assert sync(api, desired(*cms(GET_RATHER_THAN_LIST + 2)), commit="c1", options=options).ok
    reads = LiveReads(api)
    keys = [ObjectKey("", "ConfigMap", options.namespace, f"cm-{i}") for i in range(GET_RATHER_THAN_LIST + 2)]
    before = dict(api.kube.requests)
    missing = ObjectKey("", "ConfigMap", options.namespace, "nope")
    few = reads.get_many([*keys[: GET_RATHER_THAN_LIST - 1], missing])
    assert set(few) == set(keys[: GET_RATHER_THAN_LIST - 1])
    after_few = dict(api.kube.requests)
    assert after_few["get"] - before.get("get", 0) == GET_RATHER_THAN_LIST
    assert after_few.get("list", 0) == before.get("list", 0)
    many = reads.get_many(keys)
    assert set(many) == set(keys)
    assert api.kube.requests["list"] - after_few.get("list", 0) == 1
