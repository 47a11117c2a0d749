"""Leader election: the loop that reads, renews or takes over the agent's Lease.

The decisions are pure (``core.lease.should_acquire``); this is the shell that does the API calls
every ``renew_interval_s`` and tells the daemon (``on_change``) when this replica starts or stops
leading. Writes are conditional: a take-over or renewal is a ``replace`` carrying the Lease's
``resourceVersion``, a first Lease a ``create``; the loser of a race gets ConflictError and reads
again next time. A leader that cannot renew for ``renew_deadline_s`` (API server unreachable)
steps down before its Lease can expire (``lease_duration_s``), so it never still runs passes when
another replica takes over. On shutdown the Lease is released (holder emptied) so the other replica
takes over within one renew interval instead of waiting for expiry.

Followers relay the pushes their webhook endpoint receives through the Lease (``relay_push``); the
leader hands each relayed ref to ``on_push`` once its renewal, which consumes them, succeeded.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from gitops_agent.adapters.kube import ResourceInfo
from gitops_agent.core.lease import (
    Decision,
    lease_body,
    parse_lease,
    released_body,
    should_acquire,
    with_pushed_ref,
)
from gitops_agent.errors import ConflictError, GitOpsError
from gitops_agent.model import KubeObject

__all__ = ["LEASES", "LeaderElector", "LeaderOptions", "LeaseAPI", "PushRelay", "default_identity", "should_acquire"]

log = logging.getLogger(__name__)

LEASES = ResourceInfo("coordination.k8s.io", "v1", "Lease", "leases", True, frozenset({"get", "create", "update"}))


class LeaseAPI(Protocol):
    """The three calls election makes (``adapters.kube.KubeClient`` has them)."""

    def get(self, info: ResourceInfo, namespace: str, name: str) -> KubeObject | None: ...

    def create(self, obj: KubeObject, info: ResourceInfo, *, field_manager: str) -> KubeObject: ...

    def replace(self, obj: KubeObject, info: ResourceInfo, *, field_manager: str) -> KubeObject: ...


def default_identity() -> str:
    """Pod name (``$POD_NAME`` from the downward API, else the hostname) and a random suffix: a
    restarted pod with the same name is a new holder, never mistaken for the old one."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class LeaderOptions:
    namespace: str
    name: str = "gitops-agent-leader"
    identity: str = field(default_factory=default_identity)
    lease_duration_s: float = 15.0
    renew_interval_s: float = 5.0
    #: a leader that could not renew for this long steps down (must be below lease_duration_s)
    renew_deadline_s: float = 10.0
    field_manager: str = "gitops-agent"


class LeaderElector:
    """Runs in a thread of its own (``start``/``stop``); ``step`` is one round, for tests."""

    def __init__(
        self,
        kube: LeaseAPI,
        options: LeaderOptions,
        *,
        on_change: Callable[[bool], None],
        on_push: Callable[[str], object] = lambda ref: None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if options.renew_deadline_s >= options.lease_duration_s:
            raise ValueError("renew_deadline_s must be below lease_duration_s, or two replicas could lead")
        self.kube = kube
        self.options = options
        self._on_change = on_change
        self._on_push = on_push
        self._now, self._clock = now, clock
        self._leading = False
        self._renewed_at = 0.0
        self._settled = False  # a round read the Lease and either holds or follows it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        return self._leading

    @property
    def settled(self) -> bool:
        """A round has read the Lease and this replica holds it or follows its holder."""
        return self._settled

    @property
    def identity(self) -> str:
        return self.options.identity

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self, *, release: bool = True) -> None:
        """Stops renewing; ``release`` gives the Lease up (only once no pass of ours is running)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.options.renew_interval_s + 10)
        if release and self._leading:
            self.release()
        self._set(False)

    def _run(self) -> None:
        log.info("leader election as %s on Lease %s/%s", self.identity, self.options.namespace, self.options.name)
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # this thread must outlive any surprise; leading only until the deadline
                log.exception("leader election round failed (does namespace %s exist?)", self.options.namespace)
                self._set(self._within_deadline())
            self._stop.wait(self.options.renew_interval_s)

    def step(self) -> bool:
        """One round: read the Lease, decide, write. Returns whether this replica leads now."""
        try:
            leading = self._attempt()
        except ConflictError:
            log.info("another replica wrote the Lease first; reading it again next round")
            leading = self._within_deadline()
        except GitOpsError as exc:
            log.warning("leader election: %s", exc)
            leading = self._within_deadline()
        self._set(leading)
        return leading

    def _attempt(self) -> bool:
        o = self.options
        live = self.kube.get(LEASES, o.namespace, o.name)
        record = parse_lease(live) if live is not None else None
        now = self._now()
        decision = should_acquire(record, now, self.identity)
        if decision is Decision.WAIT:
            self._settled = True
            return False
        body = lease_body(
            name=o.name, namespace=o.namespace, me=self.identity, now=now, duration_s=o.lease_duration_s,
            previous=record,
        )  # fmt: skip
        if decision is Decision.CREATE:
            self.kube.create(body, LEASES, field_manager=o.field_manager)
        else:
            if decision is Decision.TAKE_OVER and record is not None:
                log.info("taking over the Lease from %s", record.holder or "nobody (released)")
            self.kube.replace(body, LEASES, field_manager=o.field_manager)
        self._renewed_at = self._clock()
        self._settled = True
        for ref in record.pushed if record else ():
            log.info("push to %s relayed by another replica", ref)
            self._on_push(ref)
        return True

    def relay_push(self, ref: str, *, attempts: int = 3) -> bool:
        return PushRelay(self.kube, self.options).relay(ref, attempts=attempts)

    def _within_deadline(self) -> bool:
        """A leader whose renewal failed stays leader only until the renew deadline."""
        return self._leading and self._clock() - self._renewed_at < self.options.renew_deadline_s

    def release(self) -> None:
        """Empties the holder, so another replica takes over at once; a failure only means it waits
        for the Lease to expire."""
        o = self.options
        try:
            live = self.kube.get(LEASES, o.namespace, o.name)
            record = parse_lease(live) if live is not None else None
            if record is not None and record.holder == self.identity:
                body = released_body(name=o.name, namespace=o.namespace, now=self._now(), previous=record)
                self.kube.replace(body, LEASES, field_manager=o.field_manager)
                log.info("released the Lease")
        except GitOpsError as exc:
            log.warning("could not release the Lease (another replica takes over when it expires): %s", exc)

    def _set(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        log.info("%s leading as %s", "started" if leading else "stopped", self.identity)
        self._on_change(leading)


class PushRelay:
    """A follower's way to hand a push to the leader: the ref is noted on the Lease, which the
    leader's next renewal consumes (``LeaderElector``). Needs only the Lease, not the election loop,
    so the scheduler can be given it before the elector exists."""

    def __init__(self, kube: LeaseAPI, options: LeaderOptions) -> None:
        self.kube = kube
        self.options = options

    def relay(self, ref: str, *, attempts: int = 3) -> bool:
        """False when there is no other leader to tell (no Lease, or this replica holds it) or the
        Lease could not be written."""
        o = self.options
        for _ in range(attempts):
            try:
                live = self.kube.get(LEASES, o.namespace, o.name)
                if live is None or parse_lease(live).holder in ("", o.identity):
                    return False
                self.kube.replace(with_pushed_ref(live, ref), LEASES, field_manager=o.field_manager)
                return True
            except ConflictError:
                continue  # the leader renewed meanwhile: read again
            except GitOpsError as exc:
                log.warning("could not relay the push to %s to the leader: %s", ref, exc)
                return False
        return False
