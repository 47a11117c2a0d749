"""Housekeeping of the local git cache: the pull-request heads previews fetched, pruning, disk usage.

The cache of one remote is GitSource's bare copy and the working clone beside it (``.work``,
filled from the bare copy: it copies the pull-request heads too). Heads are deleted from both;
a repack and ``git prune`` then free what only they reached. The grace keeps objects a fetch in
flight has written but not yet referenced, so a prune never races a fetch into a broken copy.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from gitops_agent.adapters.git_credentials import redact_text, redact_url
from gitops_agent.adapters.git_source import GitSource
from gitops_agent.adapters.git_workspace import PULL_REFS
from gitops_agent.errors import SourceError

#: a gc of a large repository takes a while; it must never hold the preview worker for long
GC_TIMEOUT_S = 300.0
_REF_TIMEOUT_S = 60.0


class GitCache:
    """The cache of ``source``: its bare copy and working clone (when made)."""

    def __init__(self, source: GitSource, *, gc_timeout_s: float = GC_TIMEOUT_S) -> None:
        self.source = source
        self.gc_timeout_s = gc_timeout_s

    @property
    def repositories(self) -> tuple[Path, ...]:
        """The repositories of the cache that exist now: the bare copy, then the working clone."""
        work = self.source.path.with_suffix(".work")
        return tuple(p for p in (self.source.path, work) if p.is_dir())

    def pull_refs(self) -> list[int]:
        """Numbers of the pull requests whose heads the bare copy holds."""
        if not self.source.path.is_dir():
            return []
        out = self._git(self.source.path, ("for-each-ref", "--format=%(refname)", PULL_REFS), _REF_TIMEOUT_S)
        numbers = (line.removeprefix(PULL_REFS) for line in out.splitlines())
        return sorted(int(n) for n in numbers if n.isdigit())

    def delete_pull_refs(self, numbers: Iterable[int]) -> None:
        """Delete the heads of ``numbers`` from every repository of the cache (absent ones are fine)."""
        commands = "".join(f"delete {PULL_REFS}{int(n)}\n" for n in numbers)
        if not commands:
            return
        for repo in self.repositories:
            self._git(repo, ("update-ref", "--stdin"), _REF_TIMEOUT_S, stdin=commands)

    def prune(self, grace_s: float) -> None:
        """Repack and drop unreachable objects older than ``grace_s`` in every repository: what
        ``git gc --prune`` does to objects, without its ref packing and reflog expiry, which take
        locks a fetch of the reconcile loop may want at the same moment."""
        expire = f"{max(0, int(grace_s))}.seconds.ago" if grace_s > 0 else "now"
        for repo in self.repositories:
            self._git(repo, ("repack", "-A", "-d", "-l", "-q", f"--unpack-unreachable={expire}"), self.gc_timeout_s)
            self._git(repo, ("prune", f"--expire={expire}"), self.gc_timeout_s)

    def size_bytes(self) -> int:
        """Disk usage of the cache as ``du`` counts it (allocated blocks, hard links once)."""
        seen: set[tuple[int, int]] = set()
        total = 0
        for repo in self.repositories:
            for root, dirs, files in os.walk(repo):
                for name in (*dirs, *files):
                    total += _blocks(Path(root) / name, seen)
            total += _blocks(repo, seen)
        return total

    def _git(self, cwd: Path, args: Sequence[str], timeout_s: float, *, stdin: str | None = None) -> str:
        # no network and no credentials: only local housekeeping runs here
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        try:
            done = subprocess.run(
                ["git", *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True,
                timeout=timeout_s, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise SourceError(f"{self._display}: git {args[0]} in {cwd} timed out after {timeout_s:g}s") from None
        except OSError as exc:
            raise SourceError(f"cannot run git: {exc.strerror}") from None
        if done.returncode != 0:
            last = " ".join(redact_text(done.stderr).split())[-300:] or f"exit status {done.returncode}"
            raise SourceError(f"{self._display}: git {args[0]} in {cwd} failed: {last}")
        return done.stdout

    @property
    def _display(self) -> str:
        return redact_url(self.source.url)


def _blocks(path: Path, seen: set[tuple[int, int]]) -> int:
    try:
        st = path.lstat()
    except OSError:  # removed meanwhile (a gc replacing packs)
        return 0
    if (st.st_dev, st.st_ino) in seen:
        return 0
    seen.add((st.st_dev, st.st_ino))
    return st.st_blocks * 512
