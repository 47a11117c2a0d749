"""Leader election over a ``coordination.k8s.io/v1`` Lease: the decisions, without the API calls.

Two replicas run so a node drain doesn't stop deployments, but only one may apply and report:
two writers would fight over objects and post every GitHub status twice. The replica named in the
Lease's ``holderIdentity`` leads while it renews ``renewTime`` within ``leaseDurationSeconds``; the
others wait and take over once it has expired (or was released on shutdown: holder empty).
Writes use the Lease's ``resourceVersion``, so of two replicas racing to take over, one wins and
the other gets a conflict.

A push webhook may reach a follower (the Service balances over both replicas). The follower adds
the pushed ref to the Lease's ``gitops-agent.io/pushed-refs`` annotation; the leader's next renewal
reads it, triggers the passes and, by writing the Lease without it, consumes it. Writes being
conditional, a ref is never lost between the two: a renewal that raced a relay conflicts and the
leader reads the ref on its next round.

Expiry is judged from ``renewTime`` and the local clock, so clocks of replicas may differ by up to
the lease duration minus the renew interval (15s - 5s by default) without two leaders.
"""

from __future__ import annotations

import copy
import enum
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gitops_agent.model import KubeObject

LEASE_API_VERSION = "coordination.k8s.io/v1"
PUSHED_REFS_ANNOTATION = "gitops-agent.io/pushed-refs"
_MICROTIME = "%Y-%m-%dT%H:%M:%S.%fZ"


class Decision(enum.Enum):
    CREATE = "create"  # no Lease yet: create it, holding it
    RENEW = "renew"  # I hold it: renew
    TAKE_OVER = "take-over"  # someone held it but let it expire or released it
    WAIT = "wait"  # someone else holds a live Lease


@dataclass(frozen=True)
class LeaseRecord:
    holder: str
    duration_s: float
    acquired: datetime | None
    renewed: datetime | None
    transitions: int
    resource_version: str
    pushed: tuple[str, ...] = ()  # refs relayed by followers, not yet consumed by the leader

    def expired(self, now: datetime) -> bool:
        if not self.holder or self.renewed is None:
            return True
        return now >= self.renewed + timedelta(seconds=self.duration_s)


def should_acquire(lease: LeaseRecord | None, now: datetime, me: str) -> Decision:
    """What replica ``me`` does next with the Lease as last read (None: there is none)."""
    if lease is None:
        return Decision.CREATE
    if lease.holder == me:
        return Decision.RENEW
    return Decision.TAKE_OVER if lease.expired(now) else Decision.WAIT


def parse_lease(obj: KubeObject) -> LeaseRecord:
    """Reads what it can; a missing or garbled time reads as never, so the Lease counts as expired."""
    spec = obj.get("spec") or {}
    meta = obj.get("metadata") or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        duration_s=float(spec.get("leaseDurationSeconds") or 0),
        acquired=_parse_time(spec.get("acquireTime")),
        renewed=_parse_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=str(meta.get("resourceVersion") or ""),
        pushed=_pushed_refs(meta),
    )


def with_pushed_ref(lease: KubeObject, ref: str) -> KubeObject:
    """The Lease as read, with ``ref`` added to the relayed pushes (written back conditionally)."""
    out = copy.deepcopy(lease)
    meta = out.setdefault("metadata", {})
    refs = _pushed_refs(meta)
    annotations = meta.get("annotations") or {}
    annotations[PUSHED_REFS_ANNOTATION] = json.dumps(sorted({*refs, ref}))
    meta["annotations"] = annotations
    return out


def _pushed_refs(meta: dict[str, Any]) -> tuple[str, ...]:
    try:
        refs = json.loads(((meta.get("annotations") or {}).get(PUSHED_REFS_ANNOTATION)) or "[]")
    except ValueError:
        return ()
    return tuple(r for r in refs if isinstance(r, str)) if isinstance(refs, list) else ()


def lease_body(
    *, name: str, namespace: str, me: str, now: datetime, duration_s: float, previous: LeaseRecord | None
) -> KubeObject:
    """The Lease held by ``me`` from ``now``: a renewal keeps acquireTime, a take-over counts a transition.
    The previous resourceVersion makes the write conditional on nobody having written since. Relayed
    pushes are not carried over: writing this consumes them."""
    renewing = previous is not None and previous.holder == me
    acquired = previous.acquired if renewing and previous and previous.acquired else now
    transitions = (previous.transitions if previous else 0) + (0 if renewing or previous is None else 1)
    spec: dict[str, Any] = {
        "holderIdentity": me,
        "leaseDurationSeconds": max(1, round(duration_s)),
        "acquireTime": format_time(acquired),
        "renewTime": format_time(now),
        "leaseTransitions": transitions,
    }
    return _lease(name, namespace, spec, previous)


def released_body(*, name: str, namespace: str, now: datetime, previous: LeaseRecord) -> KubeObject:
    """The Lease given up on shutdown: no holder, so another replica takes over at once."""
    spec: dict[str, Any] = {
        "holderIdentity": "",
        "leaseDurationSeconds": 1,
        "renewTime": format_time(now),
        "leaseTransitions": previous.transitions,
    }
    if previous.acquired is not None:
        spec["acquireTime"] = format_time(previous.acquired)
    return _lease(name, namespace, spec, previous)


def _lease(name: str, namespace: str, spec: dict[str, Any], previous: LeaseRecord | None) -> KubeObject:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if previous is not None and previous.resource_version:
        meta["resourceVersion"] = previous.resource_version
    return {"apiVersion": LEASE_API_VERSION, "kind": "Lease", "metadata": meta, "spec": spec}


def format_time(moment: datetime) -> str:
    """Kubernetes MicroTime: RFC 3339 in UTC with microseconds."""
    return moment.astimezone(UTC).strftime(_MICROTIME)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None
