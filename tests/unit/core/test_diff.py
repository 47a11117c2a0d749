"""Pure comparison of desired and live objects."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gitops_agent.core.diff import (
    MASK,
    changed_paths,
    covers,
    mask_secret,
    normalize,
    pointer_get,
    pointer_remove,
    unified_diff,
)

DESIRED: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "api", "namespace": "shop", "labels": {"app": "api"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "api"}},
        "template": {
            "metadata": {"labels": {"app": "api"}},
            "spec": {"containers": [{"name": "app", "image": "api:1.0", "resources": {"limits": {"cpu": "1"}}}]},
        },
    },
}


def live_of(desired: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns for it: defaults, server metadata and status added."""
    live = copy.deepcopy(desired)
    live["metadata"].update(
        {"uid": "1", "resourceVersion": "42", "generation": 3, "creationTimestamp": "2026-01-01T00:00:00Z",
         "managedFields": [{"manager": "gitops-agent"}]}
    )  # fmt: skip
    live["spec"]["strategy"] = {"type": "RollingUpdate"}
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    live["status"] = {"replicas": 2}
    return live


def test_live_with_server_defaults_covers_the_manifest() -> None:
    assert covers(DESIRED, live_of(DESIRED))


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda o: o["spec"].update(replicas=5), "scalar changed"),
        (lambda o: o["spec"]["template"]["spec"]["containers"][0].update(image="api:2.0"), "in a list item"),
        (lambda o: o["spec"]["template"]["spec"]["containers"].append({"name": "x"}), "list length"),
        (lambda o: o["metadata"]["labels"].pop("app"), "key missing live"),
        (lambda o: o["spec"].update(replicas="2"), "type differs"),
        (lambda o: o["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].update(cpu="1000m"),
         "quantity spelled differently: inconclusive locally, the server decides"),
    ],
)  # fmt: skip
def test_differences_are_not_covered(mutate: Any, why: str) -> None:
    live = live_of(DESIRED)
    mutate(live)
    assert not covers(DESIRED, live), why


def test_normalize_drops_status_and_server_metadata_only() -> None:
    n = normalize(live_of(DESIRED))
    assert "status" not in n
    assert set(n["metadata"]) == {"name", "namespace", "labels"}
    assert n["spec"]["strategy"] == {"type": "RollingUpdate"}


def test_changed_paths_are_json_pointers() -> None:
    before = normalize(live_of(DESIRED))
    after = copy.deepcopy(before)
    after["spec"]["replicas"] = 3
    after["metadata"]["labels"]["app.kubernetes.io/name"] = "api"
    after["spec"]["template"]["spec"]["containers"][0]["image"] = "api:2"
    assert changed_paths(before, after) == [
        "/metadata/labels/app.kubernetes.io~1name",
        "/spec/replicas",
        "/spec/template/spec/containers/0/image",
    ]
    assert changed_paths(before, copy.deepcopy(before)) == []


def test_pointer_helpers() -> None:
    obj = copy.deepcopy(DESIRED)
    assert pointer_get(obj, "/spec/template/spec/containers/0/image") == (True, "api:1.0")
    assert pointer_get(obj, "/spec/nope") == (False, None)
    assert pointer_remove(obj, "/spec/replicas")
    assert "replicas" not in obj["spec"]
    assert not pointer_remove(obj, "/spec/replicas")


SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "db", "namespace": "shop"},
    "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="},
}


def test_secret_values_are_masked_and_only_changes_are_marked() -> None:
    after = copy.deepcopy(SECRET)
    after["data"]["password"] = "czNjcjN0"
    b, a = mask_secret(SECRET, after)
    assert b is not None and a is not None
    assert b["data"] == {"password": f"{MASK} (before)", "user": MASK}
    assert a["data"] == {"password": f"{MASK} (after)", "user": MASK}
    assert SECRET["data"]["password"] == "aHVudGVyMg=="  # inputs untouched


def test_string_data_compares_with_data() -> None:
    desired = {**SECRET, "data": None, "stringData": {"user": "admin"}}
    _, a = mask_secret(SECRET, desired)
    assert a is not None and a["stringData"] == {"user": MASK}


def test_unified_diff_never_shows_secret_values() -> None:
    after = copy.deepcopy(SECRET)
    after["data"]["password"] = "czNjcjN0"
    text = unified_diff("Secret/shop/db", SECRET, after)
    assert "password" in text and "(after)" in text
    for value in ("aHVudGVyMg==", "czNjcjN0", "hunter2", "YWRtaW4="):
        assert value not in text


def test_unified_diff_of_a_change_looks_like_kubectl_diff() -> None:
    before = normalize(live_of(DESIRED))
    after = copy.deepcopy(before)
    after["spec"]["replicas"] = 3
    text = unified_diff("Deployment/shop/api", before, after)
    assert text.startswith("--- live/Deployment/shop/api\n+++ desired/Deployment/shop/api\n")
    assert "-  replicas: 2\n+  replicas: 3\n" in text
