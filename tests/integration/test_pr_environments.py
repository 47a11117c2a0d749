"""Ephemeral pull-request environments end to end: signed webhooks over HTTP to the daemon's parts
(as ``composition.daemon`` wires them), the real API server (kwok nodes run the pods), the GitHub
double (payloads valid under the subset's ``x-webhooks``). A trusted PR gets its own namespace with
the environment's objects moved into it and a ``gitops-agent/pr-env/<env>`` status; a push updates
it; closing removes the namespace and the agent's state; a PR closed while the agent was down is
swept after restart; the cap holds; an untrusted fork gets nothing.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s

from gitops_agent.agent import Agent
from gitops_agent.approvals import Approvals, GitHubWrites
from gitops_agent.config import Config, parse_config
from gitops_agent.core.pr_env import AGENT_LABEL, PR_EXPIRES_LABEL, PR_HEAD_ANNOTATION, PR_NUMBER_LABEL, PR_OF_LABEL
from gitops_agent.core.webhook import signature
from gitops_agent.pr_environments import PullRequestEnvironments
from gitops_agent.reconcile import FollowSettings
from gitops_agent.scheduler import Scheduler
from gitops_agent.server import AgentServer
from gitops_agent.status_page import status_json
from tests.doubles.github_webhooks import pull_request_event, user, webhook_errors
from tests.integration.conftest import AgentFactory
from tests.integration.git_http import GitHTTPServer
from tests.integration.proposals_support import GitHubDouble, Upstream, agent_config_text
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.proposals_fixtures"]

SECRET = b"pr-env-webhook-secret"
CONTEXT = "gitops-agent/pr-env/staging"
FOLLOW = FollowSettings(enabled=True, poll_s=1.0, timeout_s=120)


def pr_config(remote: GitHTTPServer, names: dict[str, str], tmp_path: Path, github: GitHubDouble, cap: int) -> Config:
    """staging and prod of the template; staging gets a PR environment (namespaces unique to the test)."""
    data = yaml.safe_load(agent_config_text(remote, names, tmp_path, github))
    # staging may write a ClusterRole, so its render at a PR head holds one for the PR environment to leave out
    data["environments"][0]["scope"] = {"namespaces": [names["dev"]], "cluster_kinds": ["ClusterRole"]}
    data["pull_request_environments"] = [
        {
            "environment": "staging",
            "namespace": "pr-{number}-" + names["agent"],
            "ttl": "1h",
            "max": cap,
            "url": "https://pr-{number}.{env}.example.com",
            "quota": {"hard": {"pods": "20"}},
            "limit_range": {"limits": [{"type": "Container", "default": {"cpu": "100m", "memory": "64Mi"}}]},
        }
    ]
    return parse_config(yaml.safe_dump(data), source="test.yaml")


@dataclass
class Daemon:
    url: str
    github: GitHubDouble
    agent: Agent
    scheduler: Scheduler
    approvals: Approvals
    server: AgentServer

    @property
    def prs(self) -> PullRequestEnvironments:
        assert self.scheduler.pr_environments is not None
        return self.scheduler.pr_environments

    def deliver(self, payload: dict[str, Any]) -> httpx.Response:
        body = json.dumps(payload).encode()
        headers = {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d-1", "Content-Type": "application/json",
                   "X-Hub-Signature-256": signature(SECRET, body)}  # fmt: skip
        return httpx.post(self.url + "/webhooks/github", content=body, headers=headers, timeout=30)

    def settled(self) -> None:
        self.prs.drain()
        self.approvals.writes.flush()

    def stop(self) -> None:
        self.scheduler.stop()
        self.server.stop()
        self.approvals.close()


class People:
    """The test's people: commits on the PR branch, published as ``refs/pull/N/head``."""

    def __init__(self, upstream: Upstream, remote: GitHTTPServer, github: GitHubDouble) -> None:
        self.upstream, self.remote, self.github = upstream, remote, github

    def publish(self, number: int) -> str:
        self.upstream.push("--force", "HEAD:refs/heads/feature")
        head = self.upstream.git("rev-parse", "HEAD").strip()
        bare = self.remote.root / "config.git"
        subprocess.run(["git", "-C", str(bare), "update-ref", f"refs/pull/{number}/head", head], check=True)
        if not any(p["number"] == number for p in self.github.server.pulls):
            self.github.server.add_pull(number, "feature", "main", head_sha=head)
        return head

    def close(self, number: int) -> None:
        with self.github.server._state_lock:
            for pr in self.github.server.pulls:
                if pr["number"] == number:
                    pr["state"] = "closed"


def event(action: str, number: int, head: str, *, author: str = "dev", fork: bool = False) -> dict[str, Any]:
    payload = pull_request_event(action=action, number=number, head_sha=head, author=user(author),
                                 head_repo=f"{author}/config" if fork else "acme/config")  # fmt: skip
    if action == "synchronize":
        payload.update(before="0" * 40, after=head)
        for side in ("base", "head"):
            payload["pull_request"][side]["repo"].update(has_discussions=False, topics=[], visibility="private")
    if action == "closed":
        payload["pull_request"].update(state="closed", closed_at="2026-05-04T11:00:00Z", merged=False)
    assert webhook_errors(f"pull-request-{action}", payload) == []
    return payload


def start_daemon(agent: Agent, config: Config, github: GitHubDouble) -> Daemon:
    scheduler = Scheduler(agent, pr_environments=PullRequestEnvironments(agent, github.client))
    writes = GitHubWrites()
    approvals = Approvals(config, github.client, scheduler, writes)
    server = AgentServer(("127.0.0.1", 0), scheduler, webhook_secret=SECRET, approvals=approvals)
    server.start()
    scheduler.set_leading(True)  # as leader election decides; sweeps once
    return Daemon(server.url, github, agent, scheduler, approvals, server)


@pytest.fixture
def people(upstream: Upstream, remote: GitHTTPServer, github: GitHubDouble) -> People:
    upstream.git("checkout", "-q", "-b", "feature")
    return People(upstream, remote, github)


@pytest.fixture
def pr_namespaces(api_client: k8s.ApiClient, names: dict[str, str]) -> Iterator[k8s.CoreV1Api]:
    """The CoreV1 API; afterwards, any PR namespace this test's agent left is deleted."""
    core = k8s.CoreV1Api(api_client)
    yield core
    for ns in core.list_namespace(label_selector=f"{AGENT_LABEL}={names['agent']}").items:
        core.delete_namespace(ns.metadata.name)


def make_daemon(
    remote: GitHTTPServer, names: dict[str, str], tmp_path: Path, github: GitHubDouble, factory: AgentFactory, cap: int
) -> Daemon:
    config = pr_config(remote, names, tmp_path, github, cap)
    agent = factory(config, follow=FOLLOW)
    return start_daemon(agent, config, github)


def gone(core: k8s.CoreV1Api, namespace: str) -> bool:
    try:
        core.read_namespace(namespace)
    except k8s.ApiException as exc:
        return exc.status == 404
    return False


def state_of(core: k8s.CoreV1Api, names: dict[str, str], environment: str) -> list[str]:
    """The agent's records of ``environment``: its state ConfigMaps and its lock Lease."""
    cms = core.list_namespaced_config_map(names["agent"], label_selector=f"gitops-agent.io/state-of={environment}")
    leases = k8s.CoordinationV1Api(core.api_client).list_namespaced_lease(names["agent"]).items
    return [c.metadata.name for c in cms.items] + [x.metadata.name for x in leases if environment in x.metadata.name]


def statuses(github: GitHubDouble, sha: str) -> list[dict[str, Any]]:
    return [s for s in github.server.statuses if s["sha"] == sha and s["context"] == CONTEXT]


def test_a_pr_gets_an_environment_updated_on_push_and_removed_on_close(
    remote: GitHTTPServer, people: People, github: GitHubDouble, names: dict[str, str], tmp_path: Path,
    agent_factory: AgentFactory, pr_namespaces: k8s.CoreV1Api, api_client: k8s.ApiClient,
) -> None:  # fmt: skip
    core, up = pr_namespaces, people.upstream
    d = make_daemon(remote, names, tmp_path, github, agent_factory, cap=3)
    try:
        # the PR: a newer web, a ConfigMap naming staging's namespace outright, and a ClusterRole
        up.edit("environments/staging/kustomization.yaml", "newTag: 1.1.0", "newTag: 1.2.0", count=1)
        (up.root / "environments/staging/extra.yaml").write_text(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: {names['dev']}\ndata:\n  a: b\n"
            "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n"
            f"  name: reader-{names['agent']}\nrules: []\n"
        )
        up.edit("environments/staging/kustomization.yaml", "  - ../../apps/worker\n",
                "  - ../../apps/worker\n  - extra.yaml\n")  # fmt: skip
        up.commit("staging: web 1.2.0, extra settings, a reader role")
        head = people.publish(7)

        answer = d.deliver(event("opened", 7, head))
        assert answer.status_code == 202 and answer.json()["pr_environments"] == ["staging"], answer.text
        d.settled()

        ns = "pr-7-" + names["agent"]
        live = core.read_namespace(ns).metadata
        assert live.labels[PR_NUMBER_LABEL] == "7" and live.labels[PR_OF_LABEL] == "staging"
        assert int(live.labels[PR_EXPIRES_LABEL]) > time.time() + 3000 and live.annotations[PR_HEAD_ANNOTATION] == head
        apps = k8s.AppsV1Api(api_client)
        image = apps.read_namespaced_deployment("web", ns).spec.template.spec.containers[0].image
        assert image == "ghcr.io/acme/web:1.2.0"
        assert core.read_namespaced_config_map("extra", ns).data == {"a": "b"}  # moved from staging's namespace
        with pytest.raises(k8s.ApiException) as missing:  # staging's own namespace untouched
            core.read_namespaced_config_map("extra", names["dev"])
        assert missing.value.status == 404
        with pytest.raises(k8s.ApiException) as left_out:
            k8s.RbacAuthorizationV1Api(api_client).read_cluster_role(f"reader-{names['agent']}")
        assert left_out.value.status == 404
        assert core.read_namespaced_resource_quota("gitops-agent-pr", ns).spec.hard == {"pods": "20"}
        assert core.read_namespaced_limit_range("gitops-agent-pr", ns).spec.limits[0].default["cpu"] == "100m"
        posted = statuses(github, head)
        assert [s["state"] for s in posted] == ["pending", "success"], posted
        assert "1 cluster-scoped left out" in posted[-1]["description"] and ns in posted[-1]["description"]
        assert posted[-1]["target_url"] == "https://pr-7.staging.example.com"

        # a push: a new snapshot, applied the same way
        up.edit("environments/staging/kustomization.yaml", "newTag: 1.2.0", "newTag: 1.3.0", count=1)
        up.commit("staging: web 1.3.0")
        pushed = people.publish(7)
        assert d.deliver(event("synchronize", 7, pushed)).json()["pr_environments"] == ["staging"]
        d.settled()
        image = apps.read_namespaced_deployment("web", ns).spec.template.spec.containers[0].image
        assert image == "ghcr.io/acme/web:1.3.0"
        assert statuses(github, pushed)[-1]["state"] == "success"
        (shown,) = status_json(d.scheduler.status())["pull_request_environments"]
        assert shown["namespace"] == ns and shown["pull_request"] == 7 and shown["head"] == pushed
        assert shown["applied"] == pushed and shown["health"] == "Current" and shown["expires"].endswith("Z")
        assert state_of(core, names, "pr-7-staging") != []

        # closed (merged or not): the namespace and the agent's records go
        assert d.deliver(event("closed", 7, pushed)).status_code == 202
        d.settled()
        wait_until(lambda: gone(core, ns), timeout=120)
        assert state_of(core, names, "pr-7-staging") == []
        assert core.read_namespace(names["dev"]).status.phase == "Active"  # staging itself untouched
    finally:
        d.stop()


def test_a_pr_closed_while_the_agent_was_down_is_swept_after_restart(
    remote: GitHTTPServer, people: People, github: GitHubDouble, names: dict[str, str], tmp_path: Path,
    agent_factory: AgentFactory, pr_namespaces: k8s.CoreV1Api,
) -> None:  # fmt: skip
    core, up = pr_namespaces, people.upstream
    d = make_daemon(remote, names, tmp_path, github, agent_factory, cap=3)
    up.edit("environments/staging/kustomization.yaml", "count: 2", "count: 1")
    up.commit("staging: 1 web replica")
    head = people.publish(12)
    try:
        d.deliver(event("opened", 12, head))
        d.settled()
    finally:
        d.stop()  # the agent goes down
    ns = "pr-12-" + names["agent"]
    assert core.read_namespace(ns).metadata.labels[PR_NUMBER_LABEL] == "12"

    people.close(12)  # closed meanwhile: no webhook reaches anyone
    restarted = make_daemon(remote, names, tmp_path, github, agent_factory, cap=3)  # a new process's parts
    try:
        restarted.settled()  # the sweep it ran on taking the lead
        wait_until(lambda: gone(core, ns), timeout=120)
        assert state_of(core, names, "pr-12-staging") == []
    finally:
        restarted.stop()


def test_the_cap_the_time_to_live_and_an_untrusted_fork(
    remote: GitHTTPServer, people: People, github: GitHubDouble, names: dict[str, str], tmp_path: Path,
    agent_factory: AgentFactory, pr_namespaces: k8s.CoreV1Api,
) -> None:  # fmt: skip
    core, up = pr_namespaces, people.upstream
    d = make_daemon(remote, names, tmp_path, github, agent_factory, cap=1)
    try:
        up.edit("environments/staging/kustomization.yaml", "count: 2", "count: 1")
        up.commit("staging: 1 web replica")
        first = people.publish(20)
        d.deliver(event("opened", 20, first))
        d.settled()
        assert statuses(github, first)[-1]["state"] == "success"

        up.edit("environments/staging/kustomization.yaml", "count: 1", "count: 3")
        second = up.commit("staging: 3 web replicas")
        people.publish(21)
        d.deliver(event("opened", 21, second))
        d.settled()
        (refused,) = statuses(github, second)
        assert refused["state"] == "error" and "max 1" in refused["description"], refused
        assert gone(core, "pr-21-" + names["agent"])

        # a fork's PR by someone without write access: no PR environment, nothing posted for it
        up.edit("environments/staging/kustomization.yaml", "count: 3", "count: 4")
        up.commit("staging: 4 web replicas")
        fork = people.publish(22)
        answer = d.deliver(event("opened", 22, fork, author="mallory", fork=True))
        assert answer.json()["trusted"] is False and "pr_environments" not in answer.json()
        d.settled()
        assert gone(core, "pr-22-" + names["agent"]) and statuses(github, fork) == []

        # PR 20 is still open, but nobody pushed to it for longer than its time to live
        later = PullRequestEnvironments(d.agent, github.client, wall=lambda: time.time() + 7200)
        assert later.sweep_now() == ["pr-20-" + names["agent"]]
        wait_until(lambda: gone(core, "pr-20-" + names["agent"]), timeout=120)
        later.stop()
    finally:
        d.stop()
