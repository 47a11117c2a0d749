"""Who a pull request preview trusts, pure: previews run the PR's files against the live cluster.

A preview renders the pull request's head and dry-runs it against the live environments, then
posts what it saw on the pull request, where anyone reading the PR sees it. So a PR is previewed on
its own only when it cannot be anyone's: its head branch is in the repository itself (only people
with write access push there) or its author has write access (admin, maintain or write, the rule
``core.approval.Permission.may_write`` applies to approvals). Any other PR (from a fork, or by an
author with read or triage access) gets a ``pending`` status per environment saying a maintainer can
run it: a ``/preview`` comment by someone with write access (that previews the PR's current head,
while it is open) or ``gitops-agent preview --pr N``.

Payload fields are the sender's to shape: logins and shas are checked against GitHub's formats and
text quoted back to people only inside a code span (``core.approval.quoted``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gitops_agent.core.approval import Permission, Reason, Refusal, person, quoted
from gitops_agent.core.webhook import PullRequestEvent

_COMMAND = re.compile(r"/preview[ \t]*")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
#: GitHub cuts a status description at 140 characters
_DESCRIPTION = "not previewed: from a fork or an author without write access; a maintainer can comment /preview"


@dataclass(frozen=True)
class PreviewCommand:
    """A person asks for a preview of pull request ``number`` (its current head)."""

    number: int
    login: str


@dataclass(frozen=True)
class OpenPull:
    """A pull request as GitHub has it now: still open, at ``head_sha``, into ``base_ref``."""

    number: int
    head_sha: str
    base_ref: str


def trusted_by_repository(event: PullRequestEvent) -> bool:
    """Previewed without asking GitHub anything: the head is a branch of the repository itself."""
    return event.same_repository


def trusted_author(permission: Permission) -> bool:
    """The author may write to the repository, so could have pushed the head there themselves."""
    return permission.may_write


def waiting_description(number: int) -> str:
    """The ``pending`` status of an environment an untrusted pull request was not previewed for."""
    text = f"{_DESCRIPTION} (or run gitops-agent preview --pr {number})"
    return text if len(text) <= 140 else _DESCRIPTION


def valid_sha(sha: str) -> bool:
    return bool(_SHA.fullmatch(sha))


def parse_preview_comment(data: Any) -> PreviewCommand | Refusal | None:
    """A ``/preview`` comment on a pull request; None for any other comment (or action)."""
    if not isinstance(data, dict) or data.get("action") != "created":
        return None
    comment, issue = data.get("comment"), data.get("issue")
    if not isinstance(comment, dict) or not isinstance(issue, dict):
        return None
    body = comment.get("body")
    lines = body.strip().splitlines() if isinstance(body, str) else []
    if not lines or _COMMAND.fullmatch(lines[0].strip()) is None:
        return None  # a comment, not a command
    number = issue.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
        return Refusal(Reason.MALFORMED, "the comment's issue has no number")
    if not isinstance(issue.get("pull_request"), dict):
        return Refusal(Reason.MALFORMED, "`/preview` previews a pull request, not an issue", number)
    login = person(data.get("sender"))
    if isinstance(login, Refusal):
        return Refusal(login.reason, login.message, number)
    return PreviewCommand(number, login)


def authorise_command(command: PreviewCommand, permission: Permission) -> Refusal | None:
    """Refused unless the commenter may write to the repository (admin, maintain, write)."""
    if permission.may_write:
        return None
    role = permission.role_name or permission.permission
    return Refusal(
        Reason.UNAUTHORISED,
        f"@{command.login} has {quoted(role)} access; `/preview` needs write, maintain or admin",
        command.number,
    )


def open_pull(command: PreviewCommand, pull: Any) -> OpenPull | Refusal:
    """The pull request GitHub answered for ``command``: previewed only while open, at its head."""
    number = command.number
    if not isinstance(pull, dict) or pull.get("state") != "open":
        return Refusal(Reason.STALE, f"pull request #{number} is not open", number)
    head, base = pull.get("head"), pull.get("base")
    sha = head.get("sha") if isinstance(head, dict) else None
    ref = base.get("ref") if isinstance(base, dict) else None
    if not isinstance(sha, str) or not valid_sha(sha) or not isinstance(ref, str) or not ref:
        return Refusal(Reason.MALFORMED, f"pull request #{number} has no head commit or base branch", number)
    return OpenPull(number, sha, ref)


def refusal_reply(message: str) -> str:
    """A reply to a refused ``/preview`` (``message`` is the agent's words, the sender's ``quoted``)."""
    return f"gitops-agent: not previewed: {message}"
