"""Sharding: which live replica owns which environment, without the API calls.

Each replica of ``gitops-agent run`` renews a membership Lease of its own
(``gitops-agent-member-<identity>``, labelled ``gitops-agent.io/member``); the live members are
the holders of the membership Leases not expired by the local clock. Each environment belongs to
one of them by rendezvous (highest-random-weight) hashing: every member scores every environment
and the highest score owns it. A member joining takes from each other member only what it now
scores highest; a member leaving hands over only its own environments, each to its runner-up.
Every replica computes the same assignment from the same member list, with no coordination.

Ownership says who *should* run an environment's passes; the per-environment lock
(``core.env_lock``) is what keeps two replicas from writing it at once while members disagree
(one saw a member expire, another not yet).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import datetime

from gitops_agent.core.lease import LeaseRecord, lease_body, parse_lease
from gitops_agent.model import KubeObject

MEMBER_PREFIX = "gitops-agent-member-"
MEMBER_LABEL = "gitops-agent.io/member"
MEMBER_SELECTOR = f"{MEMBER_LABEL}=true"
_NAME_MAX = 253


def weight(member: str, environment: str) -> int:
    """The member's score for the environment: stable across processes and Python versions."""
    digest = hashlib.sha256(f"{member}\0{environment}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def owner(environment: str, members: Iterable[str]) -> str | None:
    """The member that owns ``environment`` (None when there is no member)."""
    return max(members, key=lambda m: (weight(m, environment), m), default=None)


def assignments(environments: Iterable[str], members: Iterable[str]) -> dict[str, str | None]:
    """Each environment's owner."""
    live = tuple(members)
    return {env: owner(env, live) for env in environments}


def owned_by(me: str, environments: Iterable[str], members: Iterable[str]) -> frozenset[str]:
    """The environments ``me`` owns among ``members`` (none when ``me`` is not one of them)."""
    live = tuple(members)
    if me not in live:
        return frozenset()
    return frozenset(env for env, who in assignments(environments, live).items() if who == me)


def member_name(identity: str) -> str:
    """The membership Lease of ``identity``: a valid object name (lower case, [a-z0-9-.])."""
    safe = re.sub(r"[^a-z0-9.-]+", "-", identity.lower()).strip("-.")
    return (MEMBER_PREFIX + safe)[:_NAME_MAX].rstrip("-.")


def member_body(
    *, identity: str, namespace: str, now: datetime, duration_s: float, previous: LeaseRecord | None
) -> KubeObject:
    """``identity``'s membership Lease renewed at ``now`` (conditional on ``previous``); writing it
    consumes the pushes other replicas noted on it, as the leader's Lease does."""
    body = lease_body(
        name=member_name(identity), namespace=namespace, me=identity, now=now, duration_s=duration_s, previous=previous
    )
    body["metadata"]["labels"] = {MEMBER_LABEL: "true", "app.kubernetes.io/managed-by": "gitops-agent"}
    return body


def live_members(leases: Iterable[KubeObject], now: datetime) -> tuple[str, ...]:
    """The holders of the membership Leases still live at ``now``, sorted."""
    records = (parse_lease(lease) for lease in leases)
    return tuple(sorted({r.holder for r in records if r.holder and not r.expired(now)}))


def expired_members(leases: Iterable[KubeObject], now: datetime) -> tuple[str, ...]:
    """Names of membership Leases expired at ``now`` (anyone may delete them: their holder is gone)."""
    out = []
    for lease in leases:
        if parse_lease(lease).expired(now):
            out.append(str((lease.get("metadata") or {}).get("name") or ""))
    return tuple(n for n in out if n)


def moved(before: Mapping[str, str | None], after: Mapping[str, str | None]) -> frozenset[str]:
    """Environments whose owner changed between two assignments."""
    return frozenset(env for env in after if before.get(env) != after[env])
