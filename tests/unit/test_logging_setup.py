"""Logging: JSON lines with environment and commit, readable text, and no credentials, ever."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from gitops_agent.logging_setup import REDACTED, log_context, redact, set_commit, setup_logging

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    yield out
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abcdefghijklmnop.qrstuv", "abcdefghijklmnop"),
        ("token ghp_0123456789abcdefghijABCDEFGHIJ012345 refused", "ghp_0123456789abcdefghij"),
        ("installation token ghs_16C7e42F292c6912E7710c838347Ae178B4a", "ghs_16C7e42F292c6912E7710c838347Ae178B4a"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github_pat_11ABCDEFG"),
        ("posting to https://hooks.slack.com/services/T000/B000/XXXXXXXX failed", "T000/B000/XXXXXXXX"),
        ("posting to https://discord.com/api/webhooks/123/abc-def failed", "123/abc-def"),
        ("POST https://chat.example.com/v1/webhook/3f2a9c8d: 500", "3f2a9c8d"),
        ("cloning https://x-access-token:s3cr3t@github.com/o/r.git", "s3cr3t"),
        ("sa token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnbmF0dXJl used", "eyJhbGciOiJSUzI1NiJ9"),
        ("password=hunter2 in env", "hunter2"),
        ('{"token": "abc123def"}', "abc123def"),
    ],
    ids=["bearer", "ghp", "ghs", "github-pat", "slack", "discord", "generic-webhook", "url-credentials", "jwt",
         "password", "json-token"],
)  # fmt: skip
def test_redact_removes_credentials(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert REDACTED in out


@pytest.mark.parametrize(
    "text",
    [
        "prod @ 1a2b3c4d5e6f: applied (2 created)",
        "Deployment/prod/web: token refreshed",
        "no webhook secret configured",
    ],
)
def test_redact_leaves_ordinary_lines_alone(text: str) -> None:
    assert redact(text) == text


def test_json_lines_carry_environment_and_commit_of_the_pass(captured: io.StringIO) -> None:
    setup_logging("json", stream=captured)
    log = logging.getLogger("gitops_agent.test")
    with log_context(environment="prod"):
        log.info("fetching")
        set_commit(COMMIT)
        log.info("applied %d objects", 3, extra={"duration_s": 1.5})
    log.info("outside")
    first, second, third = (json.loads(line) for line in captured.getvalue().splitlines())
    assert first["environment"] == "prod" and "commit" not in first
    assert second["message"] == "applied 3 objects"
    assert (second["environment"], second["commit"], second["duration_s"]) == ("prod", COMMIT, 1.5)
    assert second["level"] == "info" and second["logger"] == "gitops_agent.test"
    assert "environment" not in third


def test_secrets_in_arguments_and_tracebacks_are_redacted(captured: io.StringIO) -> None:
    setup_logging("json", stream=captured)
    log = logging.getLogger("gitops_agent.test")
    token = "ghp_" + "a1" * 18
    log.warning("GitHub refused %s", token)
    try:
        raise RuntimeError(f"Authorization: Bearer {token}")
    except RuntimeError:
        log.exception("report failed")
    text = captured.getvalue()
    assert token not in text
    assert json.loads(text.splitlines()[1])["exception"].startswith("Traceback")


def test_text_format_for_people(captured: io.StringIO) -> None:
    setup_logging("text", stream=captured)
    with log_context(environment="dev", commit=COMMIT):
        logging.getLogger("x").info("applied")
    assert "INFO  [dev@0123456789ab] applied" in captured.getvalue()


def test_format_defaults_to_json_off_a_terminal(captured: io.StringIO) -> None:
    setup_logging(None, stream=captured)
    logging.getLogger("x").info("hello")
    assert json.loads(captured.getvalue())["message"] == "hello"
