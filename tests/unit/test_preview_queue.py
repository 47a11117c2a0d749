"""preview_queue: one preview at a time; a newer head replaces one still waiting; failures are logged."""

from __future__ import annotations

import threading

import pytest

from gitops_agent.preview_queue import PreviewQueue
from tests.support.polling import wait_until


def test_the_newest_head_of_a_waiting_pull_request_replaces_the_older_one() -> None:
    gate, seen = threading.Event(), []

    def preview(number: int, sha: str, base: str) -> None:
        gate.wait(5)
        seen.append((number, sha))

    queue = PreviewQueue(preview)
    queue.submit(1, "a", "main")
    wait_until(lambda: queue.waiting() == 0, message="the worker taking the first preview")
    queue.submit(1, "b", "main")
    queue.submit(2, "x", "main")
    queue.submit(1, "c", "main")
    assert queue.waiting() == 2
    gate.set()
    wait_until(lambda: len(seen) == 3, message="three previews")
    assert seen == [(1, "a"), (1, "c"), (2, "x")]
    queue.stop()


def test_a_failing_preview_is_logged_and_the_next_still_runs(caplog: pytest.LogCaptureFixture) -> None:
    seen = []

    def preview(number: int, sha: str, base: str) -> None:
        if number == 1:
            raise RuntimeError("GitHub said no")
        seen.append(number)

    queue = PreviewQueue(preview)
    queue.submit(1, "a" * 40, "main")
    queue.submit(2, "b" * 40, "main")
    wait_until(lambda: seen == [2], message="the second preview")
    assert "preview of pull request #1 at aaaaaaaaaaaa failed" in caplog.text
    queue.stop()
