"""Chat from ``gitops-agent run`` with two replicas on a real Lease: the leader tells drift once and
sends the digest of the slot once; the replica that takes over tells neither again (chat-memory)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client as k8s

from tests.doubles.chat_server import ChatServer
from tests.integration.test_serve import Replica, replicas  # noqa: F401 -- the fixture is used by name
from tests.support.builders import ConfigRepo, configmap
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    with ChatServer() as server:
        yield server
    assert server.violations == []


def test_the_leader_tells_drift_and_the_digest_once_and_a_new_leader_not_again(
    tmp_path: Path,
    names: dict[str, str],
    api_client: k8s.ApiClient,
    kubeconfig: str,
    replicas: list[Replica],  # noqa: F811
    chat: ChatServer,
) -> None:
    core = k8s.CoreV1Api(api_client)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=names["agent"])))
    repo = ConfigRepo(tmp_path / "config")
    repo.write("environments/dev/app.yaml", [configmap("settings", {"mode": "one"})])
    repo.commit("first")
    (tmp_path / "chat-url").write_text(chat.webhook_url + "\n")
    slot = datetime.now(UTC) - timedelta(minutes=2)  # a slot just past; the next one is tomorrow
    config = {
        "repo": {"url": str(repo.root), "branch": "main", "poll_interval": "1h"},
        "agent": {"namespace": names["agent"]},
        "environments": [
            {"name": "dev", "path": "environments/dev", "namespace": names["dev"], "interval": "3s"},
        ],
        "chat": {
            "webhook_url_file": str(tmp_path / "chat-url"),
            "digest": {"cron": f"{slot.minute} {slot.hour} * * *", "timezone": "UTC"},
        },
    }
    a = Replica(tmp_path, "a", config, kubeconfig)
    replicas.append(a)
    wait_until(lambda: a.dev().get("outcome") in ("applied", "up-to-date"), timeout=60)
    b = Replica(tmp_path, "b", config, kubeconfig)
    replicas.append(b)
    assert a.leads()

    core.patch_namespaced_config_map(
        "settings", names["dev"], {"data": {"mode": "by hand"}}, field_manager="kubectl-edit"
    )
    wait_until(lambda: "drift.digest" in events(chat), timeout=90, message=lambda: str(events(chat)))
    assert events(chat) == ["drift.appeared", "drift.digest"]
    digest = chat.webhook_payloads[1]
    assert digest["slot"] == slot.replace(second=0, microsecond=0).isoformat()
    (dev,) = digest["environments"]
    assert [(o["name"], o["owners"]) for o in dev["objects"]] == [("settings", ["kubectl-edit"])]

    code, _ = a.terminate()
    assert code == 0
    wait_until(b.leads, timeout=30)
    wait_until(lambda: b.dev().get("outcome") == "up-to-date", timeout=30)
    time.sleep(25)  # more than a digest check (20s) and several passes of the new leader
    assert events(chat) == ["drift.appeared", "drift.digest"]
    memory = core.read_namespaced_config_map("chat-memory", names["agent"]).to_dict()["data"]
    assert {"webhook.dev.drift", "webhook.digest"} <= set(memory)


def events(chat: ChatServer) -> list[str]:
    return [p["event"] for p in chat.webhook_payloads]
