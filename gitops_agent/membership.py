"""Membership: this replica's Lease among the live replicas that share the environments.

Every ``renew_interval_s`` a thread renews this replica's membership Lease
(``core.shard.member_name``; created when missing), lists the membership Leases, deletes those
expired (their replica is gone) and tells the scheduler the live members when they changed
(``on_change``), which decides what this replica owns (``core.shard``). A replica that could not
renew for ``renew_deadline_s`` reports no members (it owns nothing: others take its share once its
Lease expires). On shutdown the Lease is deleted, so the others take over at once.

A push received by one replica reaches an environment's owner through the owner's membership Lease
(``relay``): the ref is noted on it as on the leader's Lease, and the owner consumes it and hands it
to ``on_push``: at once, since between renewals it watches its own Lease (a noted ref ends the wait),
else at its next renewal. Every renewal is a write conditional on the resourceVersion read, so a
noted ref is never lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from gitops_agent.adapters.kube import ResourceInfo
from gitops_agent.core.lease import parse_lease, with_pushed_ref
from gitops_agent.core.shard import MEMBER_SELECTOR, expired_members, live_members, member_body, member_name
from gitops_agent.errors import ConflictError, ForbiddenError, GitOpsError
from gitops_agent.model import KubeObject

log = logging.getLogger(__name__)

LEASES = ResourceInfo(
    "coordination.k8s.io", "v1", "Lease", "leases", True, frozenset({"get", "list", "create", "update", "delete"})
)
NAMESPACES = ResourceInfo("", "v1", "Namespace", "namespaces", False, frozenset({"get", "create"}))


class MemberAPI(Protocol):
    """The calls membership makes (``adapters.kube.KubeClient`` has them)."""

    def get(self, info: ResourceInfo, namespace: str, name: str) -> KubeObject | None: ...

    def list(
        self, info: ResourceInfo, *, namespace: str | None = None, label_selector: str | None = None
    ) -> list[KubeObject]: ...

    def create(self, obj: KubeObject, info: ResourceInfo, *, field_manager: str) -> KubeObject: ...

    def replace(self, obj: KubeObject, info: ResourceInfo, *, field_manager: str) -> KubeObject: ...

    def delete(self, info: ResourceInfo, namespace: str, name: str) -> bool: ...


@dataclass(frozen=True)
class MembershipOptions:
    namespace: str
    identity: str
    lease_duration_s: float = 15.0
    renew_interval_s: float = 5.0
    #: a member that could not renew for this long owns nothing (below lease_duration_s)
    renew_deadline_s: float = 10.0
    field_manager: str = "gitops-agent"


class Membership:
    """Runs in a thread of its own (``start``/``stop``); ``step`` is one round, for tests."""

    def __init__(
        self,
        kube: MemberAPI,
        options: MembershipOptions,
        *,
        on_change: Callable[[tuple[str, ...]], None],
        on_push: Callable[[str], object] = lambda ref: None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if options.renew_deadline_s >= options.lease_duration_s:
            raise ValueError("renew_deadline_s must be below lease_duration_s")
        self.kube = kube
        self.options = options
        self._on_change, self._on_push = on_change, on_push
        self._now, self._clock = now, clock
        self._members: tuple[str, ...] | None = None  # None: never renewed yet
        self._renewed_at = 0.0
        self._version = ""  # of this replica's Lease as last written: its watch starts there
        self._end_watch: Callable[[], None] | None = None
        self._watch_refused = False  # warned once that RBAC refuses the watch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def members(self) -> tuple[str, ...]:
        return self._members or ()

    @property
    def joined(self) -> bool:
        """This replica's membership Lease was written and the members read at least once."""
        return self._members is not None and self.options.identity in self._members

    def ensure_namespace(self) -> None:
        """The agent's namespace, created when missing (as ``sync`` does): on a fresh cluster the
        Leases have nowhere to live otherwise. Raises GitOpsError, saying what to do, when it is
        missing and may not be created. A replica that may not read namespaces assumes it exists."""
        ns = self.options.namespace
        try:
            if self.kube.get(NAMESPACES, "", ns) is not None:
                return
        except ForbiddenError:
            return
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        try:
            self.kube.create(body, NAMESPACES, field_manager=self.options.field_manager)
        except ConflictError:
            return  # another replica created it first
        except ForbiddenError as exc:
            raise GitOpsError(
                f"namespace {ns!r} (agent.namespace) does not exist and this identity may not create it: "
                f"create it (kubectl create namespace {ns}) or grant create on namespaces ({exc})"
            ) from exc
        log.info("created namespace %s for the agent's Leases", ns)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="membership", daemon=True)
        self._thread.start()

    def stop(self, *, leave: bool = True) -> None:
        """Stops renewing; ``leave`` deletes the membership Lease so others take over at once."""
        self._stop.set()
        end = self._end_watch
        if end is not None:
            end()
        if self._thread is not None:
            self._thread.join(timeout=self.options.renew_interval_s + 10)
        if leave:
            o = self.options
            try:
                self.kube.delete(LEASES, o.namespace, member_name(o.identity))
                log.info("left the members (deleted Lease %s)", member_name(o.identity))
            except GitOpsError as exc:
                log.warning("could not delete the membership Lease (others take over when it expires): %s", exc)

    def _run(self) -> None:
        log.info("membership as %s in namespace %s", self.options.identity, self.options.namespace)
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # this thread must outlive any surprise
                log.exception("membership round failed")
            self._until_pushed(self.options.renew_interval_s)

    def _until_pushed(self, timeout_s: float) -> None:
        """Waits ``timeout_s``, or less: until another replica notes a push on this replica's Lease
        (watched, when the client watches and the interval is whole seconds; else a plain wait)."""
        deadline = self._clock() + timeout_s
        watch = getattr(self.kube, "watch", None)  # ``KubeClient.watch``; test doubles may have none
        if watch is None or timeout_s < 1 or not self._version:
            self._stop.wait(timeout_s)
            return
        try:
            events = watch(
                LEASES, namespace=self.options.namespace, label_selector=None, resource_version=self._version,
                timeout_s=int(timeout_s), opened=self._opened,
                field_selector=f"metadata.name={member_name(self.options.identity)}",
            )  # fmt: skip
            for kind, lease in events:
                if self._stop.is_set() or (kind == "MODIFIED" and parse_lease(lease).pushed):
                    return
                if kind == "ERROR" or self._clock() >= deadline:
                    break
        except ForbiddenError as exc:  # RBAC lacks "watch" on leases: relayed pushes wait for a renewal
            if not self._watch_refused:
                log.warning("membership: cannot watch its own Lease, relayed pushes wait up to %ss: %s",
                            self.options.renew_interval_s, exc)  # fmt: skip
            self._watch_refused = True
        except GitOpsError as exc:
            log.debug("membership: watch of its own Lease ended: %s", exc)
        finally:
            self._end_watch = None
        self._stop.wait(max(0.0, deadline - self._clock()))

    def _opened(self, end: Callable[[], None]) -> None:
        self._end_watch = end
        if self._stop.is_set():
            end()

    def step(self) -> tuple[str, ...]:
        """One round: renew, list, tidy, tell. Returns the live members as this replica sees them."""
        try:
            pushed = self._renew()
            leases = self.kube.list(LEASES, namespace=self.options.namespace, label_selector=MEMBER_SELECTOR)
        except GitOpsError as exc:
            log.warning("membership: %s", exc)
            if self._clock() - self._renewed_at >= self.options.renew_deadline_s:
                self._set(())  # our Lease may have expired for the others: own nothing
            return self.members
        now = self._now()
        self._tidy(leases, now)
        self._set(live_members(leases, now))
        for ref in pushed:
            log.info("push to %s relayed by another replica", ref)
            self._on_push(ref)
        return self.members

    def _renew(self) -> tuple[str, ...]:
        """Writes this replica's Lease; the refs noted on it since, now consumed."""
        o = self.options
        for _ in range(3):
            sent = self._clock()
            live = self.kube.get(LEASES, o.namespace, member_name(o.identity))
            record = parse_lease(live) if live is not None else None
            body = member_body(
                identity=o.identity, namespace=o.namespace, now=self._now(), duration_s=o.lease_duration_s,
                previous=record,
            )  # fmt: skip
            try:
                if record is None:
                    written = self.kube.create(body, LEASES, field_manager=o.field_manager)
                else:
                    written = self.kube.replace(body, LEASES, field_manager=o.field_manager)
            except ConflictError:
                continue  # a push was noted meanwhile: read it again
            self._version = str((written.get("metadata") or {}).get("resourceVersion") or "")
            self._renewed_at = sent
            return record.pushed if record else ()
        raise GitOpsError("membership Lease: three conflicting writes in a row")

    def _tidy(self, leases: list[KubeObject], now: datetime) -> None:
        mine = member_name(self.options.identity)
        for name in expired_members(leases, now):
            if name == mine:
                continue
            try:
                self.kube.delete(LEASES, self.options.namespace, name)
                log.info("deleted the expired membership Lease %s", name)
            except GitOpsError as exc:
                log.debug("could not delete %s: %s", name, exc)

    def _set(self, members: tuple[str, ...]) -> None:
        if members == self._members:
            return
        self._members = members
        log.info("members: %s", ", ".join(members) or "none")
        self._on_change(members)

    def relay(self, member: str, ref: str, *, attempts: int = 3) -> bool:
        """Notes a push to ``ref`` on ``member``'s Lease; False when it is gone or could not be written."""
        o = self.options
        for _ in range(attempts):
            try:
                live = self.kube.get(LEASES, o.namespace, member_name(member))
                if live is None:
                    return False
                self.kube.replace(with_pushed_ref(live, ref), LEASES, field_manager=o.field_manager)
                return True
            except ConflictError:
                continue  # the member renewed meanwhile: read again
            except GitOpsError as exc:
                log.warning("could not relay the push to %s to %s: %s", ref, member, exc)
                return False
        return False
