"""The apply ledger: per environment, the snapshots applied — commit, time, agent version, result.

Kept in a ConfigMap in the agent's namespace, so it survives restarts: a new agent process reads
it and knows that a commit was already applied and must not be applied again. It is also what
``gitops-agent history`` reads to answer "which commits ran in prod, and when".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from gitops_agent.core.inventory import state_configmap
from gitops_agent.errors import ClusterError
from gitops_agent.model import KubeObject

LEDGER_PREFIX = "ledger-"
MAX_ENTRIES = 100  # a ConfigMap holds 1 MiB; 100 entries is months of history for most teams

# results of an entry
APPLIED, FAILED, REACHED = "applied", "failed", "reached"  # reached: same objects, nothing written


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


@dataclass(frozen=True)
class Ledger:
    entries: tuple[LedgerEntry, ...] = ()

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
        return replace(self, entries=(*self.entries, entry)[-MAX_ENTRIES:])


def ledger_name(environment: str) -> str:
    return f"{LEDGER_PREFIX}{environment}"


def ledger_configmap(environment: str, namespace: str, ledger: Ledger) -> KubeObject:
    data = {"entries": json.dumps([asdict(e) for e in ledger.entries], indent=1)}
    return state_configmap(ledger_name(environment), namespace, environment, "ledger", data)


def parse_ledger(configmap: KubeObject | None) -> Ledger:
    if configmap is None:
        return Ledger()
    raw = (configmap.get("data") or {}).get("entries", "[]")
    try:
        return Ledger(tuple(_entry(item) for item in json.loads(raw)))
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
    return LedgerEntry(**{k: v for k, v in item.items() if k in _ENTRY_FIELDS})
