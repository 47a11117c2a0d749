"""A human OK from GitHub, pure: webhook payloads read into approvals, and whether one is taken.

Two ways for a person to approve a ``manual`` environment's waiting commit:

- with a GitHub App, the agent puts a check run ``gitops-agent/<env> approval`` on the commit with
  an "Apply to <env>" button; a click sends a ``check_run`` webhook, action ``requested_action``;
- with a token (or an App), an ``/approve <env>`` comment on the pull request that brought the
  commit sends an ``issue_comment`` webhook, action ``created``.

Every field of a payload is the sender's to choose (a signed delivery proves only that GitHub sent
it): logins and shas are checked against GitHub's own formats, environments against the config,
and text quoted back to people only inside a code span (``quoted``), never as Markdown or a mention.
An approval is taken only from a person with write access (admin, maintain or write) for the
environment's current target commit; anything else is a ``Refusal`` saying why.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gitops_agent.core.webhook import LOGIN

#: the check run a waiting commit gets, one per environment
CHECK_NAME = "gitops-agent/{environment} approval"
#: the button's identifier (GitHub: at most 20 characters)
ACTION_ID = "apply"
LABEL_LIMIT, IDENTIFIER_LIMIT, ACTION_DESCRIPTION_LIMIT = 20, 20, 40
#: roles that may approve: GitHub's ``role_name`` (custom roles included) and legacy ``permission``
#: (where ``maintain`` reads as ``write``)
WRITE_ROLES = frozenset({"admin", "maintain", "write"})
#: a quoted value is cut to this many characters
QUOTE_LIMIT = 60

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_CHECK_NAME = re.compile(r"gitops-agent/(?P<environment>[^\s/]{1,253}) approval")
_COMMAND = re.compile(r"/approve(?:[ \t]+(?P<environment>\S+))?[ \t]*")


class Via(enum.StrEnum):
    CHECK_RUN = "check run"
    COMMENT = "comment"


class Reason(enum.StrEnum):
    """Why an approval changed nothing."""

    MALFORMED = "Malformed"  # the payload lacks what an approval needs
    NOT_A_PERSON = "NotAPerson"  # a bot, or a login GitHub would not issue
    UNKNOWN_ENVIRONMENT = "UnknownEnvironment"
    NOT_MANUAL = "NotManual"  # the environment applies new commits by itself
    UNAUTHORISED = "Unauthorised"  # no write access, or it could not be checked
    NOT_MERGED = "NotMerged"  # the pull request is not merged into the environment's branch
    STALE = "Stale"  # not the environment's current target commit
    UNAVAILABLE = "Unavailable"  # the agent cannot act now (not leading, repository not fetched)


@dataclass(frozen=True)
class Approval:
    """A person asks to apply ``commit`` to ``environment``. A comment names no commit: it is the
    pull request's merge commit (``merge_commit``), looked up once the request passed ``screen``."""

    environment: str
    login: str
    via: Via
    commit: str = ""
    pull_request: int = 0
    check_run_id: int = 0


@dataclass(frozen=True)
class Refusal:
    reason: Reason
    #: for logs, the HTTP answer and reply comments: the sender's text only ever ``quoted``
    message: str
    #: the pull request to reply on (comment approvals), 0 for none
    pull_request: int = 0


@dataclass(frozen=True)
class Permission:
    """``GET /repos/{owner}/{repo}/collaborators/{username}/permission``: ``permission`` is the
    legacy base role (admin, write, read, none), ``role_name`` the role itself (maintain, triage,
    or a custom role's name)."""

    permission: str
    role_name: str

    @property
    def may_write(self) -> bool:
        return self.permission in WRITE_ROLES or self.role_name in WRITE_ROLES


# --- check runs ----------------------------------------------------------------------------------


def check_name(environment: str) -> str:
    return CHECK_NAME.format(environment=environment)


def apply_action(environment: str) -> dict[str, str]:
    """The "Apply to <env>" button, within GitHub's limits (label 20, description 40 characters)."""
    label = f"Apply to {environment}"
    description = f"Apply this commit to {environment}"
    return {
        "label": label if len(label) <= LABEL_LIMIT else "Apply",
        "description": description if len(description) <= ACTION_DESCRIPTION_LIMIT else "Apply this commit",
        "identifier": ACTION_ID,
    }


def waiting_check_run(environment: str, commit: str, details_url: str | None) -> dict[str, Any]:
    """``POST …/check-runs``: the commit waits for a person, with the button that approves it."""
    body: dict[str, Any] = {
        "name": check_name(environment),
        "head_sha": commit,
        "external_id": environment,
        "status": "completed",
        "conclusion": "action_required",
        "output": {
            "title": f"Waiting for approval to apply to {environment}",
            "summary": (
                f"`{environment}` applies new commits only when a person says so. Someone with write access "
                f"can click **Apply to {environment}** (or run `gitops-agent sync --env {environment}`)."
            ),
        },
        "actions": [apply_action(environment)],
    }
    if details_url:
        body["details_url"] = details_url
    return body


def settled_check_run(environment: str, *, outcome: str, approved_by: str = "", newer: str = "") -> dict[str, Any]:
    """``PATCH …/check-runs/{id}`` once the waiting commit was applied, failed or superseded.
    ``outcome``: applied | failed | superseded. A failed apply keeps the button, to try again."""
    by = f" (approved by @{approved_by})" if approved_by else ""
    if outcome == "applied":
        conclusion, title, actions = "success", f"Applied to {environment}{by}", []
    elif outcome == "failed":
        conclusion, title, actions = "failure", f"Applying to {environment} failed{by}", [apply_action(environment)]
    else:
        conclusion, title, actions = "neutral", f"Superseded by {newer[:12] or 'a newer commit'}", []
    summary = title + ("; see the agent's /status and `gitops-agent history`" if outcome == "failed" else ".")
    return {"status": "completed", "conclusion": conclusion, "output": {"title": title, "summary": summary},
            "actions": actions}  # fmt: skip


# --- webhook payloads ----------------------------------------------------------------------------


def parse_check_run_action(data: Any) -> Approval | Refusal | None:
    """A click on "Apply to <env>"; None for any other ``check_run`` action (created, completed …)."""
    if not isinstance(data, dict) or data.get("action") != "requested_action":
        return None
    run, requested = data.get("check_run"), data.get("requested_action")
    if not isinstance(run, dict) or not isinstance(requested, dict):
        return Refusal(Reason.MALFORMED, "not a check_run requested_action payload")
    if requested.get("identifier") != ACTION_ID:
        return Refusal(Reason.MALFORMED, f"unknown action {quoted(requested.get('identifier'))}")
    name = _CHECK_NAME.fullmatch(_text(run.get("name")))
    if name is None:
        return Refusal(Reason.MALFORMED, f"check run {quoted(run.get('name'))} is not an approval of gitops-agent")
    sha, run_id = _text(run.get("head_sha")), _id(run.get("id"))
    if not _SHA.fullmatch(sha) or not run_id:
        return Refusal(Reason.MALFORMED, "the check run has no commit sha or id")
    login = person(data.get("sender"))
    if isinstance(login, Refusal):
        return login
    return Approval(name["environment"], login, Via.CHECK_RUN, commit=sha, check_run_id=run_id)


def parse_approve_comment(data: Any) -> Approval | Refusal | None:
    """An ``/approve <env>`` comment on a pull request; None for any other comment (or action)."""
    if not isinstance(data, dict) or data.get("action") != "created":
        return None
    comment, issue = data.get("comment"), data.get("issue")
    if not isinstance(comment, dict) or not isinstance(issue, dict):
        return None
    lines = _text(comment.get("body")).strip().splitlines()
    command = _COMMAND.fullmatch(lines[0].strip()) if lines else None
    if command is None:
        return None  # a comment, not a command
    number = _id(issue.get("number"))
    if not number:
        return Refusal(Reason.MALFORMED, "the comment's issue has no number")
    if not isinstance(issue.get("pull_request"), dict):
        return Refusal(
            Reason.MALFORMED, "approve on the pull request that changed the environment, not an issue", number
        )
    login = person(data.get("sender"))
    if isinstance(login, Refusal):
        return Refusal(login.reason, login.message, number)
    environment = command["environment"]
    if not environment:
        return Refusal(Reason.MALFORMED, "say which environment: `/approve <environment>`", number)
    return Approval(environment, login, Via.COMMENT, pull_request=number)


def parse_permission(data: Any) -> Permission:
    """The collaborator permission answer; anything unexpected reads as no permission."""
    if not isinstance(data, dict):
        return Permission("none", "")
    return Permission(_text(data.get("permission")) or "none", _text(data.get("role_name")))


# --- decisions -----------------------------------------------------------------------------------


def screen(approval: Approval, policies: Mapping[str, str]) -> Refusal | None:
    """Before asking GitHub anything: a known environment (``policies``: name → policy), ``manual``."""
    policy = policies.get(approval.environment)
    if policy is None:
        return _refuse(approval, Reason.UNKNOWN_ENVIRONMENT, f"no environment {quoted(approval.environment)}")
    if policy != "manual":
        return _refuse(
            approval,
            Reason.NOT_MANUAL,
            f"{approval.environment} is not manual (policy {policy}): it applies new commits by itself",
        )
    return None


def merge_commit(approval: Approval, pull: Any, branch: str) -> str | Refusal:
    """The commit a comment approves: the pull request's merge commit, once merged into ``branch``
    (the environment's). A merged pull request's ``merge_commit_sha`` is the commit on the branch."""
    number = approval.pull_request
    if not isinstance(pull, dict) or not (pull.get("merged") is True or pull.get("merged_at")):
        return _refuse(approval, Reason.NOT_MERGED, f"pull request #{number} is not merged yet")
    base = pull.get("base")
    if not isinstance(base, dict) or base.get("ref") != branch:
        return _refuse(
            approval,
            Reason.NOT_MERGED,
            f"pull request #{number} was not merged into {branch}, the branch {approval.environment} follows",
        )
    sha = _text(pull.get("merge_commit_sha"))
    if not _SHA.fullmatch(sha):
        return _refuse(approval, Reason.MALFORMED, f"pull request #{number} has no merge commit")
    return sha


def authorise(approval: Approval, permission: Permission) -> Refusal | None:
    """Refused unless the person may write to the repository (admin, maintain, write)."""
    if permission.may_write:
        return None
    role = permission.role_name or permission.permission
    return _refuse(
        approval,
        Reason.UNAUTHORISED,
        f"@{approval.login} has {quoted(role)} access; approving needs write, maintain or admin",
    )


def current(approval: Approval, target: str) -> Refusal | None:
    """Refused unless the commit is the environment's current target (not an old button, nor a
    commit a later push replaced)."""
    if approval.commit == target:
        return None
    now = target[:12] if target else "unknown"
    return _refuse(
        approval, Reason.STALE, f"{approval.commit[:12]} is not {approval.environment}'s current target (now {now})"
    )


def decide(approval: Approval, *, permission: Permission, target: str) -> Refusal | None:
    """None: apply ``approval.commit``; else why not (``authorise``, then ``current``)."""
    return authorise(approval, permission) or current(approval, target)


#: the HTTP answer to a refused approval delivery
HTTP_STATUS = {
    Reason.MALFORMED: 400,
    Reason.NOT_A_PERSON: 403,
    Reason.UNAUTHORISED: 403,
    Reason.UNKNOWN_ENVIRONMENT: 404,
    Reason.NOT_MANUAL: 409,
    Reason.NOT_MERGED: 409,
    Reason.STALE: 409,
    Reason.UNAVAILABLE: 503,
}


def outcome_words(approval: Approval, *, commit: str, outcome: str, reason: str, changes: str) -> str:
    """What became of an accepted approval, once its pass ran (``commit``, ``outcome``, ``reason``
    and ``changes`` of the pass result: the agent's own words, never the sender's)."""
    sha, env = approval.commit[:12], approval.environment
    if commit != approval.commit:
        return f"not applied: {env} moved on to {commit[:12] or 'another commit'} before the pass ran"
    if outcome in ("applied", "reached"):
        return f"applied {sha} to {env}, approved by @{approval.login}" + (f": {changes}" if changes else "")
    if outcome == "up-to-date":
        return f"{sha} was already applied to {env}"
    if outcome == "failed":
        return f"applying {sha} to {env} failed ({reason or 'see the agent'}); see /status and `gitops-agent history`"
    return f"{sha} on {env}: {outcome}"


# --- words for people ----------------------------------------------------------------------------


def quoted(value: Any) -> str:
    """The sender's text as an inline code span: one line, at most ``QUOTE_LIMIT`` characters, no
    backtick to close the span early, so no Markdown, link or @-mention of it renders."""
    text = "".join(c if c.isprintable() and c != "`" else "?" for c in str(value))
    if len(text) > QUOTE_LIMIT:
        text = text[: QUOTE_LIMIT - 1] + "…"
    return f"`{text}`" if text else "``"


def accepted_words(approval: Approval) -> str:
    return f"approved by @{approval.login}: applying {approval.commit[:12]} to {approval.environment}"


def reply(message: str, *, accepted: bool) -> str:
    """A reply comment: what happened, or why nothing did."""
    return f"gitops-agent: {message}" if accepted else f"gitops-agent: not applied: {message}"


def _refuse(approval: Approval, reason: Reason, message: str) -> Refusal:
    return Refusal(reason, message, approval.pull_request)


def person(sender: Any) -> str | Refusal:
    """The sender's login when it is a person's: approvals are a human OK, and a bot (our own
    replies included) never approves."""
    if not isinstance(sender, dict):
        return Refusal(Reason.MALFORMED, "the payload has no sender")
    login = _text(sender.get("login"))
    if sender.get("type") == "Bot" or not LOGIN.fullmatch(login):
        return Refusal(Reason.NOT_A_PERSON, f"{quoted(login)} is not a person's GitHub login")
    return login


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _id(value: Any) -> int:
    """A positive integer id, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
