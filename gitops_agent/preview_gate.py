"""Which pull requests get previewed, the shell: ``core.preview_trust`` decides, this asks GitHub.

A ``pull_request`` delivery is queued for a preview when its head is in the repository itself, or
its author may write to it (GitHub's collaborator permission, as approvals check it). Any other gets
a ``pending`` status per environment on its head, and nothing else: nothing is fetched, rendered or
dry-run, and no comment is posted. A ``/preview`` comment by someone with write access queues the
pull request's current head, while it is open, whoever wrote it. What GitHub is told goes through
the approvals' writes thread, so a webhook is answered without waiting on it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gitops_agent.approvals import GitHubWrites
from gitops_agent.config import Config
from gitops_agent.core.approval import HTTP_STATUS, Permission, Reason, Refusal, parse_permission
from gitops_agent.core.preview_trust import (
    OpenPull,
    PreviewCommand,
    authorise_command,
    open_pull,
    parse_preview_comment,
    refusal_reply,
    trusted_author,
    trusted_by_repository,
    valid_sha,
    waiting_description,
)
from gitops_agent.core.webhook import PullRequestEvent
from gitops_agent.errors import GitOpsError
from gitops_agent.preview import STATUS_CONTEXT

log = logging.getLogger(__name__)


class PreviewDaemon(Protocol):
    def preview(self, number: int, head_sha: str, base_ref: str) -> bool: ...


class TrustGitHub(Protocol):
    """What the gate asks GitHub (``adapters.github.GitHubClient`` provides it)."""

    def collaborator_permission(self, username: str) -> dict[str, Any]: ...

    def get_pull(self, number: int) -> dict[str, Any]: ...

    def create_status(
        self, sha: str, *, state: str, context: str, description: str, target_url: str | None = None
    ) -> dict[str, Any]: ...

    def create_issue_comment(self, number: int, body: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class GateAnswer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    #: the pull request passed the trust rule on its own (what PR environments ask too)
    trusted: bool = False


class PreviewGate:
    """Lets trusted pull requests through to the daemon's previews; ``github`` None trusts only
    heads in the repository itself (nothing to ask permissions of)."""

    def __init__(
        self,
        config: Config | None,
        daemon: PreviewDaemon,
        github: TrustGitHub | None,
        writes: GitHubWrites | None,
    ) -> None:
        self.config = config
        self.daemon = daemon
        self.github = github
        self.writes = writes

    def pull_request(self, event: PullRequestEvent, delivery: str) -> GateAnswer:
        """A ``pull_request`` delivery whose action asks for a (new) preview."""
        answer = {"event": "pull_request", "number": event.number}
        why = self._distrust(event)
        if why:
            log.info("webhook %s: pull request #%d not previewed: %s", delivery, event.number, why)
            self._tell_waiting(event)
            return GateAnswer(202, {**answer, "preview": False, "trusted": False, "why": why})
        queued = self.daemon.preview(event.number, event.head_sha, event.base_ref)
        log.info("webhook %s: pull request #%d at %s: preview %s", delivery, event.number, event.head_sha[:12],
                 "queued" if queued else "not configured")  # fmt: skip
        return GateAnswer(202, {**answer, "preview": queued}, trusted=True)

    def comment(self, body: bytes, delivery: str) -> GateAnswer | None:
        """An ``issue_comment`` delivery: None unless it is a ``/preview`` command."""
        try:
            command = parse_preview_comment(json.loads(body))
        except ValueError:
            return None
        if command is None:
            return None
        if isinstance(command, Refusal):
            return self._refused(command, delivery)
        checked = self._check_command(command)
        if isinstance(checked, Refusal):
            return self._refused(checked, delivery)
        queued = self.daemon.preview(checked.number, checked.head_sha, checked.base_ref)
        log.info("webhook %s: /preview of #%d at %s by %s: %s", delivery, checked.number, checked.head_sha[:12],
                 command.login, "queued" if queued else "not configured")  # fmt: skip
        body_out = {"accepted": queued, "preview": queued, "number": checked.number, "head": checked.head_sha}
        return GateAnswer(202, {**body_out, "requested_by": command.login})

    # --- the checks -----------------------------------------------------------------------------

    def _distrust(self, event: PullRequestEvent) -> str:
        """Why the pull request is not previewed on its own ("" when it is)."""
        if trusted_by_repository(event):
            return ""
        if self.github is None:
            return "its head is not in this repository, and GitHub is not configured to check its author"
        if not event.author:
            return "its author is not a person's GitHub login"
        permission = self._permission(event.author)
        if permission is not None and trusted_author(permission):
            return ""
        return f"its head is in another repository and @{event.author} has no write access"

    def _check_command(self, command: PreviewCommand) -> OpenPull | Refusal:
        """Cheapest first: who asks, then the pull request as GitHub has it now."""
        login, number = command.login, command.number
        if self.github is None:
            return Refusal(Reason.UNAVAILABLE, "previews need a github: section in the agent's config", number)
        permission = self._permission(login)
        if permission is None:
            return Refusal(Reason.UNAUTHORISED, f"could not check @{login}'s permission on GitHub", number)
        refused = authorise_command(command, permission)
        if refused is not None:
            return refused
        try:
            pull = self.github.get_pull(number)
        except GitOpsError as exc:
            log.warning("/preview on #%d: pull request not read: %s", number, exc)
            return Refusal(Reason.UNAVAILABLE, f"pull request #{number} could not be read", number)
        return open_pull(command, pull)

    def _permission(self, login: str) -> Permission | None:
        assert self.github is not None
        try:
            return parse_permission(self.github.collaborator_permission(login))
        except GitOpsError as exc:
            log.warning("preview: permission of %s not known: %s", login, exc)
            return None

    # --- what GitHub is told --------------------------------------------------------------------

    def _tell_waiting(self, event: PullRequestEvent) -> None:
        """A ``pending`` status per environment merging the PR would change (those following its
        base branch: which of them it really changes is not known without rendering it)."""
        github, writes, config = self.github, self.writes, self.config
        if github is None or writes is None or config is None or not valid_sha(event.head_sha):
            return
        names = [e.name for e in config.environments if config.branch_of(e) == event.base_ref]
        description = waiting_description(event.number)
        target_url = config.github.target_url if config.github else None
        for name in names:
            writes.submit(f"preview status of {name}", _status(github, event.head_sha, name, description, target_url))

    def _refused(self, refusal: Refusal, delivery: str) -> GateAnswer:
        log.warning("webhook %s: /preview refused (%s): %s", delivery, refusal.reason.value, refusal.message)
        github, writes = self.github, self.writes
        if (
            github is not None
            and writes is not None
            and refusal.pull_request
            and refusal.reason is not Reason.NOT_A_PERSON
        ):
            words, number = refusal_reply(refusal.message), refusal.pull_request
            writes.submit("preview refusal reply", lambda: _ignore(github.create_issue_comment(number, words)))
        body = {"accepted": False, "preview": False, "reason": refusal.reason.value, "message": refusal.message}
        return GateAnswer(HTTP_STATUS[refusal.reason], body)


def _status(github: TrustGitHub, sha: str, environment: str, description: str, url: str | None) -> Callable[[], None]:
    context = STATUS_CONTEXT.format(env=environment)
    return lambda: _ignore(github.create_status(sha, state="pending", context=context, description=description,
                                                target_url=url))  # fmt: skip


def _ignore(_: object) -> None:
    """GitHub's answer to a write the gate does not read."""
