"""One writer per environment: the lock a pass holds while it may write (rules in ``core.env_lock``).

``Locks`` are one process's: one identity (``leader.default_identity``: the pod or host name and a
random suffix), one set of times. ``Locks.of`` gives the lock of one environment for one pass:

- ``acquire`` reads the Lease and creates it, takes it over (expired or released) or waits for the
  holder, polling, up to ``wait_s``; then ``LockedError`` (reason ``Locked``) names the holder,
  since when and the commit it applies. A thread renews the lock every ``renew_interval_s``.
- ``guard`` renews it at once and raises ``LockLostError`` (reason ``LockLost``) when another
  process holds it now, or when it could not be renewed for ``renew_deadline_s``: the cluster verbs
  call it before each write batch, before pruning and before the inventory, so a pass that lost its
  lock writes nothing more. A guard within ``fresh_s`` of the last renewal sent (the renew interval,
  at most a quarter of the renew deadline: 5s by default) needs no round trip: nobody may take a
  lock over before ``duration_s`` passes unrenewed, and the renew deadline already lets a holder
  write four times as long on an unconfirmed lock. A pause (SIGSTOP, a frozen VM) counts: the time
  is monotonic.
- A renewal is one write, conditional on the resourceVersion this pass last wrote (it proves that
  nobody wrote since); only on a conflict is the Lease read to see whose it is now.
- ``release`` stops renewing and empties the holder (conditionally, as a renewal), so the next pass
  takes it at once; a lock not released (a crash) expires after ``duration_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol

from gitops_agent.adapters.kube import ResourceInfo
from gitops_agent.core.env_lock import (
    LockTimes,
    lock_body,
    lock_commit,
    lock_name,
    locked_message,
    lost_message,
    mine,
    unrenewed_message,
)
from gitops_agent.core.lease import Decision, LeaseRecord, parse_lease, released_body, should_acquire
from gitops_agent.errors import ClusterError, ConflictError, GitOpsError
from gitops_agent.model import KubeObject

log = logging.getLogger(__name__)

LEASES = ResourceInfo("coordination.k8s.io", "v1", "Lease", "leases", True, frozenset({"get", "create", "update"}))
NAMESPACES = ResourceInfo("", "v1", "Namespace", "namespaces", False, frozenset({"get", "patch"}))


class LockedError(ClusterError):
    """Another process holds the environment's lock, and kept it longer than this pass waits."""

    reason = "Locked"


class LockLostError(ClusterError):
    """The pass no longer holds the environment's lock: it was cut short before its next write."""

    reason = "LockLost"


class LeaseClient(Protocol):
    """The calls the lock makes (``adapters.kube.KubeClient`` has them)."""

    def get(self, info: ResourceInfo, namespace: str, name: str) -> KubeObject | None: ...

    def create(self, obj: KubeObject, info: ResourceInfo, *, field_manager: str) -> KubeObject: ...

    def replace(self, obj: KubeObject, info: ResourceInfo, *, field_manager: str) -> KubeObject: ...

    def apply(self, obj: KubeObject, info: ResourceInfo, *, field_manager: str) -> KubeObject: ...


@dataclass(frozen=True)
class LockSettings:
    times: LockTimes = field(default_factory=LockTimes)
    #: how long a pass waits for another holder before it fails with reason Locked
    wait_s: float = 30.0
    #: how often a waiting pass reads the lock again
    poll_s: float = 0.5


class Locks:
    """The per-environment locks of one process."""

    def __init__(
        self,
        identity: str,
        *,
        namespace: str,
        field_manager: str,
        settings: LockSettings | None = None,
        stop: threading.Event | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.identity = identity
        self.namespace = namespace
        self.field_manager = field_manager
        self.settings = settings or LockSettings()
        #: set on shutdown: a pass waiting for a lock stops waiting
        self.stop = stop or threading.Event()
        self.now, self.clock = now, clock

    def of(self, kube: LeaseClient, environment: str) -> EnvironmentLock:
        """The lock of ``environment`` for one pass, not held yet (a ``with`` block releases it)."""
        return EnvironmentLock(kube, environment, self)


class EnvironmentLock:
    def __init__(self, kube: LeaseClient, environment: str, locks: Locks) -> None:
        self.kube = kube
        self.environment = environment
        self._locks = locks
        self._name = lock_name(environment)
        self._mutex = threading.Lock()  # the pass's guard and the renewing thread write one Lease
        self._held = False
        self._lost = ""
        self._commit = ""
        self._renewed_at = 0.0
        #: the Lease as this pass last wrote it: renewals and the release are conditional on it
        self._record: LeaseRecord | None = None
        self._halt = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def held(self) -> bool:
        return self._held and not self._lost

    # --- acquire -------------------------------------------------------------------------------

    def acquire(self, commit: str = "") -> None:
        """Holds the lock (at once if this pass does already), waiting up to ``wait_s`` for
        another holder; LockedError after that, or when the process is stopping."""
        if self.held:
            return
        locks, times = self._locks, self._locks.settings.times
        started = locks.clock()
        deadline = started + locks.settings.wait_s
        while True:
            live = self._read()
            record = parse_lease(live) if live is not None else None
            decision = should_acquire(record, locks.now(), locks.identity)
            if decision is Decision.WAIT and record is not None:
                left = deadline - locks.clock()
                if left <= 0 or locks.stop.is_set():
                    waited = round(locks.clock() - started, 1)
                    commit_held = lock_commit(live)
                    raise LockedError(locked_message(self.environment, record, commit=commit_held, waited_s=waited))
                locks.stop.wait(min(locks.settings.poll_s, left))
                continue
            if decision is Decision.TAKE_OVER and record is not None and record.holder:
                log.warning(
                    "taking over the expired lock of environment %s from %s: its pass was cut short",
                    self.environment,
                    record.holder,
                )
            sent = locks.clock()
            body = self._body(record, commit, times.duration_s)
            try:
                if decision is Decision.CREATE:
                    self._ensure_namespace()
                    stored = self.kube.create(body, LEASES, field_manager=locks.field_manager)
                else:
                    stored = self.kube.replace(body, LEASES, field_manager=locks.field_manager)
            except ConflictError:
                continue  # another process wrote it first: read it again
            with self._mutex:
                self._held, self._lost, self._commit, self._renewed_at = True, "", commit, sent
                self._record = parse_lease(stored)
            self._start_renewing()
            return

    # --- hold ----------------------------------------------------------------------------------

    def guard(self) -> None:
        """Before a write: renew the lock now (unless renewed within ``fresh_s``), or raise
        LockLostError (the write must not happen)."""
        self._renew(fresh_ok=True)

    @property
    def fresh_s(self) -> float:
        times = self._locks.settings.times
        return min(times.renew_interval_s, times.renew_deadline_s / 4)

    def _renew(self, *, fresh_ok: bool = False) -> None:
        locks, times = self._locks, self._locks.settings.times
        with self._mutex:
            if not self._held:
                raise LockLostError(f"the lock of environment {self.environment!r} is not held; nothing was written")
            if self._lost:
                raise LockLostError(self._lost)
            sent = locks.clock()
            if fresh_ok and sent - self._renewed_at < self.fresh_s:
                return
            try:
                if self._record is not None and self._renewed(self._record, sent):
                    return
                for _ in range(3):  # a conflict: someone wrote between our read and write; read again
                    live = self._read()
                    record = parse_lease(live) if live is not None else None
                    if not mine(record, locks.identity):
                        raise self._lose(lost_message(self.environment, record))
                    if record is not None and self._renewed(record, sent):
                        return
                raise ClusterError(f"Lease/{locks.namespace}/{self._name}: three conflicting writes in a row")
            except LockLostError:
                raise
            except GitOpsError as exc:
                unrenewed = locks.clock() - self._renewed_at
                if unrenewed < times.renew_deadline_s:
                    log.warning("could not renew the lock of environment %s (will retry): %s", self.environment, exc)
                    return  # still ours for longer than anyone else's clock could say otherwise
                raise self._lose(unrenewed_message(self.environment, unrenewed, str(exc))) from exc

    def _renewed(self, previous: LeaseRecord, sent: float) -> bool:
        """Under ``_mutex``: the lock written again over ``previous``; False on a conflict (someone
        wrote since it was read or written)."""
        locks = self._locks
        body = self._body(previous, self._commit, locks.settings.times.duration_s)
        try:
            stored = self.kube.replace(body, LEASES, field_manager=locks.field_manager)
        except ConflictError:
            return False
        self._renewed_at, self._record = sent, parse_lease(stored)
        return True

    def _lose(self, message: str) -> LockLostError:
        self._lost = message
        self._halt.set()
        log.warning("%s", message)
        return LockLostError(message)

    def _start_renewing(self) -> None:
        self._halt = threading.Event()
        self._renewer = threading.Thread(
            target=self._renew_until_halted, args=(self._halt,), name=f"lock-{self.environment}", daemon=True
        )
        self._renewer.start()

    def _renew_until_halted(self, halt: threading.Event) -> None:
        while not halt.wait(self._locks.settings.times.renew_interval_s):
            try:
                self._renew()
            except LockLostError:
                return  # the pass finds out at its next guard
            except Exception:  # this thread must outlive surprises; the guard decides
                log.exception("renewing the lock of environment %s failed", self.environment)

    # --- release -------------------------------------------------------------------------------

    def release(self) -> None:
        """Stops renewing and empties the holder, so another pass takes the lock at once. A lock
        that cannot be released expires after its duration."""
        self._halt.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(timeout=30)
        with self._mutex:
            held, lost = self._held, self._lost
            self._held = False
            if not held or lost:
                return
            locks = self._locks
            try:
                if self._record is not None and self._released(self._record):
                    return
                live = self._read()
                record = parse_lease(live) if live is not None else None
                if record is not None and mine(record, locks.identity):
                    self._released(record)
            except GitOpsError as exc:
                expires = locks.settings.times.duration_s
                log.warning(
                    "could not release the lock of environment %s (it expires within %.0fs): %s",
                    self.environment,
                    expires,
                    exc,
                )

    def _released(self, previous: LeaseRecord) -> bool:
        """Under ``_mutex``: the holder emptied over ``previous``; False on a conflict."""
        locks = self._locks
        body = released_body(name=self._name, namespace=locks.namespace, now=locks.now(), previous=previous)
        try:
            self.kube.replace(body, LEASES, field_manager=locks.field_manager)
        except ConflictError:
            return False
        return True

    def __enter__(self) -> EnvironmentLock:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()

    # --- the API -------------------------------------------------------------------------------

    def _read(self) -> KubeObject | None:
        return self.kube.get(LEASES, self._locks.namespace, self._name)

    def _body(self, previous: LeaseRecord | None, commit: str, duration_s: float) -> KubeObject:
        locks = self._locks
        return lock_body(
            environment=self.environment,
            namespace=locks.namespace,
            me=locks.identity,
            now=locks.now(),
            duration_s=duration_s,
            previous=previous,
            commit=commit,
        )

    def _ensure_namespace(self) -> None:
        """The agent's namespace, created if missing (as ``state.StateStore`` does)."""
        namespace = self._locks.namespace
        if self.kube.get(NAMESPACES, "", namespace) is None:
            ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            self.kube.apply(ns, NAMESPACES, field_manager=self._locks.field_manager)
