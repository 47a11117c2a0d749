"""Independent requests side by side, on a small pool of threads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")


def in_parallel(call: Callable[[T], U], items: Sequence[T], *, concurrency: int) -> list[U]:
    """Results in order; the first error is raised once every call in flight has ended."""
    if len(items) <= 1 or concurrency <= 1:
        return [call(item) for item in items]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(call, item) for item in items]
    return [f.result() for f in futures]
