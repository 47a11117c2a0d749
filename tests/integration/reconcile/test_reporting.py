"""Passes reported to GitHub and chat: the real agent and control plane, loopback doubles that
check every request against GitHub's OpenAPI description."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

from gitops_agent.adapters.chat import ChatNotifier
from gitops_agent.adapters.kube import KubeClient
from gitops_agent.chat_reporting import ChatReporter
from gitops_agent.cluster.chat_memory import ChatMemoryStore
from gitops_agent.reporting import Reporter
from tests.doubles.chat_server import ChatServer
from tests.doubles.github_server import GitHubServer
from tests.doubles.loopback import hang, server_error
from tests.integration.conftest import AgentFactory
from tests.integration.reconcile.conftest import FAST
from tests.support.builders import ConfigRepo, configmap, deployment, make_config, secret

pytestmark = pytest.mark.integration


@pytest.fixture
def chat_reporter(chat: ChatServer, kubeconfig: str, names: dict[str, str]) -> Iterator[ChatReporter]:
    """Chat's listener as the composition root builds it: its memory in the agent's namespace."""
    kube = KubeClient.connect(kubeconfig=kubeconfig)
    notifier = ChatNotifier(slack_webhook_url=chat.slack_url, webhook_url=chat.webhook_url, retry=FAST)
    memory = ChatMemoryStore(lambda: kube, namespace=names["agent"], field_manager="gitops-agent")
    r = ChatReporter(notifier, memory, environments=["dev", "prod"], target_url="https://agent.example/status")
    yield r
    r.close()
    kube.close()


def statuses(github: GitHubServer, context: str) -> list[tuple[str, str, str]]:
    return [(s["sha"], s["state"], s["description"]) for s in github.statuses if s["context"] == context]


@pytest.fixture
def app(repo: ConfigRepo) -> ConfigRepo:
    repo.write("environments/dev/app.yaml", [configmap("settings", {"v": "1"}), deployment("api", replicas=2)])
    repo.write("environments/prod/app.yaml", [secret("db", "hunter2"), configmap("settings", {"v": "1"})])
    repo.commit("first")
    return repo


def test_a_good_commit_goes_pending_then_success_per_environment(
    app: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    reporter: Reporter,
    github: GitHubServer,
) -> None:
    agent = agent_factory(make_config(app, names, tmp_path), listeners=[reporter])
    dev, _ = agent.sync_all()
    assert reporter.flush()
    sha = dev.commit
    assert [(s, state) for s, state, _ in statuses(github, "gitops-agent/dev")] == [(sha, "pending"), (sha, "success")]
    assert statuses(github, "gitops-agent/prod")[-1][1:] == ("success", "3 created; rollout healthy")
    assert all(s["target_url"] == "https://agent.example/status" for s in github.statuses)

    # the same state again is not posted again
    before = len(github.statuses)
    agent.sync_all()
    assert reporter.flush()
    assert len(github.statuses) == before


def test_a_broken_snapshot_is_an_error_with_a_readable_description(
    app: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    reporter: Reporter,
    github: GitHubServer,
) -> None:
    agent = agent_factory(make_config(app, names, tmp_path), listeners=[reporter])
    agent.sync_all()
    app.write("environments/dev/broken.yaml", "kind: ConfigMap\nmetadata: {name: [\n")
    bad = app.commit("broken")
    agent.sync_all()
    assert reporter.flush()
    sha, state, description = statuses(github, "gitops-agent/dev")[-1]
    assert (sha, state) == (bad, "error")
    assert description.startswith("rendering failed: environments/dev/broken.yaml") and len(description) <= 140


def test_drift_is_told_once_when_it_appears_and_once_when_it_is_resolved(
    app: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    reporter: Reporter,
    chat_reporter: ChatReporter,
    chat: ChatServer,
    github: GitHubServer,
    api_client: k8s.ApiClient,
) -> None:
    agent = agent_factory(make_config(app, names, tmp_path), listeners=[reporter, chat_reporter])
    agent.sync_all()
    apps, core = k8s.AppsV1Api(api_client), k8s.CoreV1Api(api_client)
    apps.patch_namespaced_deployment_scale(
        "api", names["dev"], {"spec": {"replicas": 5}}, field_manager="kubectl-scale"
    )
    core.patch_namespaced_secret(
        "db", names["prod"], {"stringData": {"password": "changed-by-hand"}}, field_manager="kubectl-edit"
    )

    for _ in range(3):  # the same drift, pass after pass: one message per environment
        agent.sync_all()
        assert reporter.flush() and chat_reporter.flush()
    appeared = [p for p in chat.webhook_payloads if p["event"] == "drift.appeared"]
    assert sorted(p["environment"] for p in appeared) == ["dev", "prod"]
    assert len(chat.slack_messages) == 2
    assert statuses(github, "gitops-agent/dev")[-1][1] == "failure"
    everything = repr(chat.slack_messages) + repr(chat.webhook_payloads) + repr(github.statuses)
    for leaked in ("hunter2", "changed-by-hand", "aHVudGVyMg==", "Y2hhbmdlZC1ieS1oYW5k"):
        assert leaked not in everything

    apps.patch_namespaced_deployment_scale(
        "api", names["dev"], {"spec": {"replicas": 2}}, field_manager="kubectl-scale"
    )
    agent.sync_all("dev")
    assert reporter.flush() and chat_reporter.flush()
    resolved = [p for p in chat.webhook_payloads if p["event"] == "drift.resolved"]
    assert [p["environment"] for p in resolved] == ["dev"]
    assert statuses(github, "gitops-agent/dev")[-1][1] == "success"


def test_github_failures_never_hold_up_reconciliation(
    app: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    reporter: Reporter,
    github: GitHubServer,
) -> None:
    github.inject(server_error(502), times=1)  # retried
    github.inject(hang(8.0), times=1)
    agent = agent_factory(make_config(app, names, tmp_path), listeners=[reporter])
    started = time.monotonic()
    results = agent.sync_all()
    assert all(r.outcome == "applied" for r in results)
    assert time.monotonic() - started < 8.0, "the passes waited for GitHub"
    assert reporter.flush(60)
    assert {s["context"] for s in github.statuses if s["state"] == "success"} == {
        "gitops-agent/dev",
        "gitops-agent/prod",
    }
