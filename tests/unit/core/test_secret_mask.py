"""Secret values hidden by place, whatever shape the object has (``core.secret_mask``), and the
drift and diffs built on it, over Secrets captured from the real API server
(``tests/fixtures/capture_secrets.py``)."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from gitops_agent.core.diff import mask_secret, normalize, unified_diff
from gitops_agent.core.drift import DriftPolicy, object_drift
from gitops_agent.core.secret_mask import MASK, in_secret_place, mask_at, mask_object
from gitops_agent.model import ObjectKey
from tests.fixtures.capture_secrets import EDITED, PASSWORD, USER
from tests.support import paths

FIXTURES = paths.FIXTURES / "secrets"


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


APPLIED = fixture("applied.json")
DATA_REMOVED = fixture("data-removed.json")
VALUE_EDITED = fixture("value-edited.json")
KUBECTL_APPLIED = fixture("kubectl-applied.json")
#: the manifest the agent applied (its rendered form: values in both data and stringData)
DESIRED: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": APPLIED["metadata"]["name"], "namespace": "default"},
    "type": "Opaque",
    "data": {"user": base64.b64encode(USER.encode()).decode()},
    "stringData": {"password": PASSWORD},
}
KEY = ObjectKey.of(DESIRED)
POLICY = DriftPolicy(field_manager="gitops-agent")


def leaks(value: Any) -> list[str]:
    """Which planted values (or their base64) appear anywhere in the printed value."""
    text = json.dumps(value, default=repr) if not isinstance(value, str) else value
    planted = [PASSWORD, USER, EDITED]
    return [v for v in planted + [base64.b64encode(p.encode()).decode() for p in planted] if v in text]


def test_the_fixtures_hold_the_planted_values() -> None:
    assert leaks(APPLIED) and leaks(VALUE_EDITED) and leaks(KUBECTL_APPLIED)
    assert "data" not in DATA_REMOVED


@pytest.mark.parametrize(
    ("pointer", "inside"),
    [
        ("/data", True),
        ("/data/password", True),
        ("/stringData/a~1b", True),
        ("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration", True),
        ("/metadata/annotations/other", False),
        ("/dataX", False),
        ("/type", False),
        ("/", False),
    ],
)
def test_places_that_hold_values(pointer: str, inside: bool) -> None:
    assert in_secret_place(pointer) is inside


@pytest.mark.parametrize(
    ("pointer", "value", "shown"),
    [
        ("/data/password", "aHVudGVy", MASK),
        ("/data", {"a": "eA==", "b": 1}, {"a": MASK, "b": MASK}),  # a whole map keeps its keys
        ("/data", "text where a map belongs", MASK),
        ("/stringData", ["a", "list"], MASK),
        ("/stringData/pin", 12345, MASK),
        ("/stringData/nested", {"k": "v"}, MASK),
        ("/data/password", None, None),  # removed: nothing to hide
        ("/metadata", {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "x": "y"}},
         {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": MASK, "x": "y"}}),
        ("/type", "Opaque", "Opaque"),
    ],
)  # fmt: skip
def test_mask_at_hides_by_place_whatever_the_shape(pointer: str, value: Any, shown: Any) -> None:
    assert mask_at(pointer, value) == shown


def test_a_whole_secret_keeps_everything_but_its_values() -> None:
    masked = mask_object(KUBECTL_APPLIED)
    assert not leaks(masked)
    assert masked["data"] == {"password": MASK, "user": MASK}
    assert masked["metadata"]["name"] == KUBECTL_APPLIED["metadata"]["name"]
    assert masked["metadata"]["managedFields"] == KUBECTL_APPLIED["metadata"]["managedFields"]
    assert leaks(KUBECTL_APPLIED), "input untouched"


# --- drift -----------------------------------------------------------------------------------------


def test_drift_of_a_secret_whose_data_map_was_removed_shows_keys_never_values() -> None:
    fields = object_drift(KEY, DESIRED, DATA_REMOVED, POLICY)
    assert [f.path for f in fields] == ["/data"]
    assert fields[0].desired == {"password": MASK, "user": MASK}
    assert fields[0].live is None
    assert not leaks([(f.desired, f.live) for f in fields])


def test_drift_of_an_edited_value_is_attributed_and_masked() -> None:
    (field,) = object_drift(KEY, DESIRED, VALUE_EDITED, POLICY)
    assert (field.path, field.desired, field.live, field.manager) == ("/data/password", MASK, MASK, "kubectl-edit")
    assert not leaks(repr(field))


@pytest.mark.parametrize(
    "live_data",
    [{}, "not a map", ["a", "list"], {"password": 12345}, {"password": {"nested": PASSWORD}}],
)
def test_drift_masks_whatever_shape_the_live_data_has(live_data: Any) -> None:
    live = copy.deepcopy(VALUE_EDITED)
    live["data"] = live_data
    if isinstance(live_data, dict):
        live["data"]["extra"] = base64.b64encode(EDITED.encode()).decode()
    fields = object_drift(KEY, DESIRED, live, POLICY)
    assert fields
    assert not leaks([(f.desired, f.live) for f in fields])


def test_drift_masks_a_desired_data_map_that_is_empty_or_not_a_map() -> None:
    for desired_data in ({}, "text"):
        desired = {**DESIRED, "data": desired_data, "stringData": {}}
        fields = object_drift(KEY, desired, VALUE_EDITED, POLICY)
        assert fields and not leaks([(f.desired, f.live) for f in fields])


def test_drift_masks_the_last_applied_annotation_a_manifest_carries() -> None:
    desired = copy.deepcopy(DESIRED)
    desired["metadata"]["annotations"] = copy.deepcopy(KUBECTL_APPLIED["metadata"]["annotations"])
    fields = object_drift(KEY, desired, APPLIED, POLICY)
    assert [f.path for f in fields] == ["/metadata/annotations"]  # the live Secret has none
    assert fields[0].desired == {"kubectl.kubernetes.io/last-applied-configuration": MASK}


def test_drift_of_other_kinds_is_not_masked() -> None:
    configmap = {**DESIRED, "kind": "ConfigMap"}
    live = {**DATA_REMOVED, "kind": "ConfigMap"}
    fields = {f.path: f for f in object_drift(ObjectKey.of(configmap), configmap, live, POLICY)}
    assert fields["/data"].desired == DESIRED["data"]


# --- diffs -----------------------------------------------------------------------------------------


def test_diff_of_a_secret_that_lost_its_data_marks_each_key_as_changed() -> None:
    b, a = mask_secret(normalize(DATA_REMOVED), normalize(APPLIED))
    assert b is not None and a is not None
    assert "data" not in b and a["data"] == {"password": f"{MASK} (after)", "user": f"{MASK} (after)"}
    assert not leaks(unified_diff("Secret/default/db", normalize(DATA_REMOVED), normalize(APPLIED)))


def test_diff_compares_string_data_with_data_and_marks_only_changes() -> None:
    b, a = mask_secret(normalize(VALUE_EDITED), DESIRED)
    assert b is not None and a is not None
    assert b["data"] == {"password": f"{MASK} (before)", "user": MASK}
    assert a["data"] == {"user": MASK} and a["stringData"] == {"password": f"{MASK} (after)"}


@pytest.mark.parametrize("shape", ["not a map", ["a", "list"], {"pin": 12345}, {"pin": {"n": PASSWORD}}])
def test_diff_masks_sections_of_any_shape(shape: Any) -> None:
    desired = {**DESIRED, "data": shape, "stringData": shape}
    text = unified_diff("Secret/default/db", normalize(VALUE_EDITED), desired)
    assert text and not leaks(text) and "12345" not in text


def test_diff_masks_the_last_applied_annotation() -> None:
    live = normalize(KUBECTL_APPLIED)
    desired = copy.deepcopy(live)
    desired["metadata"]["annotations"]["team"] = "payments"
    text = unified_diff("Secret/default/legacy", live, desired)
    assert "team: payments" in text and "last-applied-configuration: '***'" in text
    assert not leaks(text)
