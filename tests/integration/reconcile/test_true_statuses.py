"""A commit status never says more than is true: each path that used to post ``success`` too early,
on the real control plane (kwok playing the kubelet) and the GitHub double."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from gitops_agent.reconcile import FollowSettings
from gitops_agent.reporting import Reporter
from tests.doubles.github_server import GitHubServer
from tests.integration.conftest import AgentFactory
from tests.support.builders import ConfigRepo, configmap, crashing, deployment, make_config

pytestmark = pytest.mark.integration
QUICK = FollowSettings(poll_s=0.25)
DEV = "gitops-agent/dev"


def last_status(github: GitHubServer, reporter: Reporter) -> tuple[str, str, str]:
    assert reporter.flush()
    s = [s for s in github.statuses if s["context"] == DEV][-1]
    return s["sha"], s["state"], s["description"]


def commit_dev(repo: ConfigRepo, *objects: dict[str, Any], message: str = "dev") -> str:
    """dev holds ``objects``; prod a ConfigMap, so a commit to prod alone leaves dev's snapshot as it was."""
    repo.write("environments/dev/app.yaml", list(objects))
    if not (repo.root / "environments/prod/app.yaml").exists():
        repo.write("environments/prod/app.yaml", [configmap("settings", {"v": "1"})])
    return repo.commit(message)


def ledger_entries(api_client: k8s.ApiClient, names: dict[str, str]) -> list[dict[str, Any]]:
    cm = k8s.CoreV1Api(api_client).read_namespaced_config_map("ledger-dev", names["agent"])
    return list(json.loads(cm.data["entries"]))


def test_a_manual_environment_waiting_for_approval_is_pending_on_the_waiting_commit(
    repo: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    reporter: Reporter,
    github: GitHubServer,
) -> None:
    first = commit_dev(repo, configmap("settings", {"v": "1"}))
    agent = agent_factory(make_config(repo, names, tmp_path, policy="manual"), listeners=[reporter], follow=QUICK)
    assert agent.sync_all("dev", explicit=True)[0].outcome == "applied"
    assert last_status(github, reporter) == (first, "success", "2 created; rollout healthy")

    second = commit_dev(repo, configmap("settings", {"v": "2"}))
    waiting = agent.sync_all("dev")[0]  # the daemon's pass: a manual environment waits
    assert waiting.outcome == "waiting"
    assert last_status(github, reporter) == (second, "pending", "waiting for approval; gitops-agent sync --env dev")

    assert agent.sync_all("dev", explicit=True)[0].outcome == "applied"
    assert last_status(github, reporter) == (second, "success", "1 configured; rollout healthy")


def test_a_new_commit_that_writes_nothing_reads_the_rollout_before_success(
    repo: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    reporter: Reporter,
    github: GitHubServer,
) -> None:
    commit_dev(repo, crashing("api", deadline=3))
    agent = agent_factory(make_config(repo, names, tmp_path), listeners=[reporter], follow=QUICK)
    assert agent.sync_all("dev")[0].outcome == "applied"
    assert last_status(github, reporter)[1] == "failure"

    repo.write("environments/prod/app.yaml", [configmap("settings", {"v": "2"})])
    other = repo.commit("a change to prod only")
    dev = agent.sync_all("dev")[0]
    assert dev.outcome == "reached", "dev's snapshot did not change: nothing to write"
    sha, state, description = last_status(github, reporter)
    assert (sha, state) == (other, "failure"), description
    assert description.startswith("rollout failed:") and "api" in description


def test_a_rollout_the_agent_stopped_following_is_finished_by_the_next_agent(
    repo: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    reporter: Reporter,
    github: GitHubServer,
    api_client: k8s.ApiClient,
) -> None:
    commit = commit_dev(repo, crashing("api", deadline=3))
    config = make_config(repo, names, tmp_path)
    shutting_down = threading.Event()
    shutting_down.set()  # the agent stops following at its first look, as on SIGTERM mid-rollout
    first = agent_factory(config, listeners=[reporter], follow=QUICK, stopping=shutting_down)
    assert first.sync_all("dev")[0].outcome == "applied"
    sha, state, description = last_status(github, reporter)
    assert (sha, state) == (commit, "pending"), description
    assert "stopped following" in description
    assert ledger_entries(api_client, names)[-1]["rollout"] == "InProgress"

    # A new agent (a restart, a new leader): the commit is applied, but its rollout is unfinished.
    second = agent_factory(config, listeners=[reporter], follow=QUICK)
    again = second.sync_all("dev")[0]
    assert again.outcome == "up-to-date" and again.sync is None, "nothing re-applied"
    sha, state, description = last_status(github, reporter)
    assert (sha, state) == (commit, "failure"), description
    assert description.startswith("rollout failed:")
    entry = ledger_entries(api_client, names)[-1]
    assert (entry["commit"], entry["rollout"]) == (commit, "Failed")

    # And a third agent keeps saying so, from the ledger, without following again.
    third = agent_factory(config, listeners=[reporter], follow=FollowSettings(enabled=False))
    assert third.sync_all("dev")[0].outcome == "up-to-date"
    assert last_status(github, reporter)[:2] == (commit, "failure")


def test_a_sync_that_did_not_follow_is_pending_until_a_pass_follows_it(
    repo: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    reporter: Reporter,
    github: GitHubServer,
    api_client: k8s.ApiClient,
) -> None:
    commit = commit_dev(repo, deployment("api", replicas=2))
    config = make_config(repo, names, tmp_path)
    no_wait = agent_factory(config, listeners=[reporter], follow=FollowSettings(enabled=False))
    assert no_wait.sync_all("dev")[0].outcome == "applied"
    assert last_status(github, reporter) == (commit, "pending", "2 created; rollout in progress: not followed yet")

    daemon = agent_factory(config, listeners=[reporter], follow=QUICK)
    assert daemon.sync_all("dev")[0].outcome == "up-to-date"
    assert last_status(github, reporter) == (commit, "success", "2 created; rollout healthy")
    assert ledger_entries(api_client, names)[-1]["rollout"] == "Current"
