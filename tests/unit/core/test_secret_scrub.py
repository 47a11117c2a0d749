"""Scrubbing a Secret's own values out of text about it (``core.secret_scrub``): the messages are
the API server's own answers to the test control plane (see ``tests/integration/cluster/test_secret_errors.py``)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gitops_agent.core.secret_mask import MASK
from gitops_agent.core.secret_scrub import scrub_secret_values, secret_forms

TYPED = "Secret/default/db: failed to create typed patch object (default/db; /v1, Kind=Secret): "


def secret(**sections: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "default"}, **sections}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_an_integer_in_string_data_echoed_by_the_server_is_scrubbed() -> None:
    text = TYPED + ".stringData.pin: expected string, got &value.valueUnstructured{Value:987654321}"
    out = scrub_secret_values(text, secret(stringData={"pin": 987654321}))
    assert "987654321" not in out
    assert out == TYPED + f".stringData.pin: expected string, got {MASK}"


def test_every_error_line_of_a_multi_field_answer_is_scrubbed() -> None:
    text = TYPED + (
        "errors:\n  .stringData.a: expected string, got &value.valueUnstructured{Value:11111}\n"
        '  .stringData.b: expected string, got &value.valueUnstructured{Value:[]interface {}{1, "CANARYx"}}'
    )
    out = scrub_secret_values(text, secret(stringData={"a": 11111, "b": [1, "CANARYx"]}))
    assert "11111" not in out and "CANARYx" not in out
    assert out.count(MASK) == 2 and ".stringData.a:" in out and ".stringData.b:" in out


@pytest.mark.parametrize(
    ("sections", "quoted"),
    [
        ({"data": {"password": b64("s3cr3t-value")}}, "s3cr3t-value"),  # decoded, as a webhook prints it
        ({"data": {"password": b64("s3cr3t-value")}}, b64("s3cr3t-value")),  # as sent
        ({"stringData": {"password": "s3cr3t-value"}}, b64("s3cr3t-value")),  # as the server stores it
        ({"stringData": {"password": 'say "hi"\nbye'}}, 'say \\"hi\\"\\nbye'),  # JSON-escaped
        ({"stringData": {"flag": True}}, "true"),
        ({"data": "s3cr3t-text-not-a-map"}, "s3cr3t-text-not-a-map"),
        ({"stringData": {"nested": {"inner-key": "s3cr3t"}}}, "inner-key"),  # keys inside a value
    ],
)
def test_values_are_scrubbed_in_every_form_a_server_or_webhook_prints(sections: dict[str, Any], quoted: str) -> None:
    text = f'admission webhook "check.example" denied the request: value {quoted} is not allowed'
    out = scrub_secret_values(text, secret(**sections))
    assert quoted not in out and MASK in out


def test_values_in_the_last_applied_annotation_are_scrubbed() -> None:
    embedded = '{"apiVersion":"v1","kind":"Secret","stringData":{"password":"old-s3cr3t"}}'
    obj = secret(data={"password": b64("new")})
    obj["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": embedded}
    assert "old-s3cr3t" in secret_forms(obj) and embedded in secret_forms(obj)
    assert "old-s3cr3t" not in scrub_secret_values("denied: old-s3cr3t", obj)


def test_short_values_are_scrubbed_only_where_they_stand_alone() -> None:
    text = TYPED + "value 42 refused"
    out = scrub_secret_values(text, secret(stringData={"pin": "42", "v": "1"}))
    assert out == TYPED + f"value {MASK} refused"
    assert "(default/db; /v1, Kind=Secret)" in out


def test_keys_and_other_objects_are_left_alone() -> None:
    text = 'Secret "db" is invalid: data[bad key/]: Invalid value: "bad key/": a valid config key must ...'
    assert scrub_secret_values(text, secret(stringData={"bad key/": "s3cr3t"})) == text
    configmap = {**secret(data={"a": "some-config-value"}), "kind": "ConfigMap"}
    assert scrub_secret_values("some-config-value", configmap, None) == "some-config-value"
