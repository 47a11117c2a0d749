"""A Secret's values checked offline before anything is sent (``core.secret_check``), and the
checks wired into rendering (``validate_objects``) and preparing (``prepare``)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gitops_agent.core.prepare import prepare
from gitops_agent.core.render import validate_objects
from gitops_agent.core.secret_check import secret_problems
from gitops_agent.errors import ValidationError
from gitops_agent.model import DesiredObject, ObjectKey

CANARY = "canary-8d1f2c"


def secret(**sections: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}, **sections}


@pytest.mark.parametrize(
    "sections",
    [
        {"data": {"a": base64.b64encode(b"x").decode(), "b": None}},
        {"data": {"crt": "YWJj\nZGVm"}},  # line-wrapped base64: the server's decoder skips line breaks
        {"stringData": {"a": "text", "b": ""}},
        {"data": None, "stringData": None},
        {},
    ],
)
def test_well_formed_secrets_pass(sections: dict[str, Any]) -> None:
    assert secret_problems(secret(**sections)) == []


@pytest.mark.parametrize(
    ("sections", "problem"),
    [
        ({"stringData": {"pin": 12345}}, "stringData['pin'] must be a string, found a number (quote it in YAML)"),
        ({"stringData": {"on": True}}, "stringData['on'] must be a string, found a boolean (quote it in YAML)"),
        ({"data": {"pin": 12345}}, "data['pin'] must be a string, found a number (quote it in YAML)"),
        ({"data": {"pw": f"{CANARY}!"}}, "data['pw'] is not valid base64 (use stringData for plain text)"),
        ({"data": {"pw": "YWJjZA"}}, "data['pw'] is not valid base64 (use stringData for plain text)"),  # unpadded
        ({"stringData": {"n": {"k": CANARY}}}, "stringData['n'] must be a string, found a map (quote it in YAML)"),
        ({"data": CANARY}, "data must be a map of key to string, found a string"),
        ({"stringData": [CANARY]}, "stringData must be a map of key to string, found a list"),
    ],
)
def test_each_problem_names_the_key_and_the_type_never_the_value(sections: dict[str, Any], problem: str) -> None:
    assert secret_problems(secret(**sections)) == [problem]


def test_other_kinds_are_not_checked() -> None:
    assert secret_problems({**secret(data={"pin": 1}), "kind": "ConfigMap"}) == []


def test_rendering_refuses_the_snapshot_naming_file_secret_and_key() -> None:
    obj = DesiredObject(ObjectKey.of(secret()), secret(stringData={"pin": 987654321}), "secrets.yaml")
    with pytest.raises(ValidationError) as caught:
        validate_objects([obj])
    assert (
        str(caught.value)
        == "secrets.yaml: Secret/shop/db: stringData['pin'] must be a string, found a number (quote it in YAML)"
    )
    assert "987654321" not in str(caught.value)


def test_prepare_refuses_before_anything_is_sent() -> None:
    obj = DesiredObject(ObjectKey.of(secret()), secret(data={"pw": CANARY}), "secrets.yaml")
    with pytest.raises(
        ValidationError, match=r"^secrets.yaml: Secret/shop/db: data\['pw'\] is not valid base64"
    ) as caught:
        prepare([obj], environment="dev", default_namespace="shop", scope_of=lambda group, kind: True)
    assert CANARY not in str(caught.value)
