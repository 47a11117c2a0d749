"""Drift detection and attribution, over an object captured from the real test control plane.

Fixture: a Deployment server-side applied by ``gitops-agent`` (cpu limit ``1000m``, stored as
``1``), then ``kubectl scale --replicas=4`` (manager ``kubectl``, scale subresource) and a JSON
patch of the image with ``--field-manager=kubectl-edit``, read back with ``--show-managed-fields``.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gitops_agent.core.drift import (
    CHANGED,
    EXTRA,
    MISSING,
    DriftPolicy,
    ExpectedManager,
    IgnoreRule,
    detect_drift,
    fields_to_yield,
    object_drift,
)
from gitops_agent.core.managed_fields import field_owners, owner_of
from gitops_agent.model import ObjectKey
from tests.support import paths

FIXTURES = paths.FIXTURES / "drift"
LIVE: dict[str, Any] = json.loads((FIXTURES / "deployment-scaled-and-edited.json").read_text())
DESIRED: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "api", "namespace": "t1"},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"a": "b"}},
        "template": {
            "metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "app", "image": "x:1", "resources": {"limits": {"cpu": "1000m"}}}]},
        },
    },
}
KEY = ObjectKey.of(DESIRED)
REPORT = DriftPolicy(field_manager="gitops-agent")


def by_path(fields: Any) -> dict[str, Any]:
    return {f.path: f for f in fields}


def test_owners_come_from_managed_fields_including_list_items_by_key() -> None:
    owners = field_owners(LIVE)
    assert owners["/spec/replicas"].manager == "kubectl"
    assert owners["/spec/replicas"].subresource == "scale"
    assert owners["/spec/template/spec/containers/0/image"].manager == "kubectl-edit"
    assert owners["/spec/template/spec/containers/0/resources/limits/cpu"].manager == "gitops-agent"
    # a field inside an atomic map the agent owns as a whole
    assert owner_of("/spec/selector/matchLabels/a", owners).manager == "gitops-agent"  # type: ignore[union-attr]


def test_drift_names_fields_values_managers_and_since() -> None:
    fields = by_path(object_drift(KEY, DESIRED, LIVE, REPORT))
    assert set(fields) == {"/spec/replicas", "/spec/template/spec/containers/0/image"}
    image = fields["/spec/template/spec/containers/0/image"]
    assert (image.desired, image.live, image.manager, image.since) == (
        "x:1",
        "x:hotfix",
        "kubectl-edit",
        "2026-11-23T06:18:50Z",
    )
    assert (fields["/spec/replicas"].desired, fields["/spec/replicas"].live) == (1, 4)
    assert not any(f.expected for f in fields.values())


def test_server_normalisation_of_a_field_we_still_own_is_not_drift() -> None:
    # 1000m is stored as 1, but gitops-agent still owns the field
    assert "/spec/template/spec/containers/0/resources/limits/cpu" not in by_path(
        object_drift(KEY, DESIRED, LIVE, REPORT)
    )


def test_a_manager_on_the_expected_list_makes_its_fields_expected() -> None:
    policy = DriftPolicy("gitops-agent", expected_managers=(ExpectedManager("kubectl", ("/spec/replicas",)),))
    fields = by_path(object_drift(KEY, DESIRED, LIVE, policy))
    assert fields["/spec/replicas"].expected
    assert not fields["/spec/template/spec/containers/0/image"].expected


def test_expected_manager_limited_to_other_kinds_does_not_apply() -> None:
    policy = DriftPolicy("gitops-agent", expected_managers=(ExpectedManager("kubectl", (), ("StatefulSet",)),))
    assert not by_path(object_drift(KEY, DESIRED, LIVE, policy))["/spec/replicas"].expected


def test_ignore_rules_drop_fields_for_matching_objects_only() -> None:
    rule = IgnoreRule(kind="Deployment", name="api", paths=("/spec/template/spec/containers",))
    fields = by_path(object_drift(KEY, DESIRED, LIVE, DriftPolicy("gitops-agent", ignore=(rule,))))
    assert set(fields) == {"/spec/replicas"}
    other = IgnoreRule(kind="Deployment", name="web", paths=("/spec",))
    assert len(object_drift(KEY, DESIRED, LIVE, DriftPolicy("gitops-agent", ignore=(other,)))) == 2


def test_fields_the_snapshot_never_set_are_not_drift() -> None:
    desired = copy.deepcopy(DESIRED)
    del desired["spec"]["replicas"]
    desired["spec"]["template"]["spec"]["containers"][0]["image"] = "x:hotfix"
    assert object_drift(KEY, desired, LIVE, REPORT) == ()


def test_missing_and_extra_objects() -> None:
    gone = ObjectKey("", "ConfigMap", "t1", "settings")
    extra = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "by-hand", "namespace": "t1"}}
    report = detect_drift([(KEY, DESIRED), (gone, {})], {KEY: LIVE}, policy=REPORT, extra=[extra])
    states = {d.key.name: d.state for d in report}
    assert states == {"api": CHANGED, "settings": MISSING, "by-hand": EXTRA}
    assert not any(d.expected for d in report)


def test_reordered_named_list_items_are_matched_by_name() -> None:
    live = copy.deepcopy(LIVE)
    containers = live["spec"]["template"]["spec"]["containers"]
    containers.insert(0, {"name": "sidecar", "image": "proxy:1"})
    fields = by_path(object_drift(KEY, DESIRED, live, REPORT))
    assert "/spec/template/spec/containers/1/image" in fields


def test_secret_values_are_masked_in_drift() -> None:
    desired = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": "hunter2"}}
    live = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "db",
            "managedFields": [
                {
                    "manager": "kubectl-edit",
                    "operation": "Update",
                    "time": "t",
                    "fieldsV1": {"f:data": {"f:password": {}}},
                }
            ],
        },
        "data": {"password": "b3RoZXI="},
    }
    (field,) = object_drift(ObjectKey.of(desired), desired, live, REPORT)
    assert (field.path, field.desired, field.live, field.manager) == ("/data/password", "***", "***", "kubectl-edit")
    assert "hunter2" not in repr(field) and "b3RoZXI=" not in repr(field)


@pytest.mark.parametrize(("manager", "kept"), [("kubectl", False), ("kubectl-edit", True)])
def test_fields_to_yield_leaves_out_only_what_expected_managers_own(manager: str, kept: bool) -> None:
    policy = DriftPolicy("gitops-agent", expected_managers=(ExpectedManager(manager, ("/spec/replicas",)),))
    out = fields_to_yield(KEY, DESIRED, LIVE, policy)
    assert ("replicas" in out["spec"]) is kept
    assert out["spec"]["template"] == DESIRED["spec"]["template"]
    assert DESIRED["spec"]["replicas"] == 1  # input untouched
