"""One writer per environment: the rules of the per-environment lock, without the API calls.

A pass that may write an environment (an apply, a rollback applied at once, a repair) first holds
the Lease ``gitops-agent-env-<env>`` in the agent's namespace, whoever runs it: the daemon, a
``gitops-agent sync`` from a laptop, ``rollback --now``. Dry runs and read-only commands take no
lock. The Lease follows leader election's rules (``core.lease``): the holder renews ``renewTime``
within ``leaseDurationSeconds``; another process takes it only once it expired or was released;
every write carries the ``resourceVersion`` read, so of two processes racing for it one wins and
the other gets a conflict.

A holder checks it still holds the lock before each write batch by renewing it (read, then a
conditional write). It stops, writing nothing more, when the Lease names another holder (or was
deleted), or when it could not renew for ``renew_deadline_s`` (below the duration, so it gives up
before anyone may take over). The lock names the commit being applied, so a process that waits for
it can say who holds it, since when, doing what.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gitops_agent.core.lease import LeaseRecord, lease_body
from gitops_agent.model import KubeObject

LOCK_PREFIX = "gitops-agent-env-"
COMMIT_ANNOTATION = "gitops-agent.io/commit"
CUT_SHORT = "the pass was cut short: nothing more was written"


@dataclass(frozen=True)
class LockTimes:
    """How long a lock lives unrenewed, how often it is renewed, when a holder gives up on it."""

    duration_s: float = 30.0
    renew_interval_s: float = 5.0
    #: a holder that could not renew for this long writes nothing more (below duration_s: clocks
    #: of two processes may differ by the difference without two writers)
    renew_deadline_s: float = 20.0

    def __post_init__(self) -> None:
        if not 0 < self.renew_deadline_s < self.duration_s:
            raise ValueError("renew_deadline_s must be positive and below duration_s, or two processes could write")

    @classmethod
    def of(cls, duration_s: float) -> LockTimes:
        """Renewed six times per duration, given up after two thirds of it."""
        return cls(duration_s, duration_s / 6, duration_s * 2 / 3)


def lock_name(environment: str) -> str:
    return f"{LOCK_PREFIX}{environment}"


def lock_body(
    *,
    environment: str,
    namespace: str,
    me: str,
    now: datetime,
    duration_s: float,
    previous: LeaseRecord | None,
    commit: str,
) -> KubeObject:
    """The lock held by ``me`` from ``now`` (conditional on ``previous``'s resourceVersion), naming
    the commit its pass applies."""
    body = lease_body(
        name=lock_name(environment), namespace=namespace, me=me, now=now, duration_s=duration_s, previous=previous
    )
    if commit:
        body["metadata"]["annotations"] = {COMMIT_ANNOTATION: commit}
    return body


def lock_commit(lease: KubeObject | None) -> str:
    """The commit the holder's pass applies, when it said so."""
    annotations = ((lease or {}).get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(COMMIT_ANNOTATION) or "")


def mine(record: LeaseRecord | None, me: str) -> bool:
    """Does ``me`` still hold the lock? Anyone else's name (or none: released, deleted) says no."""
    return record is not None and record.holder == me


def locked_message(environment: str, record: LeaseRecord, *, commit: str, waited_s: float) -> str:
    """Why a pass gave up waiting: who holds the lock, since when, doing what."""
    since = f" since {_when(record.acquired)}" if record.acquired else ""
    doing = f", applying {commit[:12]}" if commit else ""
    return (
        f"environment {environment!r} is locked by {record.holder}{since}{doing}: another pass is writing it; "
        f"waited {waited_s:g}s and wrote nothing (try again when it is done, or wait longer: --lock-timeout)"
    )


def lost_message(environment: str, record: LeaseRecord | None) -> str:
    """Why a pass stopped between two writes: another process holds its lock now."""
    if record is None:
        return f"the lock of environment {environment!r} was deleted; {CUT_SHORT}"
    if not record.holder:
        return f"the lock of environment {environment!r} was released by someone else; {CUT_SHORT}"
    since = f" (since {_when(record.acquired)})" if record.acquired else ""
    return f"the lock of environment {environment!r} was taken over by {record.holder}{since}; {CUT_SHORT}"


def unrenewed_message(environment: str, seconds: float, error: str) -> str:
    return f"the lock of environment {environment!r} could not be renewed for {seconds:.0f}s ({error}); {CUT_SHORT}"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "?"
