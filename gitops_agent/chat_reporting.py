"""Telling chat what matters: a ``PassListener`` of its own, apart from GitHub statuses.

For every pass it looks at three topics per environment — unexpected drift, the sync, the rollout —
and tells each destination (Slack, the generic webhook) only what is news against what that
destination was last told (``core.chat_memory.decide``):

- drift: when unexpected drift appears or changes, and when it is resolved;
- sync: when a pass fails (once per commit and failure), and when a pass works again;
- rollout: when the rollout of an apply fails or times out (once per commit and reason), and when
  a rollout is healthy again;
- and, when ``chat.digest`` is set, only while this replica leads, once per schedule slot: every
  environment's open unexpected drift with its age and owner.

What was told lives in the cluster (``cluster.chat_memory``), so a restart or a new leader does not
say it again. A destination's memory is written only after its post succeeded, so a failed post is
tried again on the next pass. When the memory cannot be written, this process remembers it itself
and writes it with its next change; only a restart before then could tell the same thing once more.

Everything is sent from a worker thread of its own (``ReportWorker``): a pass never waits on chat.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from gitops_agent.config import DigestConfig, digest_trigger
from gitops_agent.core.chat_digest import DigestEnvironment, digest_message
from gitops_agent.core.chat_failure import FailureSummary, failure_fingerprint, failure_message, rollout_reason
from gitops_agent.core.chat_memory import (
    ChatMemory,
    News,
    Told,
    Topic,
    decide,
    digest_due,
    digest_key,
    drift_open_since,
    memory_key,
    merge_memory,
    told_now,
)
from gitops_agent.core.chat_report import ChatMessage, DriftSummary, drift_fingerprint, drift_kind, drift_message
from gitops_agent.core.ledger import FAILED
from gitops_agent.errors import GitOpsError, ReportError
from gitops_agent.model import HealthStatus
from gitops_agent.reconcile import PassResult
from gitops_agent.report_worker import ReportWorker

if TYPE_CHECKING:
    from gitops_agent.adapters.chat import ChatNotifier

log = logging.getLogger(__name__)

#: a digest slot missed by longer than this (the agent was down) is skipped, not sent late
DIGEST_GRACE = timedelta(hours=1)
#: after a slot, how long the digest waits for a first pass of every environment (a new leader)
DIGEST_WAIT = timedelta(minutes=5)
#: how often the worker looks whether a digest is due
DIGEST_CHECK_S = 20.0


class MemoryStore(Protocol):
    """``cluster.chat_memory.ChatMemoryStore``: what chat was told, in the cluster."""

    def read(self) -> ChatMemory: ...

    def record(self, updates: Mapping[str, Told], base: ChatMemory | None = None) -> ChatMemory: ...


@dataclass(frozen=True)
class Observation:
    """One topic of one environment as a pass saw it: the fingerprint of what is wrong (None: all
    is well) and the message for news or a resolution."""

    environment: str
    topic: Topic
    fingerprint: str | None
    message: Callable[[News], ChatMessage]


def observations(result: PassResult, target_url: str | None = None) -> Iterator[Observation]:
    """What a pass says about each topic; a topic the pass did not look at says nothing (a failed
    pass checked no drift; a pass that did not follow a rollout knows nothing of it)."""
    env, commit = result.environment, result.commit
    sync = FailureSummary(env, commit, "sync", target_url=target_url)
    if not result.ok:
        sync = FailureSummary(env, commit, "sync", result.reason or FAILED, result.error, target_url)
    yield Observation(env, "sync", failure_fingerprint(sync), lambda _: failure_message(sync))
    if not result.ok:
        return
    drift = DriftSummary(env, commit, result.drift, target_url=target_url)
    fingerprint = drift_fingerprint(drift) if drift.unexpected else None
    yield Observation(env, "drift", fingerprint, lambda news: drift_message(drift, drift_kind(news)))
    health = result.health
    if health is not None and health.status in (HealthStatus.FAILED, HealthStatus.CURRENT):
        failed = health.status is HealthStatus.FAILED
        reason = rollout_reason(health.message) if failed else ""
        rollout = FailureSummary(env, commit, "rollout", reason, health.message if failed else "", target_url)
        yield Observation(env, "rollout", failure_fingerprint(rollout), lambda _: failure_message(rollout))


def digest_slot(digest: DigestConfig, now: datetime) -> datetime | None:
    """The latest slot of the schedule at or before ``now`` and within ``DIGEST_GRACE``."""
    trigger = digest_trigger(digest)
    slot, latest = trigger.get_next_fire_time(None, now - DIGEST_GRACE), None
    while slot is not None and slot <= now:
        latest = slot
        slot = trigger.get_next_fire_time(slot, slot + timedelta(microseconds=1))
    return latest


class ChatReporter:
    """Tells chat about passes (a ``PassListener``) and, while leading, sends the digest."""

    def __init__(
        self,
        notifier: ChatNotifier,
        memory: MemoryStore,
        *,
        environments: Sequence[str],
        target_url: str | None = None,
        digest: DigestConfig | None = None,
        leading: Callable[[], bool] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        check_s: float = DIGEST_CHECK_S,
        check_drift: Callable[[], Sequence[PassResult]] | None = None,
    ) -> None:
        self.notifier = notifier
        self.memory = memory
        self.environments = tuple(environments)
        self.target_url = target_url
        self.digest = digest
        self._leading = leading
        #: reads every environment's drift now (the daemon's): with environments sharded across
        #: replicas, the leader's own passes see only its share
        self._check_drift = check_drift
        self._now = now
        self._lock = threading.Lock()
        self._seen: dict[str, DigestEnvironment] = {}  # per environment: its last pass that checked drift
        self._read: ChatMemory | None = None  # the memory as last read or written
        self._unsaved: dict[str, Told] = {}  # told, but not yet in the cluster
        tick = self.digest_if_due if digest is not None and leading is not None else None
        self._worker = ReportWorker("chat-reporter", tick=tick, tick_s=check_s)

    # --- PassListener --------------------------------------------------------------------------

    def applying(self, environment: str, commit: str) -> None:
        """Chat hears of outcomes, not of starts."""

    def finished(self, result: PassResult) -> None:
        if result.ok:
            with self._lock:
                self._seen[result.environment] = DigestEnvironment(result.environment, result.commit, result.drift)
        for seen in observations(result, self.target_url):
            self._worker.queue(f"{seen.environment}:{seen.topic}", functools.partial(self._tell, seen))

    def flush(self, timeout_s: float = 30.0) -> bool:
        return self._worker.flush(timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        self._worker.close(timeout_s)
        self.notifier.close()

    # --- telling (on the worker) -----------------------------------------------------------------

    def _tell(self, seen: Observation) -> None:
        memory, read = self._memory()
        updates: dict[str, Told] = {}
        errors = []
        at = _stamp(self._now())
        for destination in self.notifier.destinations:
            key = memory_key(destination, seen.environment, seen.topic)
            previous = memory.told(key)
            news = decide(previous.fingerprint if previous else None, seen.fingerprint)
            if news is None:
                continue
            try:
                self.notifier.send(destination, seen.message(news))
            except ReportError as exc:
                errors.append(str(exc))
                continue
            updates[key] = told_now(previous, seen.fingerprint, at)
        self._remember(updates, read)
        if errors:
            raise ReportError("; ".join(errors))

    def digest_if_due(self) -> None:
        """Sends the digest of the current slot to each destination that has not had it (the
        worker calls this every ``check_s`` seconds)."""
        if self.digest is None or self._leading is None or not self._leading():
            return
        now = self._now()
        slot = digest_slot(self.digest, now)
        if slot is None:
            return
        memory, read = self._memory()
        due = [d for d in self.notifier.destinations if digest_due(memory.told(digest_key(d)), slot.isoformat())]
        if not due:
            return
        environments = self._digest_view(memory)
        if any(not e.checked for e in environments) and now - slot < DIGEST_WAIT:
            return  # a new leader: its first passes are under way
        self._send_digest(due, slot.isoformat(), now, environments, read)

    def _send_digest(
        self, due: Sequence[str], slot: str, now: datetime, environments: Sequence[DigestEnvironment], read: ChatMemory
    ) -> None:
        message = digest_message(slot, now, environments, self.target_url)
        updates, errors = {}, []
        for destination in due:
            try:
                if message is not None:  # no open drift: nothing to remind of, the slot is done all the same
                    self.notifier.send(destination, message)
            except ReportError as exc:
                errors.append(str(exc))  # tried again at the next check, within DIGEST_GRACE
                continue
            updates[digest_key(destination)] = Told(slot, _stamp(now))
        self._remember(updates, read)
        if errors:
            raise ReportError("; ".join(errors))

    def _digest_view(self, memory: ChatMemory) -> list[DigestEnvironment]:
        seen = self._checked_now()
        if seen is None:
            with self._lock:
                seen = dict(self._seen)
        out = []
        for name in self.environments:
            env = seen.get(name)
            if env is None:
                out.append(DigestEnvironment(name, checked=False))
                continue
            since = drift_open_since(memory, self.notifier.destinations, name)
            out.append(DigestEnvironment(name, env.commit, env.objects, open_since=since))
        return out

    def _checked_now(self) -> dict[str, DigestEnvironment] | None:
        """Each environment's drift read now, when this reporter may (None: go by the passes seen).
        An environment that could not be read is left out: it counts as not checked."""
        if self._check_drift is None:
            return None
        try:
            results = self._check_drift()
        except GitOpsError as exc:
            log.warning("digest: drift could not be read, going by the passes seen: %s", exc)
            return None
        return {r.environment: DigestEnvironment(r.environment, r.commit, r.drift) for r in results if r.ok}

    # --- the memory ----------------------------------------------------------------------------

    def _memory(self) -> tuple[ChatMemory, ChatMemory]:
        """What was told (the cluster's record with what this process could not store yet), and
        the record as read (a write's precondition). When the cluster cannot be read, the record
        last read stands in (none: nothing was told; at worst something is told twice)."""
        try:
            self._read = self.memory.read()
        except GitOpsError as exc:
            log.warning("chat memory unreadable, going by what this process knows: %s", exc)
        read = self._read or ChatMemory()
        return merge_memory(self._unsaved, read), read

    def _remember(self, updates: Mapping[str, Told], read: ChatMemory) -> None:
        self._unsaved.update(updates)
        if not self._unsaved:
            return
        try:
            self._read = self.memory.record(dict(self._unsaved), read)
        except GitOpsError as exc:
            log.warning("chat memory not written (kept in this process, written with the next change): %s", exc)
            return
        self._unsaved.clear()


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
