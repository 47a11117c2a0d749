"""core.pr_env: the namespace move, the cap, expiry, labels read back, status texts."""

from __future__ import annotations

from gitops_agent.core.pr_env import (
    LivePrEnvironment,
    Outcome,
    PrNamespace,
    expired,
    move_into,
    namespace_manifest,
    over_cap,
    parse_namespace,
    pattern_problem,
    pull_is_open,
    status_of,
)
from gitops_agent.model import DesiredObject, ObjectKey

NAMESPACED = {("", "ConfigMap"), ("apps", "Deployment")}


def scope_of(group: str, kind: str) -> bool | None:
    if (group, kind) in NAMESPACED:
        return True
    return False if kind == "ClusterRole" else None


def obj(api: str, kind: str, name: str, namespace: str = "") -> DesiredObject:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    manifest = {"apiVersion": api, "kind": kind, "metadata": meta}
    return DesiredObject(ObjectKey.of(manifest), manifest, "f.yaml")


def test_namespaced_objects_move_and_cluster_scoped_ones_are_left_out_and_named() -> None:
    moved = move_into(
        [obj("v1", "ConfigMap", "a", "shop-dev"), obj("apps/v1", "Deployment", "web"),
         obj("rbac.authorization.k8s.io/v1", "ClusterRole", "reader"), obj("x.io/v1", "Widget", "w", "shop-dev")],
        "pr-7-dev", scope_of,
    )  # fmt: skip
    assert [(o.key.kind, o.key.namespace) for o in moved.objects] == [
        ("ConfigMap", "pr-7-dev"),
        ("Deployment", "pr-7-dev"),
    ]
    assert moved.objects[0].manifest["metadata"] == {"name": "a", "namespace": "pr-7-dev"}
    assert moved.left_out == ("ClusterRole/reader (cluster-scoped)", "Widget/w (kind not served by the cluster)")


def test_the_cap_counts_other_prs_of_the_same_environment() -> None:
    live = [
        LivePrEnvironment("pr-1-dev", "pr-1-dev", "dev", 1, "", 0),
        LivePrEnvironment("pr-2-qa", "pr-2-qa", "qa", 2, "", 0),
    ]
    assert over_cap(live, "dev", 1, 1) == ""  # its own is updated
    assert "max 1" in over_cap(live, "dev", 3, 1)
    assert over_cap(live, "dev", 3, 2) == ""


def test_the_namespace_labels_are_read_back_and_expiry_decides() -> None:
    manifest = namespace_manifest(PrNamespace("pr-7-dev", "pr-7-dev", "dev", 7, "a" * 40, 1000), "agent")
    live = parse_namespace(manifest)
    assert live == LivePrEnvironment("pr-7-dev", "pr-7-dev", "dev", 7, "a" * 40, 1000)
    assert manifest["metadata"]["annotations"]["gitops-agent.io/pr-expires-at"] == "1970-01-01T00:16:40Z"
    assert expired(live, 1000) and not expired(live, 999)
    deleting = {**manifest, "metadata": {**manifest["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    assert parse_namespace(deleting) is None
    assert parse_namespace({"metadata": {"name": "x", "labels": {}}}) is None


def test_patterns_and_pull_states() -> None:
    assert pattern_problem("pr-{number}-{env}", "dev") == ""
    assert "must contain {number}" in pattern_problem("pr-{env}", "dev")
    assert pull_is_open({"state": "open"}) is True and pull_is_open({"state": "closed"}) is False
    assert pull_is_open({}) is None


def test_status_texts_fit_github_and_say_what_happened() -> None:
    ok = status_of(Outcome("dev", "pr-7-dev", changes="3 created", health="Current", left_out=("ClusterRole/r",)))
    assert ok == ("success", "pr-7-dev: deployed, healthy (3 created); 1 cluster-scoped left out")
    assert status_of(Outcome("dev", "pr-7-dev", health="Failed", health_message="web: crash"))[0] == "failure"
    assert status_of(Outcome("dev", "pr-7-dev", health="InProgress"))[0] == "pending"
    state, text = status_of(Outcome("dev", "pr-7-dev", error="x" * 500))
    assert state == "error" and len(text) <= 140
