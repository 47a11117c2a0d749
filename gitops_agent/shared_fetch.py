"""The config repository fetched once for many passes: whichever pass needs it first fetches,
under a lock, and the passes that start within ``max_age_s`` reuse that fetch (and its error), so
N environments don't fetch N times. A push invalidates it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from gitops_agent.core.schedule import fetch_due
from gitops_agent.errors import GitOpsError

log = logging.getLogger(__name__)


class SharedFetch:
    def __init__(
        self, fetch: Callable[[], GitOpsError | None], *, max_age_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fetch = fetch
        self._max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._started: float | None = None
        self._invalidated: float | None = None
        self.error: GitOpsError | None = None
        self.succeeded_once = False

    def invalidate(self) -> None:
        """A push: the next pass fetches again. A plain store: never waits for a fetch in flight."""
        self._invalidated = self._clock()

    def fetch_if_stale(self) -> GitOpsError | None:
        with self._lock:
            now = self._clock()
            due = fetch_due(
                last_started=self._started, invalidated=self._invalidated, now=now, max_age_s=self._max_age_s
            )
            if not due:
                return self.error
            self._started = now
            self.error = self._fetch()
            if self.error is None:
                self.succeeded_once = True
            else:
                log.warning("fetching the config repository failed: %s", self.error)
            return self.error
