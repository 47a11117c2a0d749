"""The git cache's bounds: which fetched pull-request heads to drop, and when to prune. Pure.

Previews fetch each pull request's head into the local copy; without these rules every PR ever
previewed would stay there for good (its ref, and every object only it reaches). A closed PR's
head is dropped at once; heads of PRs not previewed for ``max_age_s`` are dropped by a periodic
sweep (a ``closed`` webhook can be missed); and at most ``max_pull_refs`` heads, the most recently
previewed, are ever kept. Dropping a ref frees nothing until unreachable objects are pruned, which
costs a repack: done after ``prune_after_deletions`` drops, or ``prune_interval_s`` after the last
prune when anything was dropped since.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: how often the daemon sweeps the cache (and measures it)
SWEEP_INTERVAL_S = 600.0


@dataclass(frozen=True)
class CachePolicy:
    #: pull-request heads kept at most, the most recently previewed
    max_pull_refs: int = 100
    #: a head not previewed for this long is dropped (a missed ``closed`` webhook)
    max_age_s: float = 7 * 86400.0
    #: prune unreachable objects after this many heads were dropped …
    prune_after_deletions: int = 20
    #: … or this long after the last prune, when any was dropped since
    prune_interval_s: float = 6 * 3600.0
    #: objects younger than this are never pruned: a fetch in flight may not have written its ref yet
    prune_grace_s: float = 3600.0


@dataclass(frozen=True)
class CacheStats:
    """The cache as last measured: disk usage (as ``du`` counts it) and pull-request heads kept."""

    bytes: int
    pull_refs: int


def refs_to_drop(last_seen: Mapping[int, float], now: float, policy: CachePolicy) -> frozenset[int]:
    """PR numbers whose heads go: not previewed within ``max_age_s``, then the least recently
    previewed beyond ``max_pull_refs``. ``last_seen``: PR number → when last previewed."""
    stale = {n for n, t in last_seen.items() if now - t > policy.max_age_s}
    fresh = sorted((n for n in last_seen if n not in stale), key=lambda n: (last_seen[n], n), reverse=True)
    return frozenset(stale | set(fresh[max(0, policy.max_pull_refs) :]))


def prune_due(dropped_since: int, since_prune_s: float, policy: CachePolicy) -> bool:
    """Whether to prune now, ``dropped_since`` heads having been dropped ``since_prune_s`` after
    the last prune (nothing dropped: nothing to free)."""
    if dropped_since <= 0:
        return False
    return dropped_since >= policy.prune_after_deletions or since_prune_s >= policy.prune_interval_s
