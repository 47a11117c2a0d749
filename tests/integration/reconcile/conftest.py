"""Fixtures of the reporting tests: the GitHub and chat doubles (every request checked against
GitHub's OpenAPI description, every payload against Slack's limits) and a status reporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gitops_agent.adapters.github import GitHubClient
from gitops_agent.adapters.http_retry import RetryPolicy
from gitops_agent.reporting import Reporter
from tests.doubles.chat_server import ChatServer
from tests.doubles.github_server import GitHubServer

#: retries short enough for tests that inject failures
FAST = RetryPolicy(attempts=3, base_delay=0.05, max_delay=0.1, max_wait=1, budget=20, timeout=5)


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    with GitHubServer() as server:
        yield server
    assert server.violations == [], "requests or answers broke GitHub's OpenAPI description"


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    with ChatServer() as server:
        yield server
    assert server.violations == [], "a payload Slack would refuse"


@pytest.fixture
def reporter(github: GitHubServer) -> Iterator[Reporter]:
    client = GitHubClient(github.url, f"{github.owner}/{github.repo}", github.token, retry=FAST)
    r = Reporter(github=client, target_url="https://agent.example/status")
    yield r
    r.close()
