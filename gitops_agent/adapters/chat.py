"""Chat messages to a Slack incoming webhook and a generic JSON webhook.

The adapter only posts: what to say and whether it is news is decided in the core
(``core.chat_report``, ``core.chat_failure``, ``core.chat_digest``) and remembered in the cluster
(``cluster.chat_memory``) by ``gitops_agent.chat_reporting``. Each destination is posted to on its
own (``send``), so a post that reached Slack is never repeated because the generic webhook failed.

Webhook URLs are credentials (anyone holding one can post to the channel): they appear in no
message or log line. That is also why requests go straight to an httpx transport rather than
through ``httpx.Client``, whose INFO log line carries every request's URL. Posting is bounded
(``CHAT_RETRY``: three tries, ten seconds in all): a chat outage is a ``ReportError`` quickly, never
a stuck pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from gitops_agent import __version__
from gitops_agent.adapters import http_retry
from gitops_agent.adapters.http_retry import RetryPolicy, Timing
from gitops_agent.core.chat_report import ChatMessage
from gitops_agent.errors import ReportError

log = logging.getLogger(__name__)

CHAT_RETRY = RetryPolicy(
    attempts=3, base_delay=0.5, max_delay=2.0, max_wait=5.0, budget=10.0, secondary_wait=5.0, timeout=5.0
)
USER_AGENT = f"gitops-agent/{__version__}"
#: how much of a refusal's body is quoted (Slack answers with a word such as ``invalid_blocks``)
QUOTE_LIMIT = 200


#: destination ids (the chat memory's keys) and their names in messages and logs
SLACK, WEBHOOK = "slack", "webhook"
_LABELS = {SLACK: "Slack webhook", WEBHOOK: "chat webhook"}


@dataclass(frozen=True)
class _Destination:
    id: str
    label: str  # for messages and logs: never the URL
    url: str = field(repr=False)
    payload: Callable[[ChatMessage], dict[str, Any]] = field(repr=False)


class ChatNotifier:
    """Posts chat messages to a Slack incoming webhook and/or a generic JSON webhook."""

    def __init__(
        self,
        *,
        slack_webhook_url: str | None = None,
        webhook_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy = CHAT_RETRY,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        self._destinations = {
            key: _Destination(key, _LABELS[key], url.strip(), payload)
            for key, url, payload in (
                (SLACK, slack_webhook_url, _slack_payload),
                (WEBHOOK, webhook_url, _webhook_payload),
            )
            if url and url.strip()
        }
        self._transport = transport or httpx.HTTPTransport()
        defaults = Timing()
        self._timing = Timing(clock or defaults.clock, sleep or defaults.sleep, random or defaults.random)
        self._retry = retry

    @property
    def configured(self) -> bool:
        return bool(self._destinations)

    def close(self) -> None:
        self._transport.close()

    @property
    def destinations(self) -> tuple[str, ...]:
        """The ids of the configured destinations (``slack``, ``webhook``)."""
        return tuple(self._destinations)

    def label(self, destination: str) -> str:
        return _LABELS[destination]

    def send(self, destination: str, message: ChatMessage) -> None:
        """Posts ``message`` to one destination; ``ReportError`` when it could not."""
        dest = self._destinations[destination]
        self._post(dest, dest.payload(message), message.what)

    def post(self, message: ChatMessage) -> None:
        """Sends ``message`` to every destination now (a test message); raises ``ReportError``
        after trying every destination when any post failed."""
        errors = []
        for destination in self._destinations:
            try:
                self.send(destination, message)
            except ReportError as exc:
                errors.append(str(exc))
        if errors:
            raise ReportError("; ".join(errors))

    def _post(self, dest: _Destination, payload: dict[str, Any], what: str) -> None:
        def attempt(timeout: float) -> httpx.Response:
            request = httpx.Request(
                "POST",
                dest.url,
                json=payload,
                headers={"User-Agent": USER_AGENT},
                extensions={"timeout": httpx.Timeout(timeout).as_dict()},
            )
            response = self._transport.handle_request(request)
            try:
                response.read()
            finally:
                response.close()
            return response

        response = http_retry.send(attempt, label=dest.label, policy=self._retry, timing=self._timing, hide_cause=True)
        if response.status_code >= 300:
            raise ReportError(_refusal(dest, response))
        log.info("%s: %s posted", dest.label, what)


def _slack_payload(message: ChatMessage) -> dict[str, Any]:
    return message.slack


def _webhook_payload(message: ChatMessage) -> dict[str, Any]:
    return message.webhook


def _refusal(dest: _Destination, response: httpx.Response) -> str:
    """``Slack webhook: refused the message (400 invalid_blocks)`` with what to check."""
    said = " ".join(response.text.split())[:QUOTE_LIMIT].replace(dest.url, "***")
    words = f"{dest.label}: refused the message ({response.status_code} {said})".replace(" )", ")")
    if response.status_code in (401, 403, 404, 410):
        words += "; the webhook URL is no longer valid (check the file chat: points to)"
    return words
