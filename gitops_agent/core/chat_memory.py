"""What chat was already told, kept in the cluster so a restart or a leader change does not tell it
again. Pure: the record, its ConfigMap form, the merge of two writers, and the decision of what is
news.

One ConfigMap, ``chat-memory`` in the agent's namespace, one key per destination, environment and
topic (``slack.prod.drift``), each a small JSON object::

    {"fingerprint": "<sha256 of what was told>" | null,   null: told that it was resolved
     "at": "2024-05-01T10:00:00Z",                        when it was told
     "since": "2024-05-01T09:58:00Z"}                     drift only: open (changed or not) since

and one key per destination for the digest (``slack.digest``: ``fingerprint`` is the schedule slot
sent). Keys are independent, so two writers merge key by key: the entry told last wins.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Literal

from gitops_agent.core.prepare import MANAGED_BY, MANAGED_BY_LABEL
from gitops_agent.model import KubeObject

CHAT_MEMORY_NAME = "chat-memory"
CHAT_MEMORY_ROLE = "chat-memory"
ROLE_LABEL = "gitops-agent.io/role"

#: what chat is told about, per environment: unexpected drift, a failed sync, a failed rollout
Topic = Literal["drift", "sync", "rollout"]
DIGEST = "digest"

#: what a change of state means for chat: news (appeared, changed, failed) or resolved
News = Literal["news", "resolved"]


@dataclass(frozen=True)
class Told:
    """What one destination was last told about one topic, and when."""

    fingerprint: str | None
    at: str  # RFC 3339, UTC
    since: str = ""


@dataclass(frozen=True)
class ChatMemory:
    entries: Mapping[str, Told] = field(default_factory=dict)
    #: the ConfigMap's resourceVersion it was read at ("": none stored; a write creates it)
    version: str = field(default="", compare=False)

    def told(self, key: str) -> Told | None:
        return self.entries.get(key)

    def fingerprint(self, key: str) -> str | None:
        told = self.entries.get(key)
        return told.fingerprint if told else None

    def with_entries(self, updates: Mapping[str, Told]) -> ChatMemory:
        return replace(self, entries={**self.entries, **updates})


def memory_key(destination: str, environment: str, topic: Topic) -> str:
    """``slack.prod.drift``: environment names are DNS labels, so the key is a valid ConfigMap key."""
    return f"{destination}.{environment}.{topic}"


def digest_key(destination: str) -> str:
    return f"{destination}.{DIGEST}"


def decide(previous: str | None, now: str | None) -> News | None:
    """News when the state told differs from the state now and there is something wrong now;
    resolved when something was told and all is well now; else nothing (the same state again)."""
    if now == previous:
        return None
    return "resolved" if now is None else "news"


def told_now(previous: Told | None, fingerprint: str | None, at: str) -> Told:
    """The entry to remember once a message was sent: ``since`` stays while something stays open."""
    if fingerprint is None:
        return Told(None, at)
    still_open = previous is not None and previous.fingerprint is not None and previous.since
    return Told(fingerprint, at, previous.since if still_open and previous else at)


def merge_memory(ours: Mapping[str, Told], theirs: ChatMemory) -> ChatMemory:
    """Our updates written over what another writer stored meanwhile, key by key: an entry of
    theirs told after ours stays (it is the newer word on that topic)."""
    merged = dict(theirs.entries)
    for key, told in ours.items():
        other = merged.get(key)
        if other is None or other.at <= told.at:
            merged[key] = told
    return ChatMemory(merged, theirs.version)


# --- the ConfigMap --------------------------------------------------------------------------------


def parse_chat_memory(configmap: KubeObject | None) -> ChatMemory:
    """The memory as stored; an entry that does not parse is forgotten (at worst told once more)."""
    if configmap is None:
        return ChatMemory()
    entries = {}
    for key, text in (configmap.get("data") or {}).items():
        told = _parse_told(text)
        if told is not None:
            entries[key] = told
    version = str((configmap.get("metadata") or {}).get("resourceVersion", ""))
    return ChatMemory(entries, version)


def _parse_told(text: str) -> Told | None:
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("at"), str):
        return None
    fingerprint = raw.get("fingerprint")
    since = raw.get("since", "")
    return Told(
        fingerprint if isinstance(fingerprint, str) else None, raw["at"], since if isinstance(since, str) else ""
    )


def chat_memory_configmap(namespace: str, memory: ChatMemory) -> KubeObject:
    labels = {MANAGED_BY_LABEL: MANAGED_BY, ROLE_LABEL: CHAT_MEMORY_ROLE}
    data = {key: json.dumps(asdict(told), sort_keys=True) for key, told in sorted(memory.entries.items())}
    metadata: dict[str, object] = {"name": CHAT_MEMORY_NAME, "namespace": namespace, "labels": labels}
    if memory.version:
        metadata["resourceVersion"] = memory.version
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def digest_due(sent: Told | None, slot: str) -> bool:
    """Is the digest of ``slot`` still to send (no slot as late sent yet)? Slots are RFC 3339 times
    with an offset; one that does not parse was never sent."""
    if sent is None or sent.fingerprint is None:
        return True
    try:
        return datetime.fromisoformat(sent.fingerprint) < datetime.fromisoformat(slot)
    except (ValueError, TypeError):  # TypeError: a time without an offset
        return True


def drift_open_since(memory: ChatMemory, destinations: Iterable[str], environment: str) -> str:
    """Since when chat has seen the environment's unexpected drift open (the earliest any
    destination remembers; "" when none does)."""
    times = [
        told.since
        for d in destinations
        if (told := memory.told(memory_key(d, environment, "drift"))) is not None and told.since
    ]
    return min(times, default="")
