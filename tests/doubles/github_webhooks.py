"""Webhook payloads as GitHub sends them, held to the OpenAPI subset's ``x-webhooks`` schemas.

``check_run_requested_action`` starts from the description's own example; ``issue_comment_created``
is built field by field (the description has no example of it). ``webhook_errors`` validates a
payload against the named webhook's schema (OpenAPI 3.0: ``nullable`` understood), so tests
can assert the payloads they send are ones GitHub could send.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.doubles.github_server import example, spec_document

SPEC_URI = "urn:github-openapi-subset"
NOW = "2026-05-04T10:00:00Z"


@functools.cache
def _registry() -> Registry:
    return Registry().with_resource(SPEC_URI, Resource.from_contents(spec_document(), default_specification=DRAFT4))


def webhook_errors(name: str, payload: Any) -> list[str]:
    """Where ``payload`` breaks the schema of ``x-webhooks/<name>`` (e.g. ``check-run-requested-action``)."""
    body = spec_document()["x-webhooks"][name]["post"]["requestBody"]["content"]["application/json"]["schema"]
    validator = OAS30Validator({"$ref": SPEC_URI + body["$ref"]}, registry=_registry())
    return [f"/{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in validator.iter_errors(payload)]


def user(login: str, *, kind: str = "User", user_id: int = 583231) -> dict[str, Any]:
    """A ``simple-user`` (sender, comment author)."""
    sender: dict[str, Any] = copy.deepcopy(example("check-run-requested-action")["sender"])
    base = f"https://api.github.com/users/{login}"
    sender.update(login=login, id=user_id, type=kind, url=base, html_url=f"https://github.com/{login}")
    return sender


def repository(owner: str, repo: str) -> dict[str, Any]:
    found: dict[str, Any] = copy.deepcopy(example("check-run-requested-action")["repository"])
    found.update(name=repo, full_name=f"{owner}/{repo}")
    found["owner"] = {**found["owner"], "login": owner}
    return found


def check_run_requested_action(
    *, name: str, head_sha: str, check_run_id: int, sender: dict[str, Any], identifier: str = "apply",
    owner: str = "acme", repo: str = "config",
) -> dict[str, Any]:  # fmt: skip
    """A click on one of a check run's buttons."""
    payload: dict[str, Any] = example("check-run-requested-action")
    run = payload["check_run"]
    run.update(id=check_run_id, name=name, head_sha=head_sha, status="completed", conclusion="action_required",
               completed_at=NOW)  # fmt: skip
    run["check_suite"].update(head_sha=head_sha, status="completed", conclusion="action_required")
    payload.update(requested_action={"identifier": identifier}, sender=sender, repository=repository(owner, repo))
    return payload


def issue_comment_created(
    *, number: int, body: str, sender: dict[str, Any], pull_request: bool = True, owner: str = "acme",
    repo: str = "config",
) -> dict[str, Any]:  # fmt: skip
    """A new comment on issue or pull request ``number``."""
    api = f"https://api.github.com/repos/{owner}/{repo}"
    html = f"https://github.com/{owner}/{repo}"
    author = {"login": sender["login"], "id": sender["id"], "type": sender["type"]}
    reactions = {"url": f"{api}/issues/{number}/reactions", "total_count": 0, "+1": 0, "-1": 0, "laugh": 0,
                 "confused": 0, "heart": 0, "hooray": 0, "eyes": 0, "rocket": 0}  # fmt: skip
    issue: dict[str, Any] = {
        "url": f"{api}/issues/{number}", "repository_url": api, "labels_url": f"{api}/issues/{number}/labels{{/name}}",
        "comments_url": f"{api}/issues/{number}/comments", "events_url": f"{api}/issues/{number}/events",
        "html_url": f"{html}/pull/{number}", "id": 9000 + number, "node_id": f"I_{number}", "number": number,
        "title": "a change", "user": author, "assignees": [], "milestone": None, "comments": 1,
        "created_at": NOW, "updated_at": NOW, "closed_at": None, "author_association": "COLLABORATOR",
        "active_lock_reason": None, "body": None, "reactions": reactions, "labels": [], "state": "open",
        "locked": False, "assignee": None,
    }  # fmt: skip
    if pull_request:
        issue["pull_request"] = {"url": f"{api}/pulls/{number}", "html_url": f"{html}/pull/{number}",
                                 "diff_url": f"{html}/pull/{number}.diff", "patch_url": f"{html}/pull/{number}.patch",
                                 "merged_at": NOW}  # fmt: skip
    comment = {
        "url": f"{api}/issues/comments/77", "html_url": f"{html}/pull/{number}#issuecomment-77",
        "issue_url": f"{api}/issues/{number}", "id": 77, "node_id": "IC_77", "user": author, "created_at": NOW,
        "updated_at": NOW, "author_association": "COLLABORATOR", "performed_via_github_app": None, "body": body,
        "reactions": {**reactions, "url": f"{api}/issues/comments/77/reactions"},
    }  # fmt: skip
    return {"action": "created", "issue": issue, "comment": comment, "repository": repository(owner, repo),
            "sender": sender}  # fmt: skip


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def pull_request_event(
    *, action: str, number: int, head_sha: str, author: dict[str, Any], head_repo: str = "acme/config",
    base_ref: str = "main", owner: str = "acme", repo: str = "config",
) -> dict[str, Any]:  # fmt: skip
    """A ``pull_request`` delivery (``opened``, ``synchronize`` …) from the REST example of a pull
    request: ``head_repo`` is where the head branch lives (``owner/repo`` itself, or a fork)."""
    pull: dict[str, Any] = example("pull-request")
    pull.update(number=number, user=author, state="open", requested_teams=[], requested_reviewers=[])
    fork_owner, fork_name = head_repo.split("/", 1)
    pull["head"].update(sha=head_sha, ref="feature", label=f"{fork_owner}:feature", user=author)
    pull["head"]["repo"] = repository(fork_owner, fork_name)
    pull["base"].update(ref=base_ref, label=f"{owner}:{base_ref}")
    pull["base"]["repo"] = repository(owner, repo)
    return {"action": action, "number": number, "pull_request": pull, "repository": repository(owner, repo),
            "sender": author}  # fmt: skip
