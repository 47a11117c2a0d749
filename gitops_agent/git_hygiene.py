"""Keeps the git cache bounded: pull-request heads dropped when their PR closes, when not previewed
for a while, or beyond the newest ``max_pull_refs``; unreachable objects pruned; the size measured.

The rules are ``core.git_cache``'s; this holds when each head was last previewed (in memory: heads
found in the cache at start count as seen then, so they go ``max_age_s`` later unless previewed).
Its methods run on the preview worker (``PreviewQueue``), one at a time and never beside a preview,
so a head is never deleted under a preview rendering it. A failure is logged; the next sweep retries.
No cache yet (the first fetch has not made the bare copy, or is making it) is no failure: there is
nothing to keep, and it measures as what is on disk with no heads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from gitops_agent.adapters.git_cache import GitCache
from gitops_agent.core.git_cache import CachePolicy, CacheStats, prune_due, refs_to_drop
from gitops_agent.errors import GitOpsError

log = logging.getLogger(__name__)


class PullRefKeeper:
    def __init__(
        self,
        cache: GitCache,
        policy: CachePolicy | None = None,
        *,
        on_measure: Callable[[CacheStats], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache = cache
        self.policy = policy or CachePolicy()
        self._on_measure = on_measure
        self._clock = clock
        self._lock = threading.Lock()  # guards the fields below: stats() is read from /status
        self._last_seen: dict[int, float] = {}
        self._dropped_since_prune = 0
        self._pruned_at = clock()
        self._stats: CacheStats | None = None

    def seen(self, number: int) -> None:
        """PR ``number`` was just previewed (its head fetched); the least recent go beyond the bound."""
        with self._lock:
            self._last_seen[number] = self._clock()
            over = len(self._last_seen) > self.policy.max_pull_refs
        if over:
            self._guarded("bounding the pull-request heads", self._drop_due)

    def closed(self, number: int) -> None:
        """PR ``number`` was closed: its head leaves the cache now (if it was ever fetched: a PR
        never previewed, from a fork say, frees nothing and must not count towards a prune)."""
        self._guarded(f"dropping the head of pull request #{number}", lambda: self._drop_closed(number))

    def sweep(self) -> CacheStats | None:
        """Adopt heads found in the cache, drop those due, prune when due, measure."""
        self._guarded("sweeping the git cache", self._sweep)
        return self.stats()

    def stats(self) -> CacheStats | None:
        """As last measured; None before the first measurement."""
        with self._lock:
            return self._stats

    def _sweep(self) -> None:
        if not is_repository(self.cache.source.path):
            with self._lock:
                self._last_seen = {}  # whatever was seen is gone with the copy that held it
            self._measure(pull_refs=0)  # git would only say "not a git repository"
            return
        present = self.cache.pull_refs()
        now = self._clock()
        with self._lock:
            # heads fetched before this process started (or by the CLI) count as seen now
            self._last_seen = {n: self._last_seen.get(n, now) for n in present}
        self._drop_due()

    def _drop_closed(self, number: int) -> None:
        if number in self.cache.pull_refs():
            self._drop([number])
            return
        with self._lock:
            self._last_seen.pop(number, None)

    def _drop_due(self) -> None:
        with self._lock:
            due = refs_to_drop(self._last_seen, self._clock(), self.policy)
        self._drop(sorted(due))

    def _drop(self, numbers: Iterable[int]) -> None:
        numbers = list(numbers)
        self.cache.delete_pull_refs(numbers)
        with self._lock:
            for n in numbers:
                self._last_seen.pop(n, None)
            self._dropped_since_prune += len(numbers)
            due = prune_due(self._dropped_since_prune, self._clock() - self._pruned_at, self.policy)
        if due:
            self.cache.prune(self.policy.prune_grace_s)
            with self._lock:
                self._dropped_since_prune, self._pruned_at = 0, self._clock()
            log.info("git cache pruned after dropping pull-request heads")
        self._measure()

    def _measure(self, *, pull_refs: int | None = None) -> None:
        if pull_refs is None:
            pull_refs = len(self.cache.pull_refs())
        stats = CacheStats(self.cache.size_bytes(), pull_refs)
        with self._lock:
            self._stats = stats
        if self._on_measure is not None:
            self._on_measure(stats)

    def _guarded(self, what: str, step: Callable[[], None]) -> None:
        try:
            step()
        except GitOpsError as exc:  # housekeeping never takes previews down; the next sweep retries
            log.warning("%s failed: %s", what, exc)


def is_repository(path: Path) -> bool:
    """Whether git takes ``path`` for a bare repository: ``HEAD``, ``objects/`` and ``refs/`` in it.
    Absent, or a directory the first fetch has created but not yet run ``git init`` in, it is not."""
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()
