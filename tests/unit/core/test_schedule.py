"""Schedule decisions: intervals, jitter, shared fetches, coalesced pass requests, push refs."""

from __future__ import annotations

import pytest

from gitops_agent.config import parse_config
from gitops_agent.core.schedule import (
    PassState,
    environments_for_ref,
    fetch_due,
    finish_pass,
    interval_of,
    jitter_of,
    request_pass,
)

CONFIG = parse_config(
    """
repo: {url: https://example.invalid/config.git, branch: main, poll_interval: 2m}
environments:
  - {name: dev, path: envs/dev, namespace: dev, interval: 30s}
  - {name: staging, path: envs/staging, namespace: staging}
  - {name: prod, path: envs/prod, namespace: prod, branch: release}
""",
    source="test.yaml",
)
DEV, STAGING, PROD = CONFIG.environments


def test_interval_is_the_environments_own_else_the_repo_poll_interval() -> None:
    assert interval_of(DEV.interval_s, CONFIG.repo.poll_interval_s) == 30
    assert interval_of(STAGING.interval_s, CONFIG.repo.poll_interval_s) == 120


@pytest.mark.parametrize(("interval", "jitter"), [(30, 3), (120, 12), (3600, 30)], ids=["10%", "10%-2m", "capped"])
def test_jitter_is_a_tenth_of_the_interval_at_most_30s(interval: float, jitter: float) -> None:
    assert jitter_of(interval) == jitter


@pytest.mark.parametrize(
    ("last_started", "invalidated", "now", "due"),
    [
        (None, None, 100.0, True),
        (98.0, None, 100.0, False),
        (95.0, None, 100.0, True),
        (98.0, 99.0, 100.0, True),
        (98.0, 97.0, 100.0, False),
        (98.0, 98.0, 100.0, True),
    ],
    ids=["never-fetched", "fresh", "stale", "push-after-fetch-started", "push-before-fetch", "push-same-instant"],
)
def test_fetch_is_shared_unless_stale_or_a_push_came_after_it_started(
    last_started: float | None, invalidated: float | None, now: float, due: bool
) -> None:
    assert fetch_due(last_started=last_started, invalidated=invalidated, now=now, max_age_s=5.0) is due


def test_an_idle_environment_starts_a_pass() -> None:
    state, start = request_pass(PassState(), urgent=False)
    assert start and state == PassState(running=True)


def test_a_flood_of_pushes_during_a_pass_leaves_one_pending_flag() -> None:
    state, _ = request_pass(PassState(), urgent=False)
    for _ in range(50):
        state, start = request_pass(state, urgent=True)
        assert not start
    assert state == PassState(running=True, pending=True)
    state, again = finish_pass(state)
    assert again and state == PassState(running=True)
    state, again = finish_pass(state)
    assert not again and state == PassState()


def test_a_periodic_tick_during_a_pass_is_dropped() -> None:
    state, _ = request_pass(PassState(), urgent=False)
    state, start = request_pass(state, urgent=False)
    assert not start and state == PassState(running=True)
    assert finish_pass(state) == (PassState(), False)


@pytest.mark.parametrize(
    ("ref", "envs"),
    [
        ("refs/heads/main", ("dev", "staging")),
        ("refs/heads/release", ("prod",)),
        ("refs/heads/feature", ()),
        ("refs/tags/main", ()),
        ("main", ()),
    ],
    ids=["main", "release", "other-branch", "tag", "bare-name"],
)
def test_a_push_triggers_the_environments_following_its_branch(ref: str, envs: tuple[str, ...]) -> None:
    branches = {env.name: CONFIG.branch_of(env) for env in CONFIG.environments}
    assert environments_for_ref(branches, ref) == envs
