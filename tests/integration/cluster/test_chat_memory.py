"""Chat's memory against the real API server: created in the agent's namespace, written only when it
changes, and a concurrent writer's entries merged rather than overwritten."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from gitops_agent.adapters.kube import KubeClient
from gitops_agent.cluster.chat_memory import ChatMemoryStore
from gitops_agent.core.chat_memory import Told

pytestmark = pytest.mark.integration
T1, T2, T3 = "2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z", "2024-05-01T12:00:00Z"


def store(kube: KubeClient, names: dict[str, str]) -> ChatMemoryStore:
    return ChatMemoryStore(lambda: kube, namespace=names["agent"], field_manager="gitops-agent")


def test_the_memory_is_created_then_replaced_only_when_it_changes(
    kube: KubeClient, names: dict[str, str], api_client: k8s.ApiClient
) -> None:
    memory = store(kube, names)
    assert memory.read().entries == {}
    stored = memory.record({"slack.prod.drift": Told("a", T1, T1)})  # creates the agent's namespace too
    assert stored.version and memory.read() == stored
    assert memory.record({"slack.prod.drift": Told("a", T1, T1)}, stored).version == stored.version  # unchanged
    cm = k8s.CoreV1Api(api_client).read_namespaced_config_map("chat-memory", names["agent"]).to_dict()
    assert cm["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "gitops-agent",
        "gitops-agent.io/role": "chat-memory",
    }


def test_a_concurrent_write_is_merged_key_by_key_and_the_later_word_wins(
    kube: KubeClient, names: dict[str, str]
) -> None:
    ours, theirs = store(kube, names), store(kube, names)
    base = ours.record({"slack.prod.drift": Told("a", T1, T1)})
    theirs.record({"slack.prod.drift": Told(None, T3), "slack.dev.sync": Told("f", T2)})  # meanwhile
    merged = ours.record({"slack.prod.drift": Told("b", T2, T1), "slack.prod.rollout": Told("r", T2)}, base)
    assert merged.entries == {
        "slack.prod.drift": Told(None, T3),  # theirs was told later
        "slack.dev.sync": Told("f", T2),
        "slack.prod.rollout": Told("r", T2),
    }
    assert theirs.read() == merged
