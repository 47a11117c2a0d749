"""Drift reports to chat: Slack incoming webhooks and generic JSON webhooks.

``ChatNotifier.report_drift`` is called after every drift check; ``core.report.decide_chat``
decides, per destination, whether this is news (drift appeared or changed, or was resolved), so a
channel gets one message when drift appears and one when it is gone, however many passes see it
in between. A destination remembers a fingerprint only once its post succeeded, so a failed post is
tried again on the next pass, and a post that reached Slack is never repeated because the generic
webhook failed. The memory is per process: after a restart, drift still present is announced once.

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
from gitops_agent.core.chat_report import ChatKind, DriftSummary, decide_chat, generic_webhook_payload, slack_message
from gitops_agent.errors import ReportError

log = logging.getLogger(__name__)

CHAT_RETRY = RetryPolicy(
    attempts=3, base_delay=0.5, max_delay=2.0, max_wait=5.0, budget=10.0, secondary_wait=5.0, timeout=5.0
)
USER_AGENT = f"gitops-agent/{__version__}"
#: how much of a refusal's body is quoted (Slack answers with a word such as ``invalid_blocks``)
QUOTE_LIMIT = 200


@dataclass(frozen=True)
class _Destination:
    label: str  # for messages and logs: never the URL
    url: str = field(repr=False)
    build: Callable[[DriftSummary, ChatKind], dict[str, Any]] = field(repr=False)


class ChatNotifier:
    """Posts drift reports to a Slack incoming webhook and/or a generic JSON webhook."""

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
        self._destinations = tuple(
            _Destination(label, url.strip(), build)
            for label, url, build in (
                ("Slack webhook", slack_webhook_url, slack_message),
                ("chat webhook", webhook_url, generic_webhook_payload),
            )
            if url and url.strip()
        )
        self._transport = transport or httpx.HTTPTransport()
        defaults = Timing()
        self._timing = Timing(clock or defaults.clock, sleep or defaults.sleep, random or defaults.random)
        self._retry = retry
        self._fingerprints: dict[tuple[str, str], str | None] = {}  # (destination, environment)

    @property
    def configured(self) -> bool:
        return bool(self._destinations)

    def close(self) -> None:
        self._transport.close()

    def report_drift(self, summary: DriftSummary) -> dict[str, ChatKind]:
        """Tells each destination what is new about this environment's unexpected drift; returns
        what was sent where (``{"Slack webhook": "appeared"}``, empty when nothing was news).
        Raises ``ReportError`` after trying every destination when any post failed."""
        sent: dict[str, ChatKind] = {}
        errors = []
        for dest in self._destinations:
            key = (dest.label, summary.environment)
            decision = decide_chat(self._fingerprints.get(key), summary)
            if decision.send is None:
                continue
            try:
                self._post(dest, dest.build(summary, decision.send), summary.environment)
            except ReportError as exc:
                errors.append(str(exc))
                continue
            self._fingerprints[key] = decision.fingerprint
            sent[dest.label] = decision.send
        if errors:
            raise ReportError("; ".join(errors))
        return sent

    def post(self, summary: DriftSummary, kind: ChatKind) -> None:
        """Sends ``kind`` for ``summary`` to every destination now, remembering nothing (for a
        test message, or a caller that keeps its own fingerprints)."""
        errors = []
        for dest in self._destinations:
            try:
                self._post(dest, dest.build(summary, kind), summary.environment)
            except ReportError as exc:
                errors.append(str(exc))
        if errors:
            raise ReportError("; ".join(errors))

    def _post(self, dest: _Destination, payload: dict[str, Any], environment: str) -> None:
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
        log.info("%s: drift report for %s posted", dest.label, environment)


def _refusal(dest: _Destination, response: httpx.Response) -> str:
    """``Slack webhook: refused the message (400 invalid_blocks)`` with what to check."""
    said = " ".join(response.text.split())[:QUOTE_LIMIT].replace(dest.url, "***")
    words = f"{dest.label}: refused the message ({response.status_code} {said})".replace(" )", ")")
    if response.status_code in (401, 403, 404, 410):
        words += "; the webhook URL is no longer valid (check the file chat: points to)"
    return words
