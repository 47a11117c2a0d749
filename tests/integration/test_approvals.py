"""A human OK from GitHub, end to end on the real API server and the GitHub double.

The daemon's parts are built as ``composition.daemon`` builds them (agent with the check-run
listener, scheduler, approvals, HTTP server) and webhooks are delivered signed over HTTP, as GitHub
delivers them; the payloads are valid under the subset's ``x-webhooks`` schemas.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s

from gitops_agent.adapters.github import AppAuth, GitHubClient, TokenAuth
from gitops_agent.agent import Agent
from gitops_agent.approvals import ApprovalChecks, Approvals, GitHubWrites
from gitops_agent.config import parse_config
from gitops_agent.core.approval import check_name
from gitops_agent.core.webhook import signature
from gitops_agent.present import format_history
from gitops_agent.reconcile import FollowSettings
from gitops_agent.scheduler import Scheduler
from gitops_agent.server import AgentServer
from tests.doubles.github_server import DEFAULT_TOKEN, GitHubServer, TestApp, generate_app_key
from tests.doubles.github_webhooks import check_run_requested_action, issue_comment_created, user, webhook_errors
from tests.integration.conftest import AgentFactory
from tests.support.builders import ConfigRepo, configmap
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

SECRET = b"approval-webhook-secret"


@dataclass
class Daemon:
    url: str
    github: GitHubServer
    scheduler: Scheduler
    approvals: Approvals
    core: k8s.CoreV1Api
    names: dict[str, str]
    agent: Agent

    def deliver(self, event: str, payload: dict[str, Any], *, signed: bool = True) -> httpx.Response:
        body = json.dumps(payload).encode()
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": "d-1", "Content-Type": "application/json"}
        if signed:
            headers["X-Hub-Signature-256"] = signature(SECRET, body)
        return httpx.post(self.url + "/webhooks/github", content=body, headers=headers, timeout=30)

    def settings(self) -> dict[str, str] | None:
        try:
            return dict(self.core.read_namespaced_config_map("settings", self.names["prod"]).data or {})
        except k8s.ApiException as exc:
            assert exc.status == 404
            return None

    def ledger(self) -> list[dict[str, Any]]:
        try:
            cm = self.core.read_namespaced_config_map("ledger-prod", self.names["agent"])
        except k8s.ApiException as exc:
            assert exc.status == 404
            return []
        return list(json.loads(cm.data["entries"]))

    def runs(self, commit: str) -> list[dict[str, Any]]:
        return [r for r in self.github.check_runs if r["head_sha"] == commit]

    def settled(self) -> None:
        self.approvals.writes.flush()


def _config(repo: ConfigRepo, names: dict[str, str], tmp_path: Path, github: dict[str, Any]) -> Any:
    text = json.dumps(
        {
            "repo": {"url": str(repo.root), "branch": "main", "poll_interval": "1h", "cache_dir": str(tmp_path / "c")},
            "agent": {"namespace": names["agent"]},
            "environments": [
                {"name": "prod", "path": "environments/prod", "namespace": names["prod"], "policy": "manual"},
                {"name": "dev", "path": "environments/dev", "namespace": names["dev"]},
            ],
            "github": {"repository": "acme/config", **github},
        }
    )
    return parse_config(text, source="test.yaml")


@pytest.fixture
def daemon_for(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> Iterator[Any]:
    """``daemon_for(app=True)``: the daemon's parts over the GitHub double, as an App or with a token."""
    started: list[tuple[Scheduler, AgentServer, Approvals, GitHubServer]] = []

    def make(*, app: bool) -> Daemon:
        private, public = generate_app_key()
        github = GitHubServer(owner="acme", repo="config", app=TestApp("77", 9, public))
        github.start()
        if app:
            (tmp_path / "app.pem").write_text(private)
            auth: AppAuth | TokenAuth = AppAuth("77", "9", private)
            section = {"app_id": "77", "installation_id": "9", "private_key_file": str(tmp_path / "app.pem")}
        else:
            auth = TokenAuth(DEFAULT_TOKEN)
            (tmp_path / "token").write_text(DEFAULT_TOKEN)
            section = {"token_file": str(tmp_path / "token")}
        config = _config(repo, names, tmp_path, {"api_url": github.url, **section})
        client = GitHubClient(github.url, "acme/config", auth)
        writes = GitHubWrites()
        checks = ApprovalChecks(config, client, writes, "https://agent.example/status") if app else None
        agent = agent_factory(config, listeners=[checks] if checks else (), follow=FollowSettings(enabled=False))
        scheduler = Scheduler(agent)
        approvals = Approvals(config, client, scheduler, writes, checks)
        server = AgentServer(("127.0.0.1", 0), scheduler, webhook_secret=SECRET, approvals=approvals)
        server.start()
        scheduler.start()
        started.append((scheduler, server, approvals, github))
        return Daemon(server.url, github, scheduler, approvals, k8s.CoreV1Api(api_client), names, agent)

    yield make
    for scheduler, server, approvals, github in started:
        scheduler.stop()
        server.stop()
        approvals.close()
        github.stop()
        assert github.violations == [], github.violations


def _click(run: dict[str, Any], login: str) -> dict[str, Any]:
    payload = check_run_requested_action(name=run["name"], head_sha=run["head_sha"], check_run_id=run["id"],
                                         sender=user(login))  # fmt: skip
    assert webhook_errors("check-run-requested-action", payload) == []
    return payload


def test_a_click_on_apply_by_a_writer_applies_the_waiting_commit_and_the_ledger_names_them(
    repo: ConfigRepo, daemon_for: Any
) -> None:
    repo.write("environments/prod/app.yaml", [configmap("settings", {"release": "one"})])
    repo.write("environments/dev/app.yaml", [configmap("dev-settings", {"release": "one"})])
    first = repo.commit("release one")
    d: Daemon = daemon_for(app=True)
    d.github.grant("alice", "maintain")
    d.github.grant("bob", "triage")
    d.scheduler.set_leading(True)

    # the manual environment waits; its commit gets one "Apply to prod" check run, not one per pass
    wait_until(lambda: len(d.runs(first)) == 1, timeout=60)
    d.scheduler.trigger(["prod"])
    wait_until(lambda: d.scheduler.status().environments[0].last is not None, timeout=30)
    d.settled()
    (run,) = d.runs(first)
    assert (run["name"], run["conclusion"]) == (check_name("prod"), "action_required")
    assert d.github.actions[run["id"]] == [
        {"label": "Apply to prod", "description": "Apply this commit to prod", "identifier": "apply"}
    ]
    assert d.settings() is None and d.ledger() == []

    # unsigned, then signed by someone who may only triage: nothing changes, and the answer says why
    assert d.deliver("check_run", _click(run, "alice"), signed=False).status_code == 401
    refused = d.deliver("check_run", _click(run, "bob"))
    assert refused.status_code == 403
    assert refused.json()["reason"] == "Unauthorised" and "@bob has `triage` access" in refused.json()["message"]

    # alice maintains the repository: her click applies that commit, and the ledger names her
    accepted = d.deliver("check_run", _click(run, "alice"))
    assert accepted.status_code == 202, accepted.text
    answer = {"event": "check_run", "accepted": True, "environment": "prod", "commit": first, "approved_by": "alice"}
    assert accepted.json() == {**answer, "via": "check run"}
    wait_until(lambda: d.settings() == {"release": "one"}, timeout=60)
    wait_until(lambda: any(e.get("approved_by") == "alice" for e in d.ledger()), timeout=30)
    (entry,) = d.ledger()
    assert (entry["commit"], entry["result"], entry["approved_by"]) == (first, "applied", "alice")
    wait_until(lambda: d.runs(first)[0]["conclusion"] == "success", timeout=30)  # told after the pass
    (run,) = d.runs(first)
    assert run["output"]["title"] == "Applied to prod (approved by @alice)"
    assert d.github.actions[run["id"]] == []
    history = format_history("prod", d.agent.history("prod"))
    assert f"{first[:12]}  applied" in history and "(approved by @alice)" in history


def test_a_click_on_a_commit_that_is_no_longer_the_target_is_refused_as_stale(
    repo: ConfigRepo, daemon_for: Any
) -> None:
    repo.write("environments/prod/app.yaml", [configmap("settings", {"release": "one"})])
    repo.write("environments/dev/app.yaml", [configmap("dev-settings", {"release": "one"})])
    first = repo.commit("release one")
    d: Daemon = daemon_for(app=True)
    d.github.grant("alice", "write")
    d.scheduler.set_leading(True)
    wait_until(lambda: len(d.runs(first)) == 1, timeout=60)

    repo.write("environments/prod/app.yaml", [configmap("settings", {"release": "two"})])
    second = repo.commit("release two")
    push = {"ref": "refs/heads/main", "after": second}
    assert d.deliver("push", push).status_code == 202
    wait_until(lambda: len(d.runs(second)) == 1, timeout=60)
    d.settled()
    (old,) = d.runs(first)
    assert (old["conclusion"], old["output"]["title"]) == ("neutral", f"Superseded by {second[:12]}")
    assert d.github.actions[old["id"]] == []

    stale = d.deliver("check_run", _click(old, "alice"))
    assert stale.status_code == 409 and stale.json()["reason"] == "Stale"
    assert f"{first[:12]} is not prod's current target (now {second[:12]})" in stale.json()["message"]
    d.settled()
    assert d.settings() is None and d.ledger() == []


def test_an_approve_comment_on_the_merged_pull_request_applies_its_merge_commit_and_replies(
    repo: ConfigRepo, daemon_for: Any
) -> None:
    repo.write("environments/prod/app.yaml", [configmap("settings", {"release": "one"})])
    repo.write("environments/dev/app.yaml", [configmap("dev-settings", {"release": "one"})])
    repo.commit("release one")
    repo.git("checkout", "-q", "-b", "feature")
    repo.write("environments/prod/app.yaml", [configmap("settings", {"release": "two"})])
    repo.commit("release two")
    d: Daemon = daemon_for(app=False)
    d.github.grant("alice", "write")
    d.github.grant("mallory", "read")
    d.github.add_pull(5, head="feature", base="main")

    def comment(body: str, login: str = "alice") -> httpx.Response:
        payload = issue_comment_created(number=5, body=body, sender=user(login))
        assert webhook_errors("issue-comment-created", payload) == []
        return d.deliver("issue_comment", payload)

    d.scheduler.set_leading(True)
    wait_until(lambda: d.scheduler.status().environments[0].last is not None, timeout=60)

    not_merged = comment("/approve prod")
    assert (not_merged.status_code, not_merged.json()["reason"]) == (409, "NotMerged")
    repo.git("checkout", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "Merge pull request #5", "feature")
    merged = repo.git("rev-parse", "HEAD").strip()
    d.github.merge(5, merged)
    assert comment("/approve prod", "mallory").status_code == 403
    unknown = comment("/approve qa`@everyone")
    assert (unknown.status_code, unknown.json()["reason"]) == (404, "UnknownEnvironment")
    assert comment("/approve dev").json()["reason"] == "NotManual"
    assert comment("LGTM").json() == {"event": "issue_comment", "ignored": True}
    d.settled()
    assert d.settings() is None and d.ledger() == []

    accepted = comment("/approve prod")
    assert accepted.status_code == 202 and accepted.json()["commit"] == merged
    wait_until(lambda: d.settings() == {"release": "two"}, timeout=60)
    wait_until(lambda: [e.get("approved_by") for e in d.ledger()] == ["alice"], timeout=30)

    def said() -> list[str]:
        d.settled()
        return [c["body"] for c in d.github.comments]

    wait_until(lambda: any(body.startswith("gitops-agent: applied") for body in said()), timeout=30)
    replies = said()
    assert replies[0].startswith("gitops-agent: not applied: pull request #5 is not merged yet")
    assert replies[1].startswith("gitops-agent: not applied: @mallory has `read` access")
    assert replies[2] == "gitops-agent: not applied: no environment `qa?@everyone`"  # no mention, no markup
    assert replies[3].startswith("gitops-agent: not applied: dev is not manual")
    assert replies[4].startswith(f"gitops-agent: applied {merged[:12]} to prod, approved by @alice")
    assert len(replies) == 5  # the acceptance reply was updated in place with the outcome
    assert d.github.check_runs == []  # a token cannot make check runs: none was tried
