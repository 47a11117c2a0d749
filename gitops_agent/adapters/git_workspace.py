"""A working clone of the config repository, for the changes the agent proposes by pull request.

Promotions and rollbacks are commits the agent writes on a branch of its own and pushes, so that a
person reviews and merges them: git stays the record of intent. They need a checkout, which the
reconcile loop must never share, so this clone lives beside GitSource's bare copy
(``<cache>/<repo>.work``) and is filled from it by a local fetch: only the push (and the fetch of a
pull request's head) goes over the network.

Credentials are those of the GitSource: the same environment-only scheme (``GIT_CONFIG_*`` with an
``extraHeader`` scoped to the remote's origin, ``GIT_SSH_COMMAND`` for ssh), never argv or
``.git/config``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gitops_agent.adapters.git_credentials import redact_text, redact_url
from gitops_agent.adapters.git_source import CommitInfo, GitSource
from gitops_agent.errors import SourceError

PUSH_TIMEOUT_S = 300.0
#: where fetched pull request heads live in the bare copy: outside refs/remotes, so its fetch --prune keeps them
PULL_REFS = "refs/gitops-agent/pull/"
_FIELD, _RECORD = "\x1f", "\x1e"


@dataclass(frozen=True)
class Author:
    """Who the agent's commits are by, unless ``GIT_AUTHOR_*``/``GIT_COMMITTER_*`` say otherwise."""

    name: str = "gitops-agent"
    email: str = "gitops-agent@users.noreply.github.com"


class Workspace:
    """The working clone; one branch checked out at a time, reset on every :meth:`checkout`.
    Over 15 methods on purpose: each is one git step a proposal takes, over one runner (``_run``)."""

    def __init__(self, source: GitSource, *, author: Author | None = None, timeout_s: float = PUSH_TIMEOUT_S) -> None:
        self.source = source
        self.root = source.path.with_suffix(".work")
        self.author = author or Author()
        self.timeout_s = timeout_s

    # --- preparing a branch -------------------------------------------------------------------

    def update(self) -> None:
        """Create the clone on first use and bring in every commit the bare copy has (a local fetch)."""
        if not (self.root / ".git").is_dir():
            self._git("init", "-q")
            self._git("remote", "add", "origin", self.source.url)
        self._git(
            "fetch", "-q", "--force", "--no-tags", str(self.source.path),
            "+refs/remotes/origin/*:refs/remotes/origin/*", f"+{PULL_REFS}*:{PULL_REFS}*",
        )  # fmt: skip

    def checkout(self, base: str, branch: str) -> None:
        """A fresh ``branch`` at commit ``base``, discarding anything left from an earlier run."""
        self._git("checkout", "-q", "--force", "-B", branch, self.resolve(base))
        self._git("clean", "-q", "-fdx")

    def resolve(self, rev: str) -> str:
        """The full sha of a commit (a short sha, a branch of the remote)."""
        if not rev or rev.startswith("-"):
            raise SourceError(f"{self._display}: {rev!r} is not a commit")
        for candidate in (rev, f"refs/remotes/origin/{rev}"):
            try:
                return self._git("rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}")
            except GitFailed:
                continue
        raise SourceError(f"{self._display}: {rev} is not a commit of the repository (check the sha, and fetch)")

    def is_ancestor(self, older: str, newer: str) -> bool:
        try:
            self._git("merge-base", "--is-ancestor", older, newer)
        except GitFailed:
            return False
        return True

    def merge_base(self, a: str, b: str) -> str:
        """The best common ancestor: what a pull request from ``b`` into ``a`` changes is measured
        from it. Read from the bare copy, so a preview never touches the working clone."""
        return self._run(self.source.path, ("merge-base", a, b))

    def restore(self, commit: str, path: str) -> None:
        """Make ``path`` what it was at ``commit``: files added since are removed, the rest restored."""
        if not self._git("ls-tree", "-d", "--name-only", commit, "--", path.rstrip("/")):
            raise SourceError(f"{path}: not a directory of the repository at {commit[:12]}")
        self._git("rm", "-r", "-q", "--ignore-unmatch", "--", path)
        self._git("checkout", commit, "--", path)

    # --- committing and pushing -----------------------------------------------------------------

    def stage(self, paths: Sequence[str]) -> str:
        """Stage changes below ``paths`` and return them as a unified diff (empty: nothing changed)."""
        self._git("add", "-A", "--", *paths)
        return self._git("diff", "--cached", "--no-color", "--no-ext-diff", strip=False)

    def commit(self, message: str) -> str:
        """Commit what is staged; the new commit's sha."""
        name = os.environ.get("GIT_AUTHOR_NAME") or self.author.name
        email = os.environ.get("GIT_AUTHOR_EMAIL") or self.author.email
        self._git("-c", f"user.name={name}", "-c", f"user.email={email}", "commit", "-q", "--no-verify", "-F", "-",
                  stdin=message)  # fmt: skip
        return self._git("rev-parse", "HEAD")

    def push(self, branch: str) -> None:
        """Push ``branch`` to the remote, replacing an earlier push of the same proposal: the agent
        owns its ``promote/`` and ``rollback/`` branches."""
        try:
            self._git("push", "--force", "--quiet", "origin", f"HEAD:refs/heads/{branch}", network=True)
        except GitFailed as exc:
            raise SourceError(f"cannot push {branch} to {self._display}: {exc.complaint}") from exc

    def last_change(self, commit: str, path: str) -> str:
        """The newest commit at or before ``commit`` that touched ``path`` (``commit`` when none did)."""
        return self._git("log", "-1", "--format=%H", commit, "--", path) or commit

    def log(self, old: str | None, new: str, paths: Sequence[str], *, limit: int = 100) -> list[CommitInfo]:
        """Commits in ``new`` and not in ``old`` that touched ``paths``, newest first."""
        revs = f"{old}..{new}" if old else new
        fmt = _FIELD.join(("%H", "%an <%ae>", "%aI", "%s")) + _RECORD
        out = self._git("log", f"--max-count={limit}", f"--format={fmt}", revs, "--", *paths, strip=False)
        commits = []
        for record in out.split(_RECORD):
            parts = record.strip("\n").split(_FIELD)
            if len(parts) == 4:
                commits.append(CommitInfo(parts[0], parts[1], datetime.fromisoformat(parts[2]), parts[3]))
        return commits

    # --- pull requests ---------------------------------------------------------------------------

    def fetch_pull(self, number: int) -> str:
        """Fetch ``refs/pull/N/head`` from the remote into the bare copy (so the agent renders it like
        any commit); returns its sha. GitHub publishes these refs; other hosts may not."""
        ref = f"{PULL_REFS}{number}"
        if not self.source.path.is_dir():
            raise SourceError(f"{self._display}: no local copy yet in {self.source.path}; fetch first")
        try:
            self._run(self.source.path, ("fetch", "--force", "--no-tags", "--quiet", "origin",
                      f"+refs/pull/{number}/head:{ref}"), network=True)  # fmt: skip
        except GitFailed as exc:
            raise SourceError(f"cannot fetch pull request #{number} from {self._display}: {exc.complaint}") from exc
        return self._run(self.source.path, ("rev-parse", "--verify", f"{ref}^{{commit}}"))

    # --- helpers --------------------------------------------------------------------------------

    @property
    def _display(self) -> str:
        return redact_url(self.source.url)

    def _git(self, *args: str, stdin: str | None = None, strip: bool = True, network: bool = False) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        return self._run(self.root, args, stdin=stdin, strip=strip, network=network)

    def _run(
        self, cwd: Path, args: Sequence[str], *, stdin: str | None = None, strip: bool = True, network: bool = False
    ) -> str:
        """Run git without prompts; a failure is a GitFailed carrying git's (scrubbed) complaint."""
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        if network:
            # The GitSource's own environment for network commands: one credential scheme, one place.
            env.update(self.source.credentials.environment(self.source.url))
        try:
            done = subprocess.run(
                ["git", *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True,
                timeout=self.timeout_s, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise SourceError(f"{self._display}: git {args[0]} timed out after {self.timeout_s:g}s") from None
        except OSError as exc:
            raise SourceError(f"cannot run git: {exc.strerror}") from None
        if done.returncode != 0:
            raise GitFailed(f"{cwd}: git {args[0]}", _complaint(done.stderr, done.returncode))
        return done.stdout.strip() if strip else done.stdout


class GitFailed(SourceError):
    """A git command failed; ``complaint`` is git's own words, scrubbed of credentials."""

    def __init__(self, what: str, complaint: str) -> None:
        super().__init__(f"{what} failed: {complaint}")
        self.complaint = complaint


def _complaint(stderr: str, status: int) -> str:
    lines = [ln.strip() for ln in redact_text(stderr).splitlines() if ln.strip()]
    return " ".join(ln.removeprefix("fatal: ").removeprefix("error: ") for ln in lines[-3:]) or f"exit status {status}"
