"""report_worker.ReportWorker: newest report per slot, failures logged not fatal, a tick even when busy."""

from __future__ import annotations

import threading
import time

from gitops_agent.errors import ReportError
from gitops_agent.report_worker import ReportWorker
from tests.support.polling import wait_until


def test_a_newer_report_replaces_one_still_waiting_and_failures_do_not_stop_the_worker() -> None:
    sent: list[str] = []
    gate = threading.Event()
    worker = ReportWorker("test")

    def hold() -> None:
        gate.wait(5)

    worker.queue("a", hold)  # holds the worker while the next ones queue
    worker.queue("b", lambda: sent.append("b1"))
    worker.queue("b", lambda: sent.append("b2"))

    def fail() -> None:
        raise ReportError("chat is down")

    worker.queue("c", fail)
    worker.queue("d", lambda: sent.append("d"))
    gate.set()
    assert worker.flush(5)
    worker.close()
    assert sent == ["b2", "d"]


def test_the_tick_runs_on_schedule_even_while_reports_keep_coming() -> None:
    ticks: list[float] = []
    worker = ReportWorker("test", tick=lambda: ticks.append(time.monotonic()), tick_s=0.05)
    stop = time.monotonic() + 0.5
    while time.monotonic() < stop:  # busier than the tick interval
        worker.queue("pass", lambda: time.sleep(0.01))
        time.sleep(0.005)
    wait_until(lambda: len(ticks) >= 5, timeout=5, message="ticks while busy")
    worker.close()
    count = len(ticks)
    time.sleep(0.1)
    assert len(ticks) == count  # none after close
