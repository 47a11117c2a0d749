"""A worker thread that sends reports so a pass never waits on GitHub or chat.

Reports wait in line by slot: a newer report for a slot replaces one still waiting (it would be
stale by the time it is sent). A report that fails is logged and dropped: the next pass reports
again. ``tick`` (if given) is called every ``tick_s`` seconds, busy or not: scheduled reports such
as the chat digest are sent from the same thread, so they never race a pass's report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from gitops_agent.errors import GitOpsError

log = logging.getLogger(__name__)


class ReportWorker:
    def __init__(self, name: str, *, tick: Callable[[], None] | None = None, tick_s: float = 30.0) -> None:
        self._pending: OrderedDict[str, Callable[[], None]] = OrderedDict()
        self._wake = threading.Condition()
        self._closed = False
        self._busy = False
        self._tick, self._tick_s = tick, tick_s
        self._tick_at = time.monotonic() + tick_s
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def queue(self, slot: str, send: Callable[[], None]) -> None:
        with self._wake:
            self._pending.pop(slot, None)  # a newer report replaces one still waiting
            self._pending[slot] = send
            self._wake.notify()

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until everything queued was sent (or failed); False on timeout."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._pending and not self._busy, timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        self.flush(timeout_s)
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        self._thread.join(timeout_s)

    def _work(self) -> None:
        while True:
            send = self._next()
            if send is None:
                return
            try:
                send()
            except GitOpsError as exc:
                log.warning("reporting failed, will report again after the next pass: %s", exc)
            except Exception:  # a reporting bug must not kill the worker
                log.exception("reporting failed unexpectedly")
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def _next(self) -> Callable[[], None] | None:
        """The tick when it is due, else the next report; None once closed and nothing is left."""
        with self._wake:
            while True:
                if self._tick is not None and not self._closed and time.monotonic() >= self._tick_at:
                    self._tick_at = time.monotonic() + self._tick_s
                    send = self._tick
                    break
                if self._pending:
                    _, send = self._pending.popitem(last=False)
                    break
                if self._closed:
                    return None
                self._wake.wait(None if self._tick is None else max(0.0, self._tick_at - time.monotonic()))
            self._busy = True
            return send
