"""cluster.read against the real API server: as few reads as answer the question."""

from __future__ import annotations

import copy

import pytest
from kubernetes import client as k8s

from gitops_agent.adapters.kube import ResourceInfo
from gitops_agent.cluster import ClusterApi, SyncOptions, sync
from gitops_agent.cluster.prepare import prepare_snapshot
from gitops_agent.cluster.read import GET_RATHER_THAN_LIST, LiveReads, read_labelled, read_live
from gitops_agent.core.prepare import ENV_LABEL
from gitops_agent.model import KubeObject, ObjectKey
from tests.integration.cluster.support import desired
from tests.support.builders import configmap, deployment

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


class Watched:
    """A watch cache's answer (``cluster.watch.WatchCache.watched``), as a test sets it."""

    def __init__(self) -> None:
        self.objects: list[KubeObject] = []

    def watched(self, env: str, info: ResourceInfo, namespace: str) -> list[KubeObject] | None:
        return [copy.deepcopy(o) for o in self.objects] if env == "dev" and info.kind == "Deployment" else None


def test_a_rollout_reads_a_watch_copy_only_once_it_has_seen_what_the_api_server_answered(
    api: ClusterApi, options: SyncOptions
) -> None:
    key = ObjectKey("apps", "Deployment", options.namespace, "api")
    assert sync(api, desired(deployment("api", image="registry.example/api:1.0")), commit="c1", options=options).ok
    before_apply = LiveReads(api).get_many([key])[key]  # the copy a watch holds until the next event arrives
    assert sync(api, desired(deployment("api", image="registry.example/api:2.0")), commit="c2", options=options).ok
    watched = Watched()
    watched.objects = [before_apply]
    reads = LiveReads(api, watched, "dev")

    def read() -> tuple[KubeObject, int]:
        sent = sum(api.kube.requests.values())
        obj = reads.get_many([key])[key]
        return obj, sum(api.kube.requests.values()) - sent

    first, sent = read()
    assert sent == 1, "the first look asks the API server"
    assert first["metadata"]["generation"] == before_apply["metadata"]["generation"] + 1
    stale, sent = read()
    assert sent == 1, "the watch has not delivered the apply: its copy (the old spec, rolled out) is not read"
    assert stale["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/api:2.0"
    caught_up = copy.deepcopy(first)
    caught_up["metadata"].setdefault("annotations", {})["test/from"] = "watch"
    watched.objects = [caught_up]
    seen, sent = read()
    assert sent == 0, "once the watch has caught up, no request"
    assert seen["metadata"]["annotations"]["test/from"] == "watch"
    watched.objects = []
    missing, sent = read()
    assert sent == 1 and missing["metadata"]["name"] == "api", "a copy missing from the watch is read"
