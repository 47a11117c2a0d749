"""Untrusted text in Slack: whatever git or the cluster says (field managers, values, paths, error
texts quoting manifests) cannot ping a channel, mention someone, form a link or leave its code span."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from gitops_agent.core.chat_digest import DigestEnvironment, digest_message
from gitops_agent.core.chat_failure import ERROR_LIMIT, FailureSummary, failure_message
from gitops_agent.core.chat_report import (
    SLACK_SECTION_LIMIT,
    DriftSummary,
    code,
    code_block,
    esc,
    generic_webhook_payload,
    slack_message,
)
from gitops_agent.core.drift import CHANGED, DriftedField, ObjectDrift
from gitops_agent.model import ObjectKey
from tests.doubles.chat_server import slack_problems

SHA = "0123456789abcdef0123456789abcdef01234567"
API = ObjectKey("apps", "Deployment", "shop", "api")
HOSTILE = [
    "<!channel>",
    "<!here|here>",
    "<@U123456>",
    "<#C123|general>",
    "<https://evil.example|click here>",
    "``` <!everyone> ```",
    "`inline` @here @channel",
    "*bold* _it_ ~strike~ & &amp; &lt;",
    "line one\n<!channel> line two",
]
ALL = " ".join(HOSTILE)


def mrkdwn_texts(payload: dict[str, Any]) -> list[str]:
    """Every string Slack reads as mrkdwn: the fallback, section texts and fields, context elements."""
    texts = [payload["text"]]
    for block in payload["blocks"]:
        if block["type"] == "section":
            texts.append(block["text"]["text"])
            texts += [f["text"] for f in block.get("fields", [])]
        elif block["type"] == "context":
            texts += [e["text"] for e in block["elements"]]
    return texts


def assert_inert(payload: dict[str, Any]) -> None:
    """No control sequence (``<…>``: mentions, channel pings, links) and no stray code fence."""
    assert slack_problems(payload) == []
    for text in mrkdwn_texts(payload):
        assert "<" not in text and ">" not in text, text
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), text  # every & escaped
        assert text.count("```") in (0, 2), text
        if text.count("```") == 2:
            assert text.startswith("```") and text.endswith("```") and "`" not in text[3:-3], text


def drift(field: DriftedField) -> DriftSummary:
    return DriftSummary("prod", SHA, (ObjectDrift(API, CHANGED, (field,)),))


@pytest.mark.parametrize("hostile", HOSTILE)
def test_drift_values_managers_and_paths_from_the_cluster_are_inert(hostile: str) -> None:
    field = DriftedField(f"/metadata/annotations/{hostile}", hostile, f"x{hostile}", hostile, "", False)
    payload = slack_message(drift(field))
    assert_inert(payload)
    line = payload["blocks"][2]["text"]["text"].splitlines()[1]
    assert line.count("`") == 8  # path, manager, old, new: four spans, none broken out of
    assert generic_webhook_payload(drift(field))["objects"][0]["fields"][0]["manager"] == hostile  # JSON: as it is


def test_the_generic_webhook_keeps_text_as_it_is() -> None:
    field = DriftedField("/data/x", ALL, "y", "kubectl-edit", "", False)
    payload = generic_webhook_payload(drift(field))
    assert payload["objects"][0]["fields"][0]["old"] == ALL
    assert "&lt;" not in payload["text"]


def test_an_error_quoting_a_manifest_is_inert_in_slack_and_whole_in_the_payload() -> None:
    error = f"environments/prod/{ALL}.yaml: Deployment {ALL}: invalid value"
    message = failure_message(FailureSummary("prod", SHA, "sync", "RenderFailed", error))
    assert_inert(message.slack)
    assert message.webhook["error"] == error


def test_a_long_error_is_cut_in_slack_never_inside_an_escape_and_to_4000_characters_in_the_payload() -> None:
    for pad in range(4):  # the cut lands on each character of "&amp;" in turn
        error = "x" * pad + "&<>" * 5000
        message = failure_message(FailureSummary("prod", SHA, "sync", "ApplyFailed", error))
        assert_inert(message.slack)
        block = message.slack["blocks"][-1]["text"]["text"]
        assert len(block) <= SLACK_SECTION_LIMIT and block.endswith("…```")
        assert re.fullmatch(r"```x*(&amp;|&lt;|&gt;)*…```", block), block[-20:]
        assert len(message.webhook["error"]) <= ERROR_LIMIT


def test_the_digest_is_inert_whatever_the_owners_are_called() -> None:
    field = DriftedField("/spec/replicas", 1, 2, ALL, "2024-05-01T10:00:00Z", False)
    env = DigestEnvironment("prod", SHA, (ObjectDrift(API, CHANGED, (field,)),))
    message = digest_message("2024-05-04T09:00:00+00:00", datetime(2024, 5, 4, 12, tzinfo=UTC), [env])
    assert message is not None
    assert_inert(message.slack)


def test_the_helpers() -> None:
    assert esc("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert code("a`b\nc<d>") == "a'b c&lt;d&gt;"
    assert code_block("`x`", 100) == "```'x'```"
    assert code_block("a" * 200, 20) == "```" + "a" * 13 + "…```"
