"""Pull-request previews queued one at a time on a worker of their own: pushes to a PR while its
preview waits replace it (the newest head is the only one worth showing), and a preview that fails
is logged, never taken down with the daemon. The git cache's housekeeping (``RefKeeper``: dropping
the heads of closed PRs, sweeps) runs on the same worker, so it never deletes a head under a preview."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Protocol

log = logging.getLogger(__name__)

#: previews a pull request: (number, head sha, base branch)
Previewer = Callable[[int, str, str], object]


class RefKeeper(Protocol):
    """The git cache's housekeeping (``git_hygiene.PullRefKeeper``)."""

    def seen(self, number: int) -> None: ...

    def closed(self, number: int) -> None: ...

    def sweep(self) -> object: ...


class PreviewQueue:
    def __init__(self, previewer: Previewer, keeper: RefKeeper | None = None) -> None:
        self._previewer = previewer
        self.keeper = keeper
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[str, str]] = {}  # latest head per PR, waiting for the worker
        self._pool = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="preview")

    def submit(self, number: int, head_sha: str, base_ref: str) -> None:
        with self._lock:
            queued = number in self._waiting
            self._waiting[number] = (head_sha, base_ref)
        if not queued:
            self._pool.submit(self._run, number)

    def closed(self, number: int) -> futures.Future[None] | None:
        """PR ``number`` was closed: a preview still waiting is moot, and its head leaves the cache."""
        with self._lock:
            self._waiting.pop(number, None)
        return self._housekeeping(lambda k: k.closed(number))

    def sweep(self) -> futures.Future[None] | None:
        """Queue a sweep of the git cache (``PullRefKeeper.sweep``) behind the previews waiting."""
        return self._housekeeping(lambda k: k.sweep())

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, number: int) -> None:
        with self._lock:
            waiting = self._waiting.pop(number, None)
        if waiting is None:  # closed meanwhile
            return
        head_sha, base_ref = waiting
        try:
            self._previewer(number, head_sha, base_ref)
        except Exception:  # a preview never takes the daemon down
            log.exception("preview of pull request #%d at %s failed", number, head_sha[:12])
        if self.keeper is not None:
            self._keep(lambda k: k.seen(number))

    def _housekeeping(self, step: Callable[[RefKeeper], object]) -> futures.Future[None] | None:
        if self.keeper is None:
            return None
        try:
            return self._pool.submit(self._keep, step)
        except RuntimeError:  # stopped
            return None

    def _keep(self, step: Callable[[RefKeeper], object]) -> None:
        if self.keeper is None:
            return
        try:
            step(self.keeper)
        except Exception:  # housekeeping never takes the previews down
            log.exception("git cache housekeeping failed")
