"""GitHub webhooks, whatever serves HTTP: a signed delivery becomes a request to the daemon.

``Webhooks.handle`` takes a delivery's headers and raw body and returns the answer (an HTTP status
and a JSON body); the HTTP server only reads and caps the body, and asks ``Webhooks.admit`` first so
that an unsigned delivery is refused before its body is read. The signature is checked before
anything in the body is parsed. Nothing here runs a pass: a webhook only asks the daemon for one,
which coalesces a flood of pushes.

    push                    fetch and pass the environments following the pushed branch
    pull_request            (opened, synchronize, …) preview the PR head, if its author is trusted
                            (``preview_gate``), and deploy it into its PR environments
                            (``pr_environments``); closed: remove those, drop its head from the cache
    issue_comment           ``/preview``: a maintainer previews a PR (``preview_gate``)
    check_run, issue_comment  approvals (``gitops_agent.approvals``)

Webhooks are refused (503) when no secret is configured: an unauthenticated endpoint that makes
the agent fetch and apply is a denial-of-service lever, and GitHub always lets you set a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol

from gitops_agent.approvals import APPROVAL_EVENTS, Approvals
from gitops_agent.core.pr_env import DEPLOY_ACTIONS
from gitops_agent.core.webhook import (
    PREVIEW_ACTIONS,
    SIGNATURE_PREFIX,
    parse_pull_request,
    parse_push,
    verify_signature,
)
from gitops_agent.preview_gate import PreviewGate
from gitops_agent.scheduler import PushOutcome

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/github"
MAX_WEBHOOK_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB


class WebhookDaemon(Protocol):
    """What webhooks ask of the scheduler."""

    @property
    def leading(self) -> bool: ...

    def push(self, ref: str) -> PushOutcome: ...

    def preview(self, number: int, head_sha: str, base_ref: str) -> bool: ...

    def pull_request_closed(self, number: int) -> bool: ...

    def deploy_pull_request(self, number: int, head_sha: str, base_ref: str) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class WebhookAnswer:
    status: HTTPStatus
    body: dict[str, Any] = field(default_factory=dict)


class Webhooks:
    """Answers GitHub's deliveries for one daemon; ``secret`` None refuses them all."""

    def __init__(self, daemon: WebhookDaemon, *, secret: bytes | None, approvals: Approvals | None = None) -> None:
        self.daemon = daemon
        self.secret = secret
        #: None without a github: section (approvals need GitHub to check who approves)
        self.approvals = approvals
        #: which pull requests are previewed: with approvals' GitHub, authors' permissions are checked;
        #: without, only heads in the repository itself are trusted
        self.previews = PreviewGate(
            approvals.config if approvals else None,
            daemon,
            approvals.github if approvals else None,
            approvals.writes if approvals else None,
        )

    def admit(self, headers: Mapping[str, str]) -> WebhookAnswer | None:
        """The answer when the headers alone decide it (no secret configured, no signature), so the
        server need not read the body; None when the body must be read and verified."""
        delivery = headers.get("x-github-delivery", "?")
        if self.secret is None:
            log.error("webhook %s refused: no webhook secret configured (set server.webhook_secret_file)", delivery)
            return WebhookAnswer(
                HTTPStatus.SERVICE_UNAVAILABLE, {"error": "webhooks are disabled: no secret configured"}
            )
        if not headers.get("x-hub-signature-256", "").startswith(SIGNATURE_PREFIX):
            return self._unsigned(delivery)
        return None

    def handle(self, headers: Mapping[str, str], body: bytes) -> WebhookAnswer:
        """``headers`` by lower-case name."""
        delivery = headers.get("x-github-delivery", "?")
        refused = self.admit(headers)
        if refused is not None:
            return refused
        assert self.secret is not None  # admit refuses without one
        if not verify_signature(self.secret, body, headers.get("x-hub-signature-256")):
            return self._unsigned(delivery)
        event = headers.get("x-github-event", "")
        if event == "push":
            return self._push(body, delivery)
        if event == "pull_request":
            return self._pull_request(body, delivery)
        if event == "issue_comment" and (asked := self.previews.comment(body, delivery)) is not None:
            return WebhookAnswer(HTTPStatus(asked.status), {"event": event, **asked.body})
        if event in APPROVAL_EVENTS:
            return self._approval(event, body, delivery)
        return WebhookAnswer(HTTPStatus.ACCEPTED, {"event": event, "ignored": True})

    def _unsigned(self, delivery: str) -> WebhookAnswer:
        log.warning("webhook %s refused: missing or wrong X-Hub-Signature-256", delivery)
        return WebhookAnswer(HTTPStatus.UNAUTHORIZED, {"error": "missing or invalid X-Hub-Signature-256"})

    def _push(self, body: bytes, delivery: str) -> WebhookAnswer:
        push = parse_push(body)
        if push is None:
            return WebhookAnswer(HTTPStatus.BAD_REQUEST, {"error": "not a push payload: no ref"})
        outcome = self.daemon.push(push.ref)
        names = ", ".join(outcome.environments) or "no environment"
        via = " (relayed to another replica)" if outcome.relayed else ""
        log.info("webhook %s: push to %s triggers %s%s", delivery, push.ref, names, via)
        answer = {"event": "push", "ref": push.ref, "environments": list(outcome.environments)}
        return WebhookAnswer(HTTPStatus.ACCEPTED, {**answer, "leader": self.daemon.leading, "relayed": outcome.relayed})

    def _pull_request(self, body: bytes, delivery: str) -> WebhookAnswer:
        event = parse_pull_request(body)
        if event is None:
            return WebhookAnswer(HTTPStatus.BAD_REQUEST, {"error": "not a pull_request payload"})
        if event.action == "closed":  # its fetched head leaves the git cache (git_hygiene)
            dropped = self.daemon.pull_request_closed(event.number)
            return WebhookAnswer(
                HTTPStatus.ACCEPTED, {"event": "pull_request", "number": event.number, "closed": dropped}
            )
        if event.action not in PREVIEW_ACTIONS:
            return WebhookAnswer(
                HTTPStatus.ACCEPTED, {"event": "pull_request", "action": event.action, "ignored": True}
            )
        answer = self.previews.pull_request(event, delivery)
        out = answer.body
        # PR environments run the head in the cluster: only for a PR the preview rule trusts
        if answer.trusted and event.action in DEPLOY_ACTIONS:
            deployed = self.daemon.deploy_pull_request(event.number, event.head_sha, event.base_ref)
            if deployed:
                log.info("webhook %s: pull request #%d: PR environments of %s queued", delivery, event.number,
                         ", ".join(deployed))  # fmt: skip
                out = {**out, "pr_environments": list(deployed)}
        return WebhookAnswer(HTTPStatus(answer.status), out)

    def _approval(self, event: str, body: bytes, delivery: str) -> WebhookAnswer:
        if self.approvals is None:
            log.info("webhook %s: %s ignored: approvals need a github: section", delivery, event)
            why = "approvals need a github: section in the agent's config"
            return WebhookAnswer(HTTPStatus.ACCEPTED, {"event": event, "ignored": True, "why": why})
        answer = self.approvals.handle(event, body, delivery)
        return WebhookAnswer(HTTPStatus(answer.status), {"event": event, **answer.body})
