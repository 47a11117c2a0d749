"""The apply ledger: per environment, the snapshots applied — commit, time, agent version, result.

Kept in a ConfigMap in the agent's namespace, so it survives restarts: a new agent process reads
it and knows that a commit was already applied and must not be applied again. It is also what
``gitops-agent history`` reads to answer "which commits ran in prod, and when".

Its size does not grow with the environment: at most ``MAX_ENTRIES`` entries, each message and
summary clipped, the oldest entries dropped while the whole is over ``LEDGER_BYTES``. A ledger
remembers what it recorded since it was read (``added``, and the entries whose rollout it updated:
``updated``) and the resourceVersion it was read at, so a write is conditional, and on a conflict our
entries are appended to (and our rollout updates applied to) the ledger as re-read.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

from gitops_agent.core.helm import ChartRef, chart_refs
from gitops_agent.core.inventory import state_configmap
from gitops_agent.errors import ClusterError
from gitops_agent.model import KubeObject

LEDGER_PREFIX = "ledger-"
MAX_ENTRIES = 100  # months of history for most teams
LEDGER_BYTES = 768 * 1024  # a ConfigMap holds 1 MiB
#: error texts kept or shown by the agent (ledger entries, /status, chat payloads) are clipped to
#: this: an error naming every object of a 50,000-object snapshot is; the whole is in the agent's log
MESSAGE_CHARS = 4000
SUMMARY_CHARS = 1000

# results of an entry
APPLIED, FAILED, REACHED = "applied", "failed", "reached"  # reached: same objects, nothing written
#: how entries' times are written (RFC 3339, UTC, to the second)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# a rollout's states, as kstatus words (``model.HealthStatus`` values)
ROLLOUT_IN_PROGRESS, ROLLOUT_CURRENT, ROLLOUT_FAILED = "InProgress", "Current", "Failed"


@dataclass(frozen=True)
class LedgerEntry:
    commit: str
    time: str  # RFC 3339
    agent_version: str
    result: str  # applied | failed | reached
    summary: str = ""  # "2 created, 1 configured"
    message: str = ""  # the error, when failed
    forced: bool = False
    snapshot_hash: str = ""  # digest of every rendered manifest: equal digests, equal snapshots
    #: set by ``gitops-agent rollback --now``: the branch commit whose snapshot this older one replaced
    rolled_back_from: str = ""
    #: who approved applying this commit to a ``manual`` environment (a GitHub login), when a person did
    approved_by: str = ""
    #: the rollout of this apply as last seen: ``InProgress`` while followed (or when the agent
    #: stopped following: a restarted agent picks it up), ``Current``, ``Failed``; "" for an entry
    #: written before the agent recorded rollouts, or a failed apply
    rollout: str = ""
    rollout_message: str = ""
    #: the charts the snapshot was rendered from: name, version, digest, source (provenance)
    charts: tuple[ChartRef, ...] = ()
    #: the agent process that wrote the entry (its lock identity: pod name and a random suffix)
    applied_by: str = ""
    #: the container images the snapshot runs (``core.images``): what the commit carried
    images: tuple[str, ...] = ()

    @property
    def rollout_settled(self) -> bool:
        """The rollout reached an end (Current or Failed): nothing more to follow."""
        return self.rollout in (ROLLOUT_CURRENT, ROLLOUT_FAILED)


@dataclass(frozen=True)
class Ledger:
    entries: tuple[LedgerEntry, ...] = ()
    #: recorded since it was read: what a write appends to the ledger re-read after a conflict
    added: tuple[LedgerEntry, ...] = field(default=(), compare=False, repr=False)
    #: the ConfigMap's resourceVersion when read ("": none stored; a write creates it)
    version: str = field(default="", compare=False, repr=False)
    #: entries whose rollout was updated since read: what a write re-applies after a conflict
    updated: tuple[LedgerEntry, ...] = field(default=(), compare=False, repr=False)

    def last_success(self) -> LedgerEntry | None:
        for entry in reversed(self.entries):
            if entry.result in (APPLIED, REACHED):
                return entry
        return None

    def rollback_hold(self) -> LedgerEntry | None:
        """The running entry when it is an immediate rollback. It holds the environment at its
        (older) commit while the branch still says what was rolled back from; see Agent.held_commit."""
        last = self.last_success()
        return last if last is not None and last.rolled_back_from else None

    def is_current(self, commit: str) -> bool:
        """Is this commit the one the environment last applied (or reached)? Not "ever applied":
        after B, going back to A (a revert, a force-push) is a new snapshot to apply."""
        last = self.last_success()
        return last is not None and last.commit == commit

    def record(self, entry: LedgerEntry) -> Ledger:
        entry = clipped(entry)
        return replace(self, entries=bounded((*self.entries, entry)), added=(*self.added, entry))

    def with_rollout(self, entry: LedgerEntry, status: str, message: str) -> Ledger:
        """The ledger with ``entry``'s rollout set (the entry is found by commit and time); unchanged
        when the entry is gone (dropped as the oldest) or already says so."""
        updated = clipped(replace(entry, rollout=status, rollout_message=message))
        index = self._index(entry)
        if index is None or self.entries[index] == updated:
            return self
        entries = (*self.entries[:index], updated, *self.entries[index + 1 :])
        return replace(self, entries=entries, updated=(*self.updated, updated))

    def _index(self, entry: LedgerEntry) -> int | None:
        for i in range(len(self.entries) - 1, -1, -1):
            if (self.entries[i].commit, self.entries[i].time) == (entry.commit, entry.time):
                return i
        return None

    def rebased(self, fresh: Ledger) -> Ledger:
        """What we recorded and updated, applied to ``fresh`` (the ledger as re-read after another
        writer's write), to be written against its resourceVersion."""
        ledger = replace(fresh, added=(), updated=())
        for entry in self.added:
            ledger = ledger.record(entry)
        for entry in self.updated:
            ledger = ledger.with_rollout(entry, entry.rollout, entry.rollout_message)
        return ledger


def clipped(entry: LedgerEntry) -> LedgerEntry:
    """An entry whose message and summary fit: the start of each, and how much was left out."""
    return replace(
        entry,
        message=clip(entry.message, MESSAGE_CHARS),
        summary=clip(entry.summary, SUMMARY_CHARS),
        rollout_message=clip(entry.rollout_message, MESSAGE_CHARS),
    )


def clip(text: str, limit: int) -> str:
    """``text``, or its start and how much was left out, in at most ``limit`` characters."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 60]}… ({len(text) - limit + 60} more characters in the agent's log)"


def bounded(entries: tuple[LedgerEntry, ...]) -> tuple[LedgerEntry, ...]:
    """The newest entries that fit: at most MAX_ENTRIES, at most LEDGER_BYTES as stored."""
    entries = entries[-MAX_ENTRIES:]
    sizes = [len(_json(e)) + 2 for e in entries]
    total = sum(sizes)
    start = 0
    while total > LEDGER_BYTES and start < len(entries) - 1:
        total -= sizes[start]
        start += 1
    return entries[start:]


def ledger_time(moment: datetime) -> str:
    """``moment`` as an entry's ``time``."""
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_ledger_time(text: str) -> datetime | None:
    """An entry's ``time`` read back; None when it is not one."""
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def ledger_name(environment: str) -> str:
    return f"{LEDGER_PREFIX}{environment}"


def ledger_configmap(environment: str, namespace: str, ledger: Ledger) -> KubeObject:
    entries = ",\n".join(_json(e) for e in ledger.entries)
    data = {"entries": f"[\n{entries}\n]" if entries else "[]"}
    return state_configmap(ledger_name(environment), namespace, environment, "ledger", data)


def _json(entry: LedgerEntry) -> str:
    return json.dumps(asdict(entry), indent=1)


def parse_ledger(configmap: KubeObject | None) -> Ledger:
    if configmap is None:
        return Ledger()
    raw = (configmap.get("data") or {}).get("entries", "[]")
    version = str((configmap.get("metadata") or {}).get("resourceVersion", ""))
    try:
        return Ledger(tuple(_entry(item) for item in json.loads(raw)), version=version)
    except (ValueError, TypeError) as exc:
        name = (configmap.get("metadata") or {}).get("name")
        raise ClusterError(
            f"ConfigMap/{name}: the apply ledger is corrupt ({exc}); fix or delete it "
            "(deleting it makes the agent re-apply the current commit once)"
        ) from exc


_ENTRY_FIELDS = frozenset(f.name for f in fields(LedgerEntry))


def _entry(item: Any) -> LedgerEntry:
    """Keys a newer agent added are skipped, so an older agent still reads the ledger (rolling upgrades)."""
    if not isinstance(item, dict):
        raise TypeError(f"entry {item!r} is not a mapping")
    known = {k: v for k, v in item.items() if k in _ENTRY_FIELDS}
    if "charts" in known:
        known["charts"] = chart_refs(known["charts"])
    if "images" in known:
        known["images"] = tuple(str(i) for i in known["images"] or ())
    return LedgerEntry(**known)
