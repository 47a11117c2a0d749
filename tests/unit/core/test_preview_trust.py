"""Who gets previewed: pull_request payloads read, /preview commands parsed and authorised."""

from __future__ import annotations

import json
from typing import Any

from gitops_agent.core.approval import Permission, Reason, Refusal
from gitops_agent.core.preview_trust import (
    PreviewCommand,
    authorise_command,
    open_pull,
    parse_preview_comment,
    trusted_author,
    trusted_by_repository,
    waiting_description,
)
from gitops_agent.core.webhook import parse_pull_request


def pr(head_repo: Any, base_repo: Any = "acme/config", user: Any = None) -> bytes:
    head: dict[str, Any] = {"sha": "a" * 40, "repo": {"full_name": head_repo} if head_repo is not None else None}
    pull = {"head": head, "base": {"ref": "main", "repo": {"full_name": base_repo}}, "user": user}
    return json.dumps({"action": "opened", "number": 3, "pull_request": pull}).encode()


def test_only_a_head_in_the_repository_itself_is_trusted_by_the_payload() -> None:
    same = parse_pull_request(pr("ACME/config", user={"login": "eve", "type": "User"}))
    assert same is not None and trusted_by_repository(same) and same.author == "eve"
    for hostile in ("eve/config", None, ["acme/config"], ""):
        event = parse_pull_request(pr(hostile))
        assert event is not None and not trusted_by_repository(event)
    bot = parse_pull_request(pr("eve/config", user={"login": "evil bot[bot]", "type": "Bot"}))
    assert bot is not None and bot.author == ""


def test_authors_and_commenters_need_write_access() -> None:
    assert trusted_author(Permission("write", "maintain")) and trusted_author(Permission("admin", "admin"))
    assert not trusted_author(Permission("read", "triage"))
    refused = authorise_command(PreviewCommand(3, "eve"), Permission("read", "triage"))
    assert refused is not None and refused.reason is Reason.UNAUTHORISED and "`triage`" in refused.message


def comment(body: str, *, pull_request: bool = True, sender: Any = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"number": 3, **({"pull_request": {}} if pull_request else {})}
    return {"action": "created", "comment": {"body": body}, "issue": issue,
            "sender": sender or {"login": "alice", "type": "User"}}  # fmt: skip


def test_preview_comments_are_parsed_like_approve_comments() -> None:
    assert parse_preview_comment(comment("/preview")) == PreviewCommand(3, "alice")
    assert parse_preview_comment(comment("please /preview")) is None
    assert parse_preview_comment(comment("/approve prod")) is None
    on_issue = parse_preview_comment(comment("/preview", pull_request=False))
    assert isinstance(on_issue, Refusal) and on_issue.reason is Reason.MALFORMED
    bot = parse_preview_comment(comment("/preview", sender={"login": "gitops-agent[bot]", "type": "Bot"}))
    assert isinstance(bot, Refusal) and bot.reason is Reason.NOT_A_PERSON


def test_only_an_open_pull_request_with_a_real_head_is_previewed() -> None:
    command = PreviewCommand(3, "alice")
    good = {"state": "open", "head": {"sha": "b" * 40}, "base": {"ref": "main"}}
    assert open_pull(command, good).__class__.__name__ == "OpenPull"
    closed = open_pull(command, {**good, "state": "closed"})
    assert isinstance(closed, Refusal) and closed.reason is Reason.STALE
    assert isinstance(open_pull(command, {**good, "head": {"sha": "main; rm -rf"}}), Refusal)


def test_the_waiting_status_fits_github_s_limit_and_names_the_ways_to_preview() -> None:
    text = waiting_description(123456)
    assert len(text) <= 140 and "/preview" in text
