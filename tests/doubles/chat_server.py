"""A loopback stand-in for a Slack incoming webhook and a generic JSON webhook.

The Slack side answers as Slack does: ``200 ok`` (text) for a message it accepts, ``400
invalid_blocks`` or ``invalid_payload`` for one it does not (Block Kit limits: header 150
characters, section text 3,000, at most 10 fields of 2,000, at most 50 blocks; a ``text``
fallback), ``404 no_service`` for an unknown URL. A refused message is also a violation: the
tests assert there are none. The generic side accepts any JSON object with ``202``.
Faults are scripted with ``inject`` (``tests.doubles.loopback``).
"""

from __future__ import annotations

import secrets
from typing import Any

from tests.doubles.loopback import LoopbackServer, Recorded, Reply

HEADER_LIMIT, SECTION_LIMIT, FIELD_LIMIT, MAX_FIELDS, MAX_BLOCKS = 150, 3000, 2000, 10, 50


class ChatServer(LoopbackServer):
    """``with ChatServer() as chat:`` then post to ``chat.slack_url`` / ``chat.webhook_url``."""

    def __init__(self) -> None:
        super().__init__()
        # the secret part of each URL, as a real webhook has one
        self.slack_path = f"/services/T00000000/B00000000/{secrets.token_urlsafe(18)}"
        self.webhook_path = f"/hooks/drift/{secrets.token_urlsafe(18)}"
        self.slack_messages: list[dict[str, Any]] = []
        self.webhook_payloads: list[dict[str, Any]] = []

    @property
    def slack_url(self) -> str:
        return self.url + self.slack_path

    @property
    def webhook_url(self) -> str:
        return self.url + self.webhook_path

    def handle(self, request: Recorded) -> Reply:
        if request.method != "POST":
            return _text(405, "invalid_method")
        try:
            payload = request.json()
        except ValueError:
            payload = None
        if request.path == self.slack_path:
            return self._slack(request, payload)
        if request.path == self.webhook_path:
            if not isinstance(payload, dict):
                self.violate(f"generic webhook: body is not a JSON object: {request.body[:100]!r}")
                return _text(400, "expected a JSON object")
            self.webhook_payloads.append(payload)
            return Reply(202)
        return _text(404, "no_service")

    def _slack(self, request: Recorded, payload: Any) -> Reply:
        if not request.headers.get("content-type", "").startswith("application/json"):
            self.violate(f"Slack: content-type {request.headers.get('content-type')!r}")
        problems = slack_problems(payload)
        if problems:
            self.violate("Slack: " + "; ".join(problems))
            return _text(400, "invalid_payload" if not isinstance(payload, dict) else "invalid_blocks")
        self.slack_messages.append(payload)
        return _text(200, "ok")


def slack_problems(payload: Any) -> list[str]:
    """Why Slack would refuse this incoming-webhook payload (empty: it would post it)."""
    if not isinstance(payload, dict):
        return ["not a JSON object"]
    problems = [] if payload.get("text") else ["no text fallback"]
    blocks = payload.get("blocks", [])
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"{len(blocks)} blocks (at most {MAX_BLOCKS})")
    for i, block in enumerate(blocks):
        problems += [f"block {i}: {p}" for p in _block_problems(block)]
    return problems


def _block_problems(block: dict[str, Any]) -> list[str]:
    kind, text = block.get("type"), (block.get("text") or {}).get("text", "")
    if kind == "header":
        return [f"header of {len(text)} characters"] if len(text) > HEADER_LIMIT or not text else []
    if kind == "section":
        fields = block.get("fields", [])
        out = [f"section text of {len(text)} characters"] if len(text) > SECTION_LIMIT else []
        out += [f"{len(fields)} fields"] if len(fields) > MAX_FIELDS else []
        out += [f"a field of {len(f['text'])} characters" for f in fields if len(f.get("text", "")) > FIELD_LIMIT]
        return out
    if kind == "context":
        return [] if block.get("elements") else ["context without elements"]
    return [f"unexpected block type {kind!r}"]


def _text(status: int, body: str) -> Reply:
    return Reply(status, body.encode(), content_type="text/plain; charset=utf-8")
