"""The one way tests wait for something to happen: poll a condition until it holds.

    pods = wait_until(lambda: ready_pods(ns), timeout=60, message="two ready pods")

``condition`` is called until it returns something truthy, which ``wait_until`` returns; on timeout
it raises ``WaitTimeout`` (an ``AssertionError``, so a test fails rather than errors) naming what was
awaited, how long, how many tries, and the condition's last value. Exceptions the condition raises
are not swallowed: a condition that can fail on the way (a 404 before an object exists) catches
what it expects itself.

To assert that something did *not* happen, don't sleep and look: wait for an event that proves the
system got past the point where it would have acted (another scheduler round, another renewal, an
idle state), then assert.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["WaitTimeout", "wait_until"]

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not hold in time."""


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float = 5.0,
    interval: float = 0.01,
    message: str | Callable[[], str] = "",
) -> T:
    """Polls ``condition`` every ``interval`` seconds until it returns something truthy, and returns
    that; raises ``WaitTimeout`` after ``timeout`` seconds (the condition is tried at least once, and
    once more at the deadline). ``message`` says what is awaited (a callable is asked only on timeout,
    e.g. for the state seen last)."""
    start = time.monotonic()
    deadline = start + timeout
    tries = 0
    while True:
        value = condition()
        tries += 1
        if value:
            return value
        now = time.monotonic()
        if now >= deadline:
            break
        time.sleep(min(interval, deadline - now))
    what = message() if callable(message) else message
    raise WaitTimeout(
        f"timed out after {time.monotonic() - start:.1f}s ({tries} tries) waiting for "
        f"{what or _describe(condition)}; the last value was {value!r}"
    )


def _describe(condition: Callable[..., object]) -> str:
    name = getattr(condition, "__qualname__", repr(condition))
    code = getattr(condition, "__code__", None)
    where = f" ({code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno})" if code else ""
    return f"{name}{where}"
