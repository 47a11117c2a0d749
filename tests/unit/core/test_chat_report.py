"""core.chat_report: drift for chat — fingerprints, decisions, Slack and the generic webhook, no Secret value."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gitops_agent.core.chat_report import (
    SECRET_CHANGED,
    SLACK_FIELD_LIMIT,
    SLACK_HEADER_LIMIT,
    SLACK_MAX_BLOCKS,
    SLACK_MAX_FIELDS,
    SLACK_SECTION_LIMIT,
    WEBHOOK_MAX_OBJECTS,
    WEBHOOK_SCHEMA,
    DriftSummary,
    decide_chat,
    drift_fingerprint,
    generic_webhook_payload,
    mask_secret_values,
    slack_message,
)
from gitops_agent.core.drift import CHANGED, EXTRA, MISSING, DriftedField, ObjectDrift
from gitops_agent.core.report import (
    EnvironmentReport,
    Phase,
)
from gitops_agent.model import ObjectKey

SHA = "0123456789abcdef0123456789abcdef01234567"
API = ObjectKey("apps", "Deployment", "shop", "api")
SECRET = ObjectKey("", "Secret", "shop", "db")
HPA_FIELD = DriftedField("/spec/replicas", 3, 5, "kube-controller-manager", "2024-05-01T10:00:00Z", True)
EDIT_FIELD = DriftedField(
    "/spec/template/spec/containers/0/image", "api:1.2", "api:1.3", "kubectl-edit", "2024-05-01T11:00:00Z", False
)


def report(phase: Phase, **kw: Any) -> EnvironmentReport:
    return EnvironmentReport(environment="prod", commit=SHA, phase=phase, **kw)


def summary(*objects: ObjectDrift, env: str = "prod") -> DriftSummary:
    return DriftSummary(env, SHA, tuple(objects))


def all_text(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False)


# --- fingerprints and decisions ---------------------------------------------------------------


def test_fingerprint_ignores_times_managers_and_order() -> None:
    other = ObjectDrift(ObjectKey("", "ConfigMap", "shop", "cfg"), CHANGED, (EDIT_FIELD,))
    a = summary(ObjectDrift(API, CHANGED, (EDIT_FIELD,)), other)
    later = DriftedField(
        EDIT_FIELD.path, EDIT_FIELD.desired, EDIT_FIELD.live, "someone-else", "2030-01-01T00:00:00Z", False
    )
    b = summary(other, ObjectDrift(API, CHANGED, (later,)))
    assert drift_fingerprint(a) == drift_fingerprint(b)


@pytest.mark.parametrize(
    "changed",
    [
        summary(
            ObjectDrift(API, CHANGED, (DriftedField(EDIT_FIELD.path, "api:1.2", "api:9", "kubectl-edit", "", False),))
        ),
        summary(ObjectDrift(API, CHANGED, (DriftedField("/spec/paused", None, True, "kubectl-edit", "", False),))),
        summary(ObjectDrift(ObjectKey("apps", "Deployment", "shop", "web"), CHANGED, (EDIT_FIELD,))),
        summary(ObjectDrift(API, MISSING)),
        summary(ObjectDrift(API, CHANGED, (EDIT_FIELD,)), env="staging"),
    ],
    ids=["value", "field", "object", "change-kind", "environment"],
)
def test_fingerprint_changes_with_the_drift(changed: DriftSummary) -> None:
    assert drift_fingerprint(changed) != drift_fingerprint(summary(ObjectDrift(API, CHANGED, (EDIT_FIELD,))))


def test_expected_drift_does_not_change_the_fingerprint() -> None:
    base = summary(ObjectDrift(API, CHANGED, (EDIT_FIELD,)))
    with_hpa = summary(ObjectDrift(API, CHANGED, (EDIT_FIELD, HPA_FIELD)))
    assert drift_fingerprint(base) == drift_fingerprint(with_hpa)


def test_chat_decisions_over_a_sequence_of_passes() -> None:
    """appear -> same -> same -> resolved -> still clean: exactly two messages."""
    drifted = summary(ObjectDrift(API, CHANGED, (EDIT_FIELD,)))
    clean = summary()
    sent, remembered = [], None
    for current in (clean, drifted, drifted, drifted, clean, clean):
        decision = decide_chat(remembered, current)
        sent.append(decision.send)
        remembered = decision.fingerprint
    assert sent == [None, "appeared", None, None, "resolved", None]


def test_chat_speaks_again_when_the_drift_changes() -> None:
    first = decide_chat(None, summary(ObjectDrift(API, CHANGED, (EDIT_FIELD,))))
    more = summary(ObjectDrift(API, CHANGED, (EDIT_FIELD,)), ObjectDrift(SECRET, MISSING))
    assert decide_chat(first.fingerprint, more).send == "appeared"


def test_expected_drift_alone_is_not_a_chat_message() -> None:
    assert decide_chat(None, summary(ObjectDrift(API, CHANGED, (HPA_FIELD,)))).send is None


# --- Slack --------------------------------------------------------------------------------------


def assert_within_slack_limits(message: dict[str, Any]) -> None:
    blocks = message["blocks"]
    assert message["text"] and len(blocks) <= SLACK_MAX_BLOCKS
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= SLACK_HEADER_LIMIT
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= SLACK_SECTION_LIMIT
            assert len(block.get("fields", [])) <= SLACK_MAX_FIELDS
            assert all(len(f["text"]) <= SLACK_FIELD_LIMIT for f in block.get("fields", []))


def huge_drift(objects: int = 300, fields: int = 200) -> DriftSummary:
    out = []
    for i in range(objects):
        key = ObjectKey("apps", "Deployment", "shop", f"svc-{i:03d}-" + "n" * 200)
        fs = tuple(
            DriftedField(f"/metadata/annotations/note-{j}", "a" * 500, "b" * 500, "kubectl-edit", "", False)
            for j in range(fields)
        )
        out.append(ObjectDrift(key, CHANGED, fs))
    return DriftSummary("prod-" + "e" * 300, SHA, tuple(out))


def test_huge_drift_stays_within_slack_limits_and_says_what_was_left_out() -> None:
    message = slack_message(huge_drift(), "appeared")
    assert_within_slack_limits(message)
    text = all_text(message)
    assert "…and 280 more objects" in text
    assert "more fields" in text  # 200 fields of ~1 KiB cannot fit in one 3,000-character section


def test_slack_message_lists_the_field_who_and_values() -> None:
    message = slack_message(summary(ObjectDrift(API, CHANGED, (EDIT_FIELD, HPA_FIELD))), "appeared")
    assert_within_slack_limits(message)
    sections = [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]
    assert any(
        "*Deployment/shop/api*" in s and "`/spec/template/spec/containers/0/image` by `kubectl-edit`" in s
        and '`api:1.2` → `api:1.3`' in s for s in sections
    )  # fmt: skip
    assert "/spec/replicas" not in all_text(message), "expected drift is counted, not listed"
    assert "1 field(s) drifted as expected" in all_text(message)
    assert message["text"] == f"Unexpected drift in prod: 1 object changed outside git since commit {SHA[:12]}"


def test_slack_text_is_escaped_for_mrkdwn() -> None:
    field = DriftedField("/data/html", "<b>&</b>", "<!channel>`x`", "kubectl-edit", "", False)
    text = all_text(slack_message(summary(ObjectDrift(ObjectKey("", "ConfigMap", "shop", "c"), CHANGED, (field,)))))
    assert "<!channel>" not in text and "&lt;!channel&gt;'x'" in text and "&lt;b&gt;&amp;&lt;/b&gt;" in text


def test_missing_and_extra_objects_are_described() -> None:
    message = slack_message(summary(ObjectDrift(API, MISSING), ObjectDrift(SECRET, EXTRA)))
    text = all_text(message)
    assert "*Deployment/shop/api* — deleted from the cluster" in text
    assert "*Secret/shop/db* — in the cluster with the environment's label, not in git" in text


def test_resolved_message() -> None:
    message = slack_message(summary(), "resolved")
    assert_within_slack_limits(message)
    assert message["text"] == f"Drift in prod resolved: live objects match commit {SHA[:12]} again"
    assert message["blocks"][0]["text"]["text"] == "✅ Drift in prod resolved"


# --- secrets ------------------------------------------------------------------------------------


def secret_drift() -> DriftSummary:
    """A Secret whose values reached the report unmasked (a detector bug the report must survive)."""
    fields = (
        DriftedField("/data/password", "aHVudGVyMg==", "c3dvcmRmaXNo", "kubectl-edit", "", False),
        DriftedField("/stringData/token", "hunter2", "swordfish", "kubectl-edit", "", False),
        DriftedField("/metadata/labels/tier", "gold-hunter2", "bronze-swordfish", "kubectl-edit", "", False),
    )
    return summary(ObjectDrift(SECRET, CHANGED, fields))


@pytest.mark.parametrize("kind", ["appeared", "resolved"])
def test_no_secret_value_in_any_payload(kind: Any) -> None:
    drift = secret_drift()
    payloads = [slack_message(drift, kind), generic_webhook_payload(drift, kind)]
    for payload in payloads:
        text = all_text(payload)
        for value in ("aHVudGVyMg==", "c3dvcmRmaXNo", "hunter2", "swordfish"):
            assert value not in text
    if kind == "appeared":
        assert SECRET_CHANGED in all_text(payloads[0]) and SECRET_CHANGED in all_text(payloads[1])


def test_mask_secret_values_leaves_other_objects_alone() -> None:
    drift = DriftSummary("prod", SHA, (*secret_drift().objects, ObjectDrift(API, CHANGED, (EDIT_FIELD,))))
    masked = mask_secret_values(drift)
    assert {(f.desired, f.live) for f in masked.objects[0].fields} == {(SECRET_CHANGED, SECRET_CHANGED)}
    assert masked.objects[1] == drift.objects[1]


def test_fingerprint_does_not_depend_on_secret_values() -> None:
    """A hash of a short secret can be reversed by guessing; it never goes in."""
    other = DriftSummary("prod", SHA, (ObjectDrift(SECRET, CHANGED, (secret_drift().objects[0].fields[0],)),))
    changed = DriftedField("/data/password", "x", "y", "kubectl-edit", "", False)
    assert drift_fingerprint(other) == drift_fingerprint(summary(ObjectDrift(SECRET, CHANGED, (changed,))))


# --- generic webhook ----------------------------------------------------------------------------


def test_generic_payload_shape() -> None:
    drift = DriftSummary("prod", SHA, (ObjectDrift(API, CHANGED, (EDIT_FIELD, HPA_FIELD)),), "https://x/prod")
    payload = generic_webhook_payload(drift, "appeared")
    assert payload == {
        "schema": WEBHOOK_SCHEMA,
        "event": "drift.appeared",
        "environment": "prod",
        "commit": SHA,
        "fingerprint": drift_fingerprint(drift),
        "text": f"Unexpected drift in prod: 1 object changed outside git since commit {SHA[:12]}",
        "target_url": "https://x/prod",
        "counts": {"objects": 1, "fields": 1, "expected_fields": 1},
        "objects": [
            {
                "group": "apps",
                "kind": "Deployment",
                "namespace": "shop",
                "name": "api",
                "change": "changed",
                "fields": [
                    {
                        "path": EDIT_FIELD.path,
                        "manager": "kubectl-edit",
                        "since": "2024-05-01T11:00:00Z",
                        "old": "api:1.2",
                        "new": "api:1.3",
                    }
                ],
                "omitted_fields": 0,
            }
        ],
        "omitted_objects": 0,
    }
    json.dumps(payload)  # plain JSON


def test_generic_payload_resolved_and_bounded() -> None:
    assert generic_webhook_payload(summary(), "resolved")["event"] == "drift.resolved"
    assert generic_webhook_payload(summary(), "resolved")["fingerprint"] is None
    big = generic_webhook_payload(huge_drift(objects=150, fields=60))
    assert len(big["objects"]) == WEBHOOK_MAX_OBJECTS and big["omitted_objects"] == 50
    assert big["objects"][0]["omitted_fields"] == 10
    assert big["counts"] == {"objects": 150, "fields": 9000, "expected_fields": 0}


# --- the detector's objects ----------------------------------------------------------------------


def test_unexpected_objects_are_those_the_detector_does_not_expect() -> None:
    hpa_only = ObjectDrift(ObjectKey("apps", "Deployment", "shop", "web"), CHANGED, (HPA_FIELD,))
    drift = DriftSummary(
        "prod", SHA, (ObjectDrift(API, CHANGED, (HPA_FIELD, EDIT_FIELD)), ObjectDrift(SECRET, MISSING), hpa_only)
    )
    assert drift.unexpected == drift.objects[:2]
    assert drift.expected_fields == 2
