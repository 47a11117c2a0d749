"""Fixtures of the promotion, rollback and preview tests, loaded with ``pytest_plugins`` (a plugin
module, so pytest rewrites its asserts): the remote, the people's clone, the GitHub double."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.git_http import GitHTTPServer, serve_git
from tests.integration.proposals_support import TOKEN, GitHubDouble, Upstream, github_double
from tests.support import paths

TEMPLATE = paths.CONFIG_REPO_TEMPLATE


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[GitHTTPServer]:
    """The config repository's remote: git over HTTP on loopback, the token required."""
    with serve_git(tmp_path / "served", TOKEN) as server:
        server.bare("config.git")
        yield server


@pytest.fixture
def upstream(remote: GitHTTPServer, tmp_path: Path) -> Upstream:
    """The people's clone, holding config-repo-template's apps and environments, pushed to main."""
    up = Upstream.create(tmp_path / "upstream", f"{remote.url}/config.git")
    for item in ("apps", "environments"):
        shutil.copytree(TEMPLATE / item, up.root / item)
    up.commit("Config repository from the template")
    up.push("main")
    return up


@pytest.fixture
def github() -> Iterator[GitHubDouble]:
    with github_double() as double:
        yield double
