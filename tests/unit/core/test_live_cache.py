"""The watch cache's pure rules: event application, resourceVersion bookkeeping, 410 Gone, whose
change it was (a pass or not), and what is kept in memory."""

from __future__ import annotations

from gitops_agent.core.live_cache import LAST_APPLIED, Change, Store, WatchTarget, gone, targets_of, trim
from gitops_agent.model import KubeObject, ObjectKey

AGENT = "gitops-agent"


def deployment(
    name: str = "api", *, rv: str = "1", replicas: int = 1, manager: str = AGENT, at: str = "t1"
) -> KubeObject:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "resourceVersion": rv,
            "annotations": {LAST_APPLIED: "{...}", "keep": "me"},
            "managedFields": [
                {"manager": AGENT, "operation": "Apply", "time": "2026-01-01T00:00:00Z", "fieldsV1": {"f:spec": {}}},
                *(
                    [{"manager": manager, "operation": "Update", "time": f"2026-01-01T00:00:0{at[-1]}Z"}]
                    if manager != AGENT
                    else []
                ),
            ],
        },
        "spec": {"replicas": replicas},
        "status": {"readyReplicas": replicas},
    }


def listed(*objects: KubeObject, rv: str = "10") -> Store:
    store = Store(AGENT)
    assert store.replace_all(objects, rv) is Change.NONE  # a first list is no change
    return store


def test_targets_are_one_per_kind_and_namespace() -> None:
    keys = [
        ObjectKey("apps", "Deployment", "a", "x"),
        ObjectKey("apps", "Deployment", "a", "y"),
        ObjectKey("", "Namespace", "", "a"),
    ]
    assert targets_of(keys) == {WatchTarget("apps", "Deployment", "a"), WatchTarget("", "Namespace", "")}


def test_trim_drops_status_and_last_applied_but_keeps_managed_fields() -> None:
    service = {**deployment(), "apiVersion": "v1", "kind": "Service"}
    kept = trim(service, AGENT)
    assert "status" not in kept
    assert kept["metadata"]["annotations"] == {"keep": "me"}
    assert kept["metadata"]["managedFields"]


def test_a_workloads_status_is_kept_for_its_rollout_and_a_change_of_it_is_no_change() -> None:
    assert trim(deployment(), AGENT)["status"] == {"readyReplicas": 1}
    store = listed(deployment())
    rolled = {**deployment(rv="11"), "status": {"readyReplicas": 0, "updatedReplicas": 1}}
    assert store.apply("MODIFIED", rolled) is Change.NONE  # no drift, no pass
    assert store.objects["api"]["status"] == {"readyReplicas": 0, "updatedReplicas": 1}  # the follower reads it


def test_trim_keeps_status_the_agent_applies() -> None:
    obj = {
        "kind": "Thing",
        "metadata": {"managedFields": [{"manager": AGENT, "fieldsV1": {"f:status": {}}}]},
        "status": {"x": 1},
    }
    assert trim(obj, AGENT)["status"] == {"x": 1}


def test_someone_elses_edit_is_theirs_and_moves_the_resource_version() -> None:
    store = listed(deployment())
    assert store.apply("MODIFIED", deployment(rv="11", replicas=5, manager="kubectl-edit", at="t5")) is Change.THEIRS
    assert store.resource_version == "11"
    assert store.objects["api"]["spec"] == {"replicas": 5}


def test_the_agents_own_apply_is_ours_no_pass() -> None:
    store = listed(deployment(replicas=5, manager="kubectl-edit", at="t5"))
    repaired = deployment(rv="12", replicas=1)
    assert store.apply("MODIFIED", repaired) is Change.OURS


def test_a_tie_in_time_is_theirs() -> None:
    store = listed(deployment())
    edited = deployment(rv="11", replicas=3, manager="kubectl-edit", at="t0")  # the same second as ours
    assert store.apply("MODIFIED", edited) is Change.THEIRS


def test_a_status_only_change_is_nothing() -> None:
    store = listed(deployment())
    moved = deployment(rv="11")
    moved["status"] = {"readyReplicas": 0}
    assert store.apply("MODIFIED", moved) is Change.NONE
    assert store.resource_version == "11"


def test_deleted_is_theirs_and_leaves_the_store() -> None:
    store = listed(deployment())
    assert store.apply("DELETED", deployment(rv="13")) is Change.THEIRS
    assert store.objects == {}
    assert store.apply("DELETED", deployment(rv="14")) is Change.NONE  # already gone


def test_bookmark_moves_only_the_resource_version() -> None:
    store = listed(deployment())
    assert store.apply("BOOKMARK", {"kind": "Deployment", "metadata": {"resourceVersion": "99"}}) is Change.NONE
    assert store.resource_version == "99" and list(store.objects) == ["api"]


def test_410_gone_asks_for_a_relist_and_keeps_the_version_until_then() -> None:
    store = listed(deployment())
    status = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"}
    assert gone(status)
    assert store.apply("ERROR", status) is Change.EXPIRED
    assert store.resource_version == "10"


def test_a_relist_finding_a_missed_edit_is_a_change() -> None:
    store = listed(deployment())
    assert store.replace_all([deployment(rv="20", replicas=4, manager="kubectl-edit", at="t5")], "20") is Change.THEIRS
    assert store.resource_version == "20"


def test_a_relist_finding_the_same_is_nothing() -> None:
    store = listed(deployment())
    assert store.replace_all([deployment(rv="21")], "21") is Change.NONE


def test_a_relist_finding_an_object_gone_is_a_change() -> None:
    store = listed(deployment(), deployment("web"))
    assert store.replace_all([deployment()], "22") is Change.THEIRS
    assert list(store.objects) == ["api"]
