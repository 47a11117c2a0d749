"""The git cache stays bounded with real git: 200 pull requests previewed and closed.

The remote is a bare repository served by ``git http-backend`` on loopback (token required); each
pull request is a commit carrying 64 KiB of its own incompressible data, published as GitHub does
(``refs/pull/N/head``). The preview queue fetches each head as a preview does
(``Workspace.fetch_pull``), then ``closed`` webhooks (or, when they were missed, sweeps) drop them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitops_agent.adapters.git_cache import GitCache
from gitops_agent.adapters.git_credentials import GitCredentials
from gitops_agent.adapters.git_source import GitSource
from gitops_agent.adapters.git_workspace import Workspace
from gitops_agent.core.git_cache import CachePolicy, CacheStats
from gitops_agent.git_hygiene import PullRefKeeper
from gitops_agent.preview_queue import PreviewQueue
from tests.integration.git_http import GitHTTPServer, serve_git

pytestmark = pytest.mark.integration

TOKEN = "ghs_cache-test-token"
PULLS = 200
PULL_BYTES = 64 * 1024
#: what the cache may keep beyond its size before the pull requests (repacking, gc's bookkeeping)
SLACK_BYTES = 512 * 1024


def publish_pull_requests(bare: Path, count: int) -> dict[int, str]:
    """A base commit on main, then ``count`` PR heads on top of it, each with data of its own;
    written in one ``git fast-import`` stream (200 commits in well under a second)."""
    stream = [b"commit refs/heads/main\nmark :1\ncommitter t <t@example.com> 0 +0000\ndata 4\nbase\n",
              b"M 644 inline README\ndata 5\nbase\n\n"]  # fmt: skip
    for n in range(1, count + 1):
        blob = os.urandom(PULL_BYTES)
        stream += [
            f"commit refs/pull/{n}/head\ncommitter t <t@example.com> {n} +0000\ndata 6\npr {n:03d}\n".encode(),
            b"from :1\n",
            f"M 644 inline data/pr-{n}.bin\ndata {len(blob)}\n".encode(), blob, b"\n\n",
        ]  # fmt: skip
    subprocess.run(["git", "-C", str(bare), "fast-import", "--quiet"], input=b"".join(stream), check=True)
    refs = subprocess.run(
        ["git", "-C", str(bare), "for-each-ref", "--format=%(refname) %(objectname)", "refs/pull/"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {int(ref.split("/")[2]): sha for ref, sha in (line.split() for line in refs.splitlines())}


def du_bytes(*paths: Path) -> int:
    """Disk usage as ``du`` itself counts it."""
    existing = [str(p) for p in paths if p.exists()]
    out = subprocess.run(["du", "-s", "-B1", "-c", *existing], capture_output=True, text=True, check=True).stdout
    return int(out.splitlines()[-1].split()[0])


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[GitHTTPServer]:
    with serve_git(tmp_path / "served", TOKEN) as server:
        server.bare("config.git")
        yield server


@pytest.fixture
def source(remote: GitHTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitSource:
    monkeypatch.setenv("CACHE_TEST_TOKEN", TOKEN)
    credentials = GitCredentials(token_env="CACHE_TEST_TOKEN")
    return GitSource(f"{remote.url}/config.git", tmp_path / "cache", credentials=credentials)


def fetching_queue(source: GitSource, keeper: PullRefKeeper, heads: dict[int, str]) -> PreviewQueue:
    """The daemon's preview queue, with a previewer that does what a preview does first: fetch the head."""
    fetched: dict[int, str] = {}

    def preview(number: int, head_sha: str, base_ref: str) -> None:
        fetched[number] = Workspace(source).fetch_pull(number)
        assert fetched[number] == head_sha == heads[number]

    return PreviewQueue(preview, keeper)


def test_200_pull_requests_previewed_and_closed_leave_the_cache_as_it_was(
    remote: GitHTTPServer, source: GitSource
) -> None:
    heads = publish_pull_requests(remote.root / "config.git", PULLS)
    source.fetch()
    cache = GitCache(source)
    work = Workspace(source)
    work.update()  # the working clone beside the bare copy, as promotions make it
    keeper = PullRefKeeper(cache, CachePolicy(prune_grace_s=0))  # nothing else writes: no grace needed
    queue = fetching_queue(source, keeper, heads)
    before = keeper.sweep()
    assert before is not None and before.pull_refs == 0
    du_before = du_bytes(source.path, work.root)

    for n in sorted(heads):
        queue.submit(n, heads[n], "main")
    peak = queue.sweep()
    assert peak is not None
    peak.result(300)
    work.update()  # the working clone copies the heads the bare copy holds
    at_peak = keeper.stats()
    assert at_peak is not None and at_peak.pull_refs == CachePolicy().max_pull_refs  # the bound, not 200
    assert _refs(work.root) == CachePolicy().max_pull_refs

    last = None
    for n in sorted(heads):
        last = queue.closed(n)
    assert last is not None
    last.result(300)
    after = keeper.stats()
    queue.stop()

    assert after is not None and after.pull_refs == 0 and cache.pull_refs() == [] and _refs(work.root) == 0
    du_after = du_bytes(source.path, work.root)
    print(
        f"\ngit cache: before {before.bytes} B ({du_before} by du), with {at_peak.pull_refs} heads {at_peak.bytes} B, "
        f"after {PULLS} PRs closed {after.bytes} B ({du_after} by du), {after.pull_refs} heads"
    )
    assert at_peak.bytes > before.bytes + 100 * PULL_BYTES  # the heads' data was really there
    assert du_after <= du_before + SLACK_BYTES
    assert after.bytes <= before.bytes + SLACK_BYTES


def test_heads_of_pull_requests_whose_close_was_missed_are_swept_and_bounded_meanwhile(
    remote: GitHTTPServer, source: GitSource
) -> None:
    heads = publish_pull_requests(remote.root / "config.git", 30)
    source.fetch()
    now = [0.0]
    policy = CachePolicy(max_pull_refs=10, max_age_s=3600, prune_grace_s=0)
    keeper = PullRefKeeper(GitCache(source), policy, clock=lambda: now[0])
    queue = fetching_queue(source, keeper, heads)
    for n in sorted(heads):
        queue.submit(n, heads[n], "main")
    done = queue.sweep()
    assert done is not None
    done.result(120)
    assert GitCache(source).pull_refs() == list(range(21, 31))  # the ten most recently previewed

    now[0] += 3601  # no closed webhook came: an hour without a preview
    swept = queue.sweep()
    assert swept is not None
    swept.result(120)
    queue.stop()
    stats = keeper.stats()
    assert stats is not None and stats == CacheStats(stats.bytes, 0) and GitCache(source).pull_refs() == []


def _refs(repo: Path) -> int:
    out = subprocess.run(
        ["git", "-C", str(repo), "for-each-ref", "--format=%(refname)", "refs/gitops-agent/pull/"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return len(out.split())
