"""The git cache's bounds: which pull-request heads go and when to prune (core.git_cache), the keeper
that applies them (git_hygiene), and how a ``closed`` webhook reaches it (webhooks, PreviewQueue)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Iterable
from http import HTTPStatus
from pathlib import Path
from types import SimpleNamespace

import pytest

from gitops_agent.adapters.git_cache import GitCache
from gitops_agent.adapters.git_source import GitSource
from gitops_agent.core.git_cache import CachePolicy, CacheStats, prune_due, refs_to_drop
from gitops_agent.core.webhook import signature
from gitops_agent.git_hygiene import PullRefKeeper
from gitops_agent.metrics import Metrics
from gitops_agent.preview_queue import PreviewQueue
from gitops_agent.scheduler import PushOutcome, Scheduler
from gitops_agent.status_page import status_json
from gitops_agent.webhooks import Webhooks
from tests.support.fake_agent import FakeAgent
from tests.support.polling import wait_until

POLICY = CachePolicy(max_pull_refs=3, max_age_s=100, prune_after_deletions=2, prune_interval_s=50)


def test_heads_not_previewed_for_too_long_go_then_the_least_recent_beyond_the_bound() -> None:
    seen = {1: 0.0, 2: 150.0, 3: 160.0, 4: 170.0, 5: 180.0, 6: 190.0}
    assert refs_to_drop(seen, now=200.0, policy=POLICY) == {1, 2, 3}
    assert refs_to_drop({7: 10.0}, now=200.0, policy=POLICY) == {7}
    assert refs_to_drop({}, now=0.0, policy=POLICY) == frozenset()
    assert refs_to_drop({1: 5.0, 2: 5.0}, now=5.0, policy=CachePolicy(max_pull_refs=0)) == {1, 2}


def test_a_prune_is_due_after_enough_drops_or_long_enough_after_the_last_with_something_dropped() -> None:
    assert not prune_due(0, since_prune_s=1e9, policy=POLICY)
    assert not prune_due(1, since_prune_s=10, policy=POLICY)
    assert prune_due(2, since_prune_s=0, policy=POLICY)
    assert prune_due(1, since_prune_s=50, policy=POLICY)


class FakeCache:
    """The git side of the keeper, in memory: heads held, deletes and prunes counted (the bare copy
    is a directory with what makes git take it for a repository, and nothing else)."""

    def __init__(self, refs: Iterable[int] = ()) -> None:
        self.refs = set(refs)
        self.prunes = 0
        bare = Path(tempfile.mkdtemp(prefix="fake-cache-", suffix=".git"))
        weakref.finalize(self, shutil.rmtree, bare, True)
        (bare / "HEAD").write_text("ref: refs/heads/main\n")
        (bare / "objects").mkdir()
        (bare / "refs").mkdir()
        self.source = SimpleNamespace(path=bare)

    def pull_refs(self) -> list[int]:
        return sorted(self.refs)

    def delete_pull_refs(self, numbers: Iterable[int]) -> None:
        self.refs -= set(numbers)

    def prune(self, grace_s: float) -> None:
        self.prunes += 1

    def size_bytes(self) -> int:
        return 1000 + 10 * len(self.refs)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def keeper(cache: FakeCache, clock: Clock, measured: list[CacheStats]) -> PullRefKeeper:
    return PullRefKeeper(cache, POLICY, on_measure=measured.append, clock=clock)  # type: ignore[arg-type]


def test_the_keeper_drops_closed_heads_bounds_the_rest_prunes_and_measures() -> None:
    cache, clock, measured = FakeCache(), Clock(), []
    k = keeper(cache, clock, measured)
    for n in range(1, 5):  # four previews: the least recent goes at once
        cache.refs.add(n)
        clock.now += 1
        k.seen(n)
    assert cache.refs == {2, 3, 4} and cache.prunes == 0
    k.closed(9)  # never fetched (a fork's PR): nothing dropped, nothing counted
    assert cache.prunes == 0
    k.closed(3)  # the second drop: a prune is due
    assert cache.refs == {2, 4} and cache.prunes == 1
    assert measured[-1] == CacheStats(1020, 2) == k.stats()


def test_a_sweep_adopts_heads_found_in_the_cache_and_drops_them_once_stale() -> None:
    cache, clock, measured = FakeCache({10, 11}), Clock(), []
    k = keeper(cache, clock, measured)
    clock.now = 1000.0
    assert k.sweep() == CacheStats(1020, 2)  # found at start: seen now, not stale yet
    clock.now += 50
    k.seen(11)
    clock.now += 60
    assert k.sweep() == CacheStats(1010, 1)  # 10 not previewed for 110s (> 100s); 11 was
    assert cache.refs == {11}


def test_a_failing_cache_is_logged_and_the_keeper_carries_on() -> None:
    class Broken(FakeCache):
        def pull_refs(self) -> list[int]:
            from gitops_agent.errors import SourceError

            raise SourceError("git for-each-ref failed")

    k = keeper(Broken(), Clock(), [])
    assert k.sweep() is None


def test_no_cache_yet_is_no_failure_the_sweep_measures_it_empty_then_sweeps_the_copy_once_made(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = GitSource(str(tmp_path / "remote.git"), tmp_path / "cache")
    k = PullRefKeeper(GitCache(source), POLICY)
    caplog.set_level(logging.WARNING, logger="gitops_agent.git_hygiene")
    assert k.sweep() == CacheStats(0, 0)  # the first sweep at start: no cache directory at all
    source.path.mkdir(parents=True)  # the first fetch has created the bare copy's directory, not yet
    stats = k.sweep()  # run `git init` in it: git says "not a git repository" there
    assert stats is not None and stats.pull_refs == 0
    assert caplog.records == []
    subprocess.run(["git", "init", "-q", "--bare", str(source.path)], check=True)
    made = k.sweep()
    assert made is not None and made.pull_refs == 0 and made.bytes > stats.bytes
    assert caplog.records == []


class Keeper:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def seen(self, number: int) -> None:
        self.calls.append(("seen", number))

    def closed(self, number: int) -> None:
        self.calls.append(("closed", number))

    def sweep(self) -> None:
        self.calls.append(("sweep", 0))


def test_a_closed_pull_request_drops_its_waiting_preview_and_then_its_head_on_the_preview_worker() -> None:
    gate, previewed, keeper = threading.Event(), [], Keeper()

    def preview(number: int, sha: str, base: str) -> None:
        gate.wait(5)
        previewed.append(number)

    queue = PreviewQueue(preview, keeper)
    queue.submit(1, "a", "main")
    queue.submit(2, "b", "main")
    closed = queue.closed(2)  # 2 waits behind 1: never previewed
    sweep = queue.sweep()
    gate.set()
    assert closed is not None and sweep is not None
    sweep.result(5)
    assert previewed == [1]
    assert keeper.calls == [("seen", 1), ("closed", 2), ("sweep", 0)]
    queue.stop()


class Daemon:
    leading = True

    def __init__(self) -> None:
        self.closed: list[int] = []

    def push(self, ref: str) -> PushOutcome:
        return PushOutcome(())

    def preview(self, number: int, head_sha: str, base_ref: str) -> bool:
        raise AssertionError("a closed pull request is not previewed")

    def pull_request_closed(self, number: int) -> bool:
        self.closed.append(number)
        return True


def test_a_closed_pull_request_webhook_asks_the_daemon_to_drop_its_head() -> None:
    daemon, secret = Daemon(), b"s3cret"
    payload = {"action": "closed", "number": 9, "pull_request": {"head": {"sha": "a" * 40}, "base": {"ref": "main"}}}
    body = json.dumps(payload).encode()
    headers = {"x-github-event": "pull_request", "x-hub-signature-256": signature(secret, body)}
    answer = Webhooks(daemon, secret=secret).handle(headers, body)
    assert answer.status == HTTPStatus.ACCEPTED and answer.body["closed"] is True
    assert daemon.closed == [9]


def test_the_scheduler_hands_a_closed_pull_request_to_the_keeper_sweeps_at_start_and_shows_the_cache() -> None:
    cache, clock, metrics = FakeCache({4, 5}), Clock(), Metrics()
    keeper = PullRefKeeper(cache, POLICY, on_measure=metrics.observe_git_cache, clock=clock)  # type: ignore[arg-type]
    daemon = Scheduler(FakeAgent(), metrics=metrics, previewer=lambda n, sha, base: None, pull_refs=keeper)
    daemon.start()  # the first sweep runs at once
    try:
        wait_until(lambda: daemon.status().git_cache == CacheStats(1020, 2), message="the first sweep")
        assert daemon.pull_request_closed(4) is True
        wait_until(lambda: cache.refs == {5}, message="the closed head dropped")
        wait_until(lambda: status_json(daemon.status())["git_cache"] == {"bytes": 1010, "pull_refs": 1})
        assert "gitops_agent_git_cache_bytes 1010.0" in metrics.render().decode()
        assert "gitops_agent_git_pull_refs 1.0" in metrics.render().decode()
    finally:
        daemon.stop()
    assert Scheduler(FakeAgent()).pull_request_closed(4) is False  # previews not configured
