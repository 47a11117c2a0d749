"""core.approval: webhook payloads (valid under GitHub's own webhook schemas) read into approvals,
and every way an approval is refused."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_agent.core.approval import (
    ACTION_ID,
    Approval,
    Permission,
    Reason,
    Refusal,
    Via,
    apply_action,
    check_name,
    decide,
    merge_commit,
    outcome_words,
    parse_approve_comment,
    parse_check_run_action,
    parse_permission,
    quoted,
    screen,
    settled_check_run,
    waiting_check_run,
)
from tests.doubles.github_server import spec_document
from tests.doubles.github_webhooks import (
    check_run_requested_action,
    issue_comment_created,
    user,
    webhook_errors,
)

SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"
POLICIES = {"dev": "enforce", "prod": "manual"}


def click(**kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"name": "gitops-agent/prod approval", "head_sha": SHA, "check_run_id": 42,
                            "sender": user("alice")} | kw  # fmt: skip
    payload = check_run_requested_action(**args)
    assert webhook_errors("check-run-requested-action", payload) == []
    return payload


def comment(body: str, **kw: Any) -> dict[str, Any]:
    payload = issue_comment_created(**({"number": 7, "body": body, "sender": user("alice")} | kw))
    assert webhook_errors("issue-comment-created", payload) == []
    return payload


def test_the_payload_builders_are_held_to_the_schemas() -> None:
    broken = click()
    del broken["sender"]
    assert webhook_errors("check-run-requested-action", broken)
    assert webhook_errors("issue-comment-created", {"action": "created"})


# --- check runs ------------------------------------------------------------------------------------


def test_a_click_on_apply_is_an_approval_of_that_commit_by_the_sender() -> None:
    assert parse_check_run_action(click()) == Approval("prod", "alice", Via.CHECK_RUN, commit=SHA, check_run_id=42)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (click(identifier="lgtm"), Reason.MALFORMED),
        (click(name="ci/lint"), Reason.MALFORMED),
        (click(name="gitops-agent/prod approval extra"), Reason.MALFORMED),
        (click(head_sha="HEAD"), Reason.MALFORMED),
        (click(sender=user("renovate[bot]", kind="Bot")), Reason.NOT_A_PERSON),
        (click(sender=user("-evil")), Reason.NOT_A_PERSON),
        (click(sender=user("a" * 40)), Reason.NOT_A_PERSON),
    ],
)
def test_a_click_that_is_not_a_persons_apply_is_refused(payload: dict[str, Any], reason: Reason) -> None:
    refused = parse_check_run_action(payload)
    assert isinstance(refused, Refusal) and refused.reason is reason


def test_other_check_run_actions_and_garbage_are_not_approvals() -> None:
    created = click()
    created["action"] = "created"
    assert parse_check_run_action(created) is None
    assert parse_check_run_action([1, 2]) is None
    assert isinstance(parse_check_run_action({"action": "requested_action"}), Refusal)


def test_the_check_run_and_its_button_fit_githubs_limits() -> None:
    schema = spec_document()["paths"]["/repos/{owner}/{repo}/check-runs"]["post"]["requestBody"]
    item = schema["content"]["application/json"]["schema"]["properties"]["actions"]["items"]["properties"]
    for env in ("prod", "a-very-long-environment-name-indeed"):
        action = apply_action(env)
        assert all(len(action[k]) <= item[k]["maxLength"] for k in ("label", "description", "identifier"))
    assert apply_action("prod") == {"label": "Apply to prod", "description": "Apply this commit to prod",
                                    "identifier": ACTION_ID}  # fmt: skip
    body = waiting_check_run("prod", SHA, "https://agent.example/status")
    assert (body["name"], body["head_sha"], body["conclusion"]) == (check_name("prod"), SHA, "action_required")
    assert body["details_url"] == "https://agent.example/status"


def test_a_settled_check_run_says_how_and_keeps_its_button_only_after_a_failure() -> None:
    applied = settled_check_run("prod", outcome="applied", approved_by="alice")
    assert (applied["conclusion"], applied["output"]["title"], applied["actions"]) == (
        "success", "Applied to prod (approved by @alice)", []
    )  # fmt: skip
    assert settled_check_run("prod", outcome="failed")["actions"] == [apply_action("prod")]
    superseded = settled_check_run("prod", outcome="superseded", newer=OTHER)
    assert (superseded["conclusion"], superseded["output"]["title"]) == ("neutral", f"Superseded by {OTHER[:12]}")


# --- comments --------------------------------------------------------------------------------------


def test_an_approve_comment_on_a_pull_request_names_the_environment_and_the_sender() -> None:
    assert parse_approve_comment(comment("/approve prod")) == Approval("prod", "alice", Via.COMMENT, pull_request=7)
    assert parse_approve_comment(comment("  /approve   prod  \nthanks!")) == Approval(
        "prod", "alice", Via.COMMENT, pull_request=7
    )


@pytest.mark.parametrize("body", ["LGTM", "please /approve prod", "/approved prod", "/approve prod now", ""])
def test_other_comments_are_not_commands(body: str) -> None:
    assert parse_approve_comment(comment(body)) is None


def test_an_approve_comment_refused_early_says_where_to_reply() -> None:
    missing = parse_approve_comment(comment("/approve"))
    assert isinstance(missing, Refusal) and (missing.reason, missing.pull_request) == (Reason.MALFORMED, 7)
    on_issue = parse_approve_comment(comment("/approve prod", pull_request=False))
    assert isinstance(on_issue, Refusal) and "pull request" in on_issue.message
    bot = parse_approve_comment(comment("/approve prod", sender=user("gitops-agent[bot]", kind="Bot")))
    assert isinstance(bot, Refusal) and bot.reason is Reason.NOT_A_PERSON


def test_a_merged_pull_request_gives_its_merge_commit_on_the_environments_branch() -> None:
    approval = Approval("prod", "alice", Via.COMMENT, pull_request=7)
    pull = {"merged": True, "merge_commit_sha": SHA, "base": {"ref": "main"}}
    assert merge_commit(approval, pull, "main") == SHA
    for broken, words in [
        ({**pull, "merged": False}, "not merged yet"),
        ({**pull, "base": {"ref": "feature"}}, "not merged into main"),
        ({**pull, "merge_commit_sha": None}, "no merge commit"),
    ]:
        refused = merge_commit(approval, broken, "main")
        assert isinstance(refused, Refusal) and words in refused.message and refused.pull_request == 7


# --- decisions -------------------------------------------------------------------------------------


def test_only_a_known_manual_environment_is_approved() -> None:
    assert screen(Approval("prod", "alice", Via.CHECK_RUN, SHA), POLICIES) is None
    unknown = screen(Approval("qa`@everyone", "alice", Via.COMMENT, pull_request=3), POLICIES)
    assert unknown == Refusal(Reason.UNKNOWN_ENVIRONMENT, "no environment `qa?@everyone`", 3)
    not_manual = screen(Approval("dev", "alice", Via.CHECK_RUN, SHA), POLICIES)
    assert not_manual is not None and not_manual.reason is Reason.NOT_MANUAL


@pytest.mark.parametrize(
    ("permission", "role", "allowed"),
    [
        ("admin", "admin", True),
        ("write", "maintain", True),  # GitHub's legacy field maps maintain to write
        ("write", "write", True),
        ("write", "deployer", True),  # a custom role on top of write
        ("read", "triage", False),
        ("read", "read", False),
        ("none", "", False),
    ],
)
def test_only_write_maintain_or_admin_may_approve(permission: str, role: str, allowed: bool) -> None:
    approval = Approval("prod", "alice", Via.CHECK_RUN, SHA)
    refused = decide(approval, permission=Permission(permission, role), target=SHA)
    assert (refused is None) is allowed
    if not allowed:
        assert refused is not None and refused.reason is Reason.UNAUTHORISED and "@alice" in refused.message


def test_an_approval_of_anything_but_the_current_target_is_stale() -> None:
    approval = Approval("prod", "alice", Via.CHECK_RUN, SHA)
    refused = decide(approval, permission=Permission("admin", "admin"), target=OTHER)
    assert refused is not None and refused.reason is Reason.STALE and OTHER[:12] in refused.message


def test_a_permission_answer_that_is_not_one_reads_as_none() -> None:
    assert parse_permission({"permission": "write", "role_name": "maintain"}) == Permission("write", "maintain")
    assert not parse_permission("oops").may_write
    assert not parse_permission({"permission": 7}).may_write


def test_quoted_text_never_leaves_its_code_span_nor_mentions_anyone() -> None:
    assert quoted("prod") == "`prod`"
    assert quoted("x` @admin [link](http://evil)\n# title") == "`x? @admin [link](http://evil)?# title`"
    assert len(quoted("a" * 500)) == 62


def test_outcome_words_say_what_became_of_the_approval() -> None:
    approval = Approval("prod", "alice", Via.COMMENT, commit=SHA, pull_request=7)
    words = outcome_words(approval, commit=SHA, outcome="applied", reason="", changes="1 configured")
    assert words == f"applied {SHA[:12]} to prod, approved by @alice: 1 configured"
    moved = outcome_words(approval, commit=OTHER, outcome="waiting", reason="", changes="")
    assert moved.startswith("not applied: prod moved on to")
    assert "ApplyFailed" in outcome_words(approval, commit=SHA, outcome="failed", reason="ApplyFailed", changes="")
