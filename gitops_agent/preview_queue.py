"""Pull-request previews queued one at a time on a worker of their own: pushes to a PR while its
preview waits replace it (the newest head is the only one worth showing), and a preview that fails
is logged, never taken down with the daemon."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent import futures

log = logging.getLogger(__name__)

#: previews a pull request: (number, head sha, base branch)
Previewer = Callable[[int, str, str], object]


class PreviewQueue:
    def __init__(self, previewer: Previewer) -> None:
        self._previewer = previewer
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[str, str]] = {}  # latest head per PR, waiting for the worker
        self._pool = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="preview")

    def submit(self, number: int, head_sha: str, base_ref: str) -> None:
        with self._lock:
            queued = number in self._waiting
            self._waiting[number] = (head_sha, base_ref)
        if not queued:
            self._pool.submit(self._run, number)

    def waiting(self) -> int:
        with self._lock:
            return len(self._waiting)

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, number: int) -> None:
        with self._lock:
            head_sha, base_ref = self._waiting.pop(number)
        try:
            self._previewer(number, head_sha, base_ref)
        except Exception:  # a preview never takes the daemon down
            log.exception("preview of pull request #%d at %s failed", number, head_sha[:12])
