"""shared_fetch: one fetch serves the passes that start soon after it; a push invalidates it."""

from __future__ import annotations

from gitops_agent.errors import GitOpsError, SourceError
from gitops_agent.shared_fetch import SharedFetch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_fetch_serves_passes_within_its_age_and_a_push_forces_the_next() -> None:
    clock, calls = Clock(), []

    def fetch() -> GitOpsError | None:
        calls.append(clock.now)
        return None

    shared = SharedFetch(fetch, max_age_s=5, clock=clock)
    assert shared.fetch_if_stale() is None and calls == [100.0]
    clock.now = 104.0
    assert shared.fetch_if_stale() is None and calls == [100.0]
    shared.invalidate()
    clock.now = 104.5
    shared.fetch_if_stale()
    assert calls == [100.0, 104.5]
    clock.now = 110.0
    shared.fetch_if_stale()
    assert calls == [100.0, 104.5, 110.0]


def test_a_failed_fetch_is_every_reusing_pass_s_error_until_one_succeeds() -> None:
    clock = Clock()
    answers: list[GitOpsError | None] = [SourceError("remote unreachable"), None]
    shared = SharedFetch(lambda: answers.pop(0), max_age_s=5, clock=clock)
    first = shared.fetch_if_stale()
    assert isinstance(first, SourceError) and shared.fetch_if_stale() is first
    assert not shared.succeeded_once
    clock.now += 10
    assert shared.fetch_if_stale() is None and shared.succeeded_once and shared.error is None
