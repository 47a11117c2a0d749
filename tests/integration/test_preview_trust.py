"""Previews trust no one by default, end to end: signed webhooks over HTTP to the daemon's parts (as
``composition.daemon`` wires them), the real API server, the GitHub double (payloads valid under the
subset's ``x-webhooks``). A PR from a fork or by an author without write access is not rendered or
dry-run (the agent's Kubernetes request counts say so) and gets no comment; ``/preview`` by a writer
runs it; a preview never shows a live object the environment does not manage, nor live fields the
pull request does not change.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s

from gitops_agent.agent import Agent
from gitops_agent.approvals import Approvals, GitHubWrites
from gitops_agent.core.webhook import signature
from gitops_agent.preview import MARKER, preview_pull_request
from gitops_agent.reconcile import FollowSettings
from gitops_agent.scheduler import Scheduler
from gitops_agent.server import AgentServer
from tests.doubles.github_webhooks import issue_comment_created, pull_request_event, user, webhook_errors
from tests.integration.conftest import AgentFactory
from tests.integration.git_http import GitHTTPServer
from tests.integration.proposals_support import GitHubDouble, Upstream, agent_config
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.proposals_fixtures"]

SECRET = b"preview-webhook-secret"
PLANTED = "planted-live-password-0b7e"


@dataclass
class Daemon:
    url: str
    github: GitHubDouble
    agent: Agent
    scheduler: Scheduler
    approvals: Approvals
    remote: GitHTTPServer
    upstream: Upstream

    def deliver(self, event: str, payload: dict[str, Any]) -> httpx.Response:
        body = json.dumps(payload).encode()
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": "d-7", "Content-Type": "application/json",
                   "X-Hub-Signature-256": signature(SECRET, body)}  # fmt: skip
        return httpx.post(self.url + "/webhooks/github", content=body, headers=headers, timeout=30)

    def open(self, number: int, *, author: str, fork: bool) -> tuple[str, httpx.Response]:
        """Publish the upstream's HEAD as pull request ``number`` and deliver its ``opened`` webhook."""
        self.upstream.push("--force", "HEAD:refs/heads/feature")
        head = self.upstream.git("rev-parse", "HEAD").strip()
        bare = self.remote.root / "config.git"
        subprocess.run(["git", "-C", str(bare), "update-ref", f"refs/pull/{number}/head", head], check=True)
        self.github.server.add_pull(number, "feature", "main", head_sha=head)
        payload = pull_request_event(action="opened", number=number, head_sha=head, author=user(author),
                                     head_repo=f"{author}/config" if fork else "acme/config")  # fmt: skip
        assert webhook_errors("pull-request-opened", payload) == []
        return head, self.deliver("pull_request", payload)

    def comment(self, number: int, body: str, login: str) -> httpx.Response:
        payload = issue_comment_created(number=number, body=body, sender=user(login))
        assert webhook_errors("issue-comment-created", payload) == []
        return self.deliver("issue_comment", payload)

    def dry_runs(self) -> int:
        return self.agent.clusters.request_counts().get("apply-dry-run", 0)

    def settled(self) -> None:
        """Every queued preview ran and every GitHub write was sent."""
        assert self.scheduler.previews is not None
        wait_until(lambda: self.scheduler.previews is not None and self.scheduler.previews.waiting() == 0)
        self.scheduler.previews._pool.submit(lambda: None).result(120)
        self.approvals.writes.flush()

    def statuses(self, sha: str) -> dict[str, tuple[str, str]]:
        return {s["context"]: (s["state"], s["description"]) for s in self.github.server.statuses if s["sha"] == sha}

    def comments(self) -> list[str]:
        return [str(c["body"]) for c in self.github.server.comments]


@pytest.fixture
def daemon(
    remote: GitHTTPServer,
    upstream: Upstream,
    github: GitHubDouble,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
) -> Iterator[Daemon]:
    config = agent_config(remote, names, tmp_path, github)
    agent = agent_factory(config, follow=FollowSettings(enabled=False))
    assert all(r.ok for r in agent.sync_all())

    def previewer(number: int, head_sha: str, base_ref: str) -> object:
        return preview_pull_request(agent, github.client, number, head_sha, base_ref=base_ref)

    scheduler = Scheduler(agent, previewer=previewer)
    writes = GitHubWrites()
    approvals = Approvals(config, github.client, scheduler, writes)
    server = AgentServer(("127.0.0.1", 0), scheduler, webhook_secret=SECRET, approvals=approvals)
    server.start()
    upstream.git("checkout", "-q", "-b", "feature")
    try:
        yield Daemon(server.url, github, agent, scheduler, approvals, remote, upstream)
    finally:
        scheduler.stop()
        server.stop()
        approvals.close()
        assert github.server.violations == [], github.server.violations


def test_a_fork_pr_is_not_previewed_until_a_writer_comments_preview(daemon: Daemon, names: dict[str, str]) -> None:
    d = daemon
    d.github.server.grant("alice", "write")
    d.upstream.edit("environments/staging/kustomization.yaml", "newTag: 1.1.0", "newTag: 1.2.0", count=1)
    d.upstream.commit("staging: web 1.2.0")
    before = d.dry_runs()

    head, answer = d.open(7, author="mallory", fork=True)

    assert answer.status_code == 202 and answer.json()["preview"] is False and answer.json()["trusted"] is False
    d.settled()
    waiting = d.statuses(head)
    assert set(waiting) == {"gitops-agent/preview/staging", "gitops-agent/preview/prod"}
    assert all(state == "pending" and "/preview" in text for state, text in waiting.values())
    assert d.comments() == [] and d.dry_runs() == before  # nothing rendered, nothing dry-run

    # a reader asking is refused, and told why; still nothing dry-run
    refused = d.comment(7, "/preview", "mallory")
    assert refused.status_code == 403 and refused.json()["reason"] == "Unauthorised"
    d.settled()
    assert d.dry_runs() == before
    assert [c for c in d.comments() if MARKER in c] == []
    assert any("not previewed: @mallory has `read` access" in c for c in d.comments())

    # a writer asking previews the PR's current head
    accepted = d.comment(7, "/preview", "alice")
    assert accepted.status_code == 202 and accepted.json()["head"] == head, accepted.text
    d.settled()
    assert d.dry_runs() > before
    assert d.statuses(head)["gitops-agent/preview/staging"] == ("success", "1 object changes")
    (preview,) = [c for c in d.comments() if MARKER in c]
    assert "+      - image: ghcr.io/acme/web:1.2.0" in preview


def test_a_pr_by_an_author_without_write_access_is_not_previewed_and_a_same_repo_pr_is(daemon: Daemon) -> None:
    d = daemon
    d.github.server.grant("trina", "triage")
    d.upstream.edit("environments/prod/kustomization.yaml", "count: 3", "count: 4")
    d.upstream.commit("prod: 4 web replicas")
    before = d.dry_runs()

    head, answer = d.open(8, author="trina", fork=True)
    assert answer.json()["preview"] is False
    d.settled()
    assert d.dry_runs() == before and d.comments() == []
    assert {state for state, _ in d.statuses(head).values()} == {"pending"}

    d.upstream.edit("environments/prod/kustomization.yaml", "count: 4", "count: 5")
    d.upstream.commit("prod: 5 web replicas")
    head, answer = d.open(9, author="trina", fork=False)  # a branch of the repository itself
    assert answer.json()["preview"] is True
    d.settled()
    assert d.dry_runs() > before
    assert d.statuses(head)["gitops-agent/preview/prod"] == ("success", "1 object changes")
    assert len([c for c in d.comments() if MARKER in c]) == 1


def test_a_preview_shows_no_live_data_of_objects_the_environment_does_not_manage(
    daemon: Daemon, names: dict[str, str], api_client: k8s.ApiClient
) -> None:
    d = daemon
    core = k8s.CoreV1Api(api_client)
    last_applied = json.dumps({"data": {"password": PLANTED}})
    planted = {"kubectl.kubernetes.io/last-applied-configuration": last_applied}
    # a ConfigMap in staging's namespace nobody gave the agent, and a planted annotation on one it manages
    core.create_namespaced_config_map(
        names["dev"],
        k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(name="foreign", annotations=planted),
            data={"password": PLANTED, "neighbour": f"{PLANTED}-2"},
        ),
    )  # fmt: skip
    core.patch_namespaced_config_map("web-settings", names["dev"], {"metadata": {"annotations": planted}})
    (d.upstream.root / "environments/staging/foreign.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: foreign\ndata:\n  added: by-the-pr\n"
    )
    d.upstream.edit("environments/staging/kustomization.yaml", "  - ../../apps/worker\n",
                    "  - ../../apps/worker\n  - foreign.yaml\n")  # fmt: skip
    d.upstream.edit("environments/staging/kustomization.yaml", "value: info", "value: debug")
    d.upstream.commit("staging: debug logs, and a key in a ConfigMap staging does not manage")

    _, answer = d.open(10, author="alice", fork=False)
    assert answer.json()["preview"] is True
    d.settled()

    (preview,) = [c for c in d.comments() if MARKER in c]
    assert f"# configured ConfigMap/{names['dev']}/foreign: not managed by staging: not shown" in preview
    assert "-  LOG_LEVEL: info" in preview and "+  LOG_LEVEL: debug" in preview  # the field the PR changes
    assert "FEATURE_CHECKOUT_V2" not in preview  # a neighbouring line, unchanged
    assert "last-applied-configuration" not in preview
    sent = [r.body.decode(errors="replace") for r in d.github.server.requests]
    assert not any(PLANTED in body for body in sent)
