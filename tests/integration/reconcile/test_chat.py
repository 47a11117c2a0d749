"""Chat against the real API server and the chat double: what was told survives an agent restart
(ConfigMap chat-memory), a failed sync and a failed rollout are told once, and the digest lists open
drift with its age and owner — once per slot, whichever process sends it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from gitops_agent.adapters.chat import ChatNotifier
from gitops_agent.adapters.kube import KubeClient
from gitops_agent.chat_reporting import ChatReporter
from gitops_agent.cluster.chat_memory import ChatMemoryStore
from gitops_agent.config import DigestConfig
from gitops_agent.reconcile import FollowSettings
from tests.doubles.chat_server import ChatServer
from tests.integration.conftest import AgentFactory
from tests.integration.reconcile.conftest import FAST
from tests.support.builders import ConfigRepo, configmap, crashing, deployment, make_config

pytestmark = pytest.mark.integration
EVERY_HOUR = DigestConfig(interval_s=3600)

#: a new ChatReporter (a new process, as far as chat is concerned) for the test's agent namespace
Reporters = Callable[..., ChatReporter]


@pytest.fixture
def reporters(chat: ChatServer, kubeconfig: str, names: dict[str, str]) -> Iterator[Reporters]:
    made: list[ChatReporter] = []
    kube = KubeClient.connect(kubeconfig=kubeconfig)

    def make(**kw: Any) -> ChatReporter:
        notifier = ChatNotifier(slack_webhook_url=chat.slack_url, webhook_url=chat.webhook_url, retry=FAST)
        memory = ChatMemoryStore(lambda: kube, namespace=names["agent"], field_manager="gitops-agent")
        r = ChatReporter(notifier, memory, environments=["dev", "prod"], **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()
    kube.close()


def events(chat: ChatServer) -> list[str]:
    return [f"{p['event']} {p.get('environment', '')}".strip() for p in chat.webhook_payloads]


def passes(agent: Any, told: ChatReporter, n: int = 1, env: str | None = None) -> None:
    for _ in range(n):
        agent.sync_all(env)
        assert told.flush(30)


@pytest.fixture
def app(repo: ConfigRepo) -> ConfigRepo:
    repo.write("environments/dev/app.yaml", [configmap("settings", {"v": "1"}), deployment("api", replicas=2)])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"v": "1"})])
    repo.commit("first")
    return repo


def scale_by_hand(api_client: k8s.ApiClient, namespace: str, replicas: int) -> None:
    k8s.AppsV1Api(api_client).patch_namespaced_deployment_scale(
        "api", namespace, {"spec": {"replicas": replicas}}, field_manager="kubectl-scale"
    )


def test_drift_told_before_a_restart_is_not_told_again_after_it(
    app: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    reporters: Reporters,
    chat: ChatServer,
    api_client: k8s.ApiClient,
) -> None:
    config = make_config(app, names, tmp_path)
    before = reporters()
    agent = agent_factory(config, listeners=[before])
    passes(agent, before)
    scale_by_hand(api_client, names["dev"], 5)
    passes(agent, before, 2)
    assert events(chat) == ["drift.appeared dev"]
    before.close()
    agent.close()

    after = reporters()  # a restarted agent: new process memory, the same cluster
    restarted = agent_factory(config, listeners=[after])
    passes(restarted, after, 2)
    assert events(chat) == ["drift.appeared dev"] and len(chat.slack_messages) == 1

    stored = k8s.CoreV1Api(api_client).read_namespaced_config_map("chat-memory", names["agent"]).to_dict()
    assert stored["metadata"]["labels"]["gitops-agent.io/role"] == "chat-memory"
    assert {"slack.dev.drift", "webhook.dev.drift"} <= set(stored["data"])

    scale_by_hand(api_client, names["dev"], 2)
    passes(restarted, after)
    assert events(chat) == ["drift.appeared dev", "drift.resolved dev"]


def test_a_failed_sync_is_told_once_per_commit_then_resolved(
    app: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    reporters: Reporters,
    chat: ChatServer,
) -> None:
    told = reporters()
    agent = agent_factory(make_config(app, names, tmp_path), listeners=[told])
    passes(agent, told, env="dev")
    broken = deployment("api", replicas=2)
    broken["spec"]["replicas"] = -1  # the API server refuses it at the dry run
    app.write("environments/dev/app.yaml", [configmap("settings", {"v": "2"}), broken])
    bad = app.commit("broken")
    passes(agent, told, 3, env="dev")
    assert events(chat) == ["sync.failed dev"]
    payload = chat.webhook_payloads[0]
    assert payload["commit"] == bad and payload["reason"] and "replicas" in payload["error"]
    assert "could not be applied" in chat.slack_messages[0]["text"]

    app.write("environments/dev/app.yaml", [configmap("settings", {"v": "2"}), deployment("api", replicas=2)])
    app.commit("fixed")
    passes(agent, told, 2, env="dev")
    assert events(chat) == ["sync.failed dev", "sync.resolved dev"]


def test_a_failed_rollout_is_told_once(
    repo: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    reporters: Reporters,
    chat: ChatServer,
) -> None:
    repo.write("environments/dev/app.yaml", [crashing("api", deadline=5)])
    repo.write("environments/prod/app.yaml", [configmap("settings", {})])
    commit = repo.commit("a release that cannot start")
    told = reporters()
    agent = agent_factory(make_config(repo, names, tmp_path), listeners=[told], follow=FollowSettings(poll_s=0.25))
    passes(agent, told, 3, env="dev")
    assert events(chat) == ["rollout.failed dev"]
    payload = chat.webhook_payloads[0]
    assert (payload["commit"], payload["reason"]) == (commit, "RolloutFailed")
    assert "CrashLoopBackOff" in payload["error"]
    assert chat.slack_messages[0]["text"] == f"Rollout of commit {commit[:12]} in dev failed"


def test_the_digest_lists_open_drift_with_age_and_owner_once_per_slot(
    app: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    reporters: Reporters,
    chat: ChatServer,
    api_client: k8s.ApiClient,
) -> None:
    config = make_config(app, names, tmp_path)
    started = datetime.now(UTC)
    clock = lambda: started  # noqa: E731 -- one slot for the whole test, whenever the hour turns
    first = reporters(digest=EVERY_HOUR, leading=lambda: True, now=clock)
    agent = agent_factory(config, listeners=[first])
    passes(agent, first)
    scale_by_hand(api_client, names["dev"], 4)
    passes(agent, first)
    first.digest_if_due()
    digests = [p for p in chat.webhook_payloads if p["event"] == "drift.digest"]
    assert len(digests) == 1
    digest = digests[0]
    assert digest["counts"] == {"environments": 1, "objects": 1} and digest["unchecked"] == []
    (dev,) = digest["environments"]
    (obj,) = dev["objects"]
    assert (dev["environment"], obj["kind"], obj["name"], obj["owners"]) == (
        "dev",
        "Deployment",
        "api",
        ["kubectl-scale"],
    )
    since = datetime.fromisoformat(obj["since"].replace("Z", "+00:00"))
    assert obj["age_s"] < 300 and abs((started - since).total_seconds()) < 300
    slack = next(m for m in chat.slack_messages if m["text"].startswith("Open drift"))
    assert "*Deployment/" in str(slack["blocks"]) and "`kubectl-scale`" in str(slack["blocks"])

    second = reporters(digest=EVERY_HOUR, leading=lambda: True, now=clock)  # another replica, or a restart
    passes(agent_factory(config, listeners=[second]), second)
    second.digest_if_due()
    assert len([p for p in chat.webhook_payloads if p["event"] == "drift.digest"]) == 1
