"""Chat's memory in the cluster: ConfigMap ``chat-memory`` in the agent's namespace (its content:
``core.chat_memory``). Writes are conditional on the resourceVersion read, like the inventory's and
the ledger's: when another writer (a replica taking over, a ``gitops-agent sync`` run) got there
first, its record is read again and ours merged into it key by key, never overwritten."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gitops_agent.adapters.kube import KubeClient, ResourceInfo
from gitops_agent.core.chat_memory import (
    CHAT_MEMORY_NAME,
    ChatMemory,
    Told,
    chat_memory_configmap,
    merge_memory,
    parse_chat_memory,
)
from gitops_agent.errors import ConflictError
from gitops_agent.model import KubeObject

CONFIGMAPS = ResourceInfo("", "v1", "ConfigMap", "configmaps", True, frozenset({"get", "create", "update"}))
NAMESPACES = ResourceInfo("", "v1", "Namespace", "namespaces", False, frozenset({"get", "patch"}))
#: writes tried before giving up (each after a conflict: another writer at the same time)
WRITE_ATTEMPTS = 5


class ChatMemoryStore:
    """``read`` and ``record``; the client is made on first use (``kube``), so a command that never
    tells chat anything never connects for it."""

    def __init__(self, kube: Callable[[], KubeClient], *, namespace: str, field_manager: str) -> None:
        self._kube = kube
        self.namespace = namespace
        self.field_manager = field_manager

    def read(self) -> ChatMemory:
        return parse_chat_memory(self._kube().get(CONFIGMAPS, self.namespace, CHAT_MEMORY_NAME))

    def record(self, updates: Mapping[str, Told], base: ChatMemory | None = None) -> ChatMemory:
        """Stores ``updates`` over ``base`` (as read: its resourceVersion is the precondition; None:
        read now) and returns the memory as stored. On a conflict, merges into the record re-read."""
        memory = self.read() if base is None else base
        for _ in range(WRITE_ATTEMPTS):
            merged = merge_memory(updates, memory)
            if merged.entries == memory.entries and memory.version:
                return memory  # nothing new to store
            try:
                return parse_chat_memory(self._write(merged))
            except ConflictError:
                memory = self.read()
        raise ConflictError(f"ConfigMap/{CHAT_MEMORY_NAME}: other writers kept changing it; not written")

    def _write(self, memory: ChatMemory) -> KubeObject:
        kube = self._kube()
        body = chat_memory_configmap(self.namespace, memory)
        if memory.version:
            return kube.replace(body, CONFIGMAPS, field_manager=self.field_manager)
        if kube.get(NAMESPACES, "", self.namespace) is None:
            ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
            kube.apply(ns, NAMESPACES, field_manager=self.field_manager)
        return kube.create(body, CONFIGMAPS, field_manager=self.field_manager)
