"""The config repository: a local bare copy that follows the remote, read one commit at a time.

Why a bare copy and exports instead of a working tree: several environments are rendered at
different commits (prod pinned to a branch, dev following main), possibly at the same time. A
shared checkout would make them step on each other; exporting the tree *of a commit* into a fresh
directory never does.

Credentials and URLs (the token only ever in the environment of one git process, never in argv,
``.git/config`` or a message) are ``git_credentials``' job; writing a commit's tree out safely
(unsafe paths refused, symlinks leaving the tree neutralised) is ``git_export``'s.

Every failure leaves as a :class:`SourceError` whose message says what to check. A symlink in the
repository that points outside it is neutralised on export; the renderer names it when it reads
through it (a :class:`RenderError`).
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import git

from gitops_agent.adapters.git_credentials import GitCredentials as GitCredentials  # callers import it from here
from gitops_agent.adapters.git_credentials import normalize_url, redact_url, url_scheme
from gitops_agent.adapters.git_export import subtree, write_environment, write_files, write_links
from gitops_agent.errors import SourceError

FETCH_TIMEOUT_S = 300.0
#: branches named in an "unknown branch" error, so a typo is easy to spot
BRANCHES_SHOWN = 8
_REMOTE_REFS = "refs/remotes/origin/"
_REFSPEC = "+refs/heads/*:refs/remotes/origin/*"
#: what ``git check-ref-format --branch`` would accept, minus the rare corners (and never an option)
_BRANCH = re.compile(r"[A-Za-z0-9_][^\s~^:?*\[\\\x00-\x1f\x7f]*(?<![/.])")


@dataclass(frozen=True)
class CommitInfo:
    """One commit, for history and reports."""

    sha: str
    author: str
    date: datetime
    subject: str


class GitSource:
    """A remote repository mirrored under ``cache_dir``; one instance per remote URL.

    Each call opens its own ``git.Repo`` and closes it, so instances can be shared between
    threads (gitpython's repo objects cannot).
    """

    def __init__(
        self,
        url: str,
        cache_dir: Path,
        *,
        credentials: GitCredentials | None = None,
        timeout_s: float = FETCH_TIMEOUT_S,
    ) -> None:
        self.url = normalize_url(url)
        self.credentials = credentials or GitCredentials()
        self.timeout_s = timeout_s
        self.path = Path(cache_dir) / _cache_name(self.url)

    def __repr__(self) -> str:
        return f"GitSource({redact_url(self.url)!r}, {str(self.path)!r})"

    # --- following the remote ---------------------------------------------------------------

    def fetch(self) -> None:
        """Bring the local copy up to date: new commits, force-pushes and deleted branches alike."""
        env = self.credentials.environment(self.url)
        self._check_local_remote()
        self._ensure_local_copy()
        with self._repo() as repo:
            try:
                repo.git.fetch(
                    "--prune", "--force", "--no-tags", "--quiet", "origin", _REFSPEC,
                    env=env, kill_after_timeout=self.timeout_s,
                )  # fmt: skip
            except git.GitCommandError as exc:
                raise SourceError(self._fetch_failure(exc)) from exc

    def resolve(self, branch: str) -> str:
        """The commit sha the remote's ``branch`` pointed at when last fetched."""
        if not _BRANCH.fullmatch(branch) or ".." in branch or "@{" in branch:
            raise SourceError(f"{self._display}: {branch!r} is not a branch name")
        with self._repo() as repo:
            try:
                return str(repo.git.rev_parse("--verify", "--quiet", f"{_REMOTE_REFS}{branch}^{{commit}}"))
            except git.GitCommandError:
                raise SourceError(self._unknown_branch(repo, branch)) from None

    # --- reading commits ----------------------------------------------------------------------

    def export(self, commit: str, dest: Path, *, subdir: str | None = None) -> None:
        """Write the files of ``commit`` (only those under ``subdir``, keeping their paths) into ``dest``.

        Reads tree objects directly: no checkout, no index, nothing shared between two exports.
        Symlinks are kept when they stay inside the repository and neutralised otherwise (see
        ``git_export.write_links``); submodules are skipped (their content is not in this repository).
        """
        dest = Path(dest)
        with self._repo() as repo:
            tree = self._commit(repo, commit).tree
            if subdir:
                tree = subtree(tree, subdir, self._display, commit)
            links = write_files(tree, dest)
        write_links(dest, links)

    def export_environment(self, commit: str, dest: Path, env_path: str) -> None:
        """Write only what the environment at ``env_path`` renders from at ``commit`` into ``dest``
        (its directory, the bases it references, where its links lead: ``git_export.write_environment``),
        so a render never sees the rest of the repository."""
        dest = Path(dest)
        with self._repo() as repo:
            links = write_environment(self._commit(repo, commit).tree, dest, env_path)
        write_links(dest, links)

    def changed_paths(self, old: str, new: str) -> set[str]:
        """Paths added, removed or modified between two commits (renames count as both paths)."""
        with self._repo() as repo:
            old_c, new_c = self._commit(repo, old), self._commit(repo, new)
            out = repo.git.diff("--name-only", "-z", "--no-renames", old_c.hexsha, new_c.hexsha, "--")
        return {p for p in str(out).split("\0") if p}

    def log(self, old: str | None, new: str, *, paths: Sequence[str] = (), limit: int = 100) -> list[CommitInfo]:
        """Commits reachable from ``new`` but not ``old`` (all of ``new``'s history when None), newest
        first; with ``paths``, only those that touched them, merges that brought such a change
        included (a pull request's merge names it: git's default simplification drops it)."""
        with self._repo() as repo:
            new_c = self._commit(repo, new)
            rev = f"{self._commit(repo, old).hexsha}..{new_c.hexsha}" if old else new_c.hexsha
            options = {"full_history": True, "topo_order": True} if paths else {}
            return [
                CommitInfo(
                    sha=c.hexsha,
                    author=f"{c.author.name} <{c.author.email}>",
                    date=datetime.fromtimestamp(c.authored_date, timezone(timedelta(seconds=-c.author_tz_offset))),
                    subject=str(c.summary),
                )
                for c in repo.iter_commits(rev, paths=list(paths), max_count=limit, **options)
            ]

    # --- helpers ------------------------------------------------------------------------------

    @property
    def _display(self) -> str:
        return redact_url(self.url)

    def _check_local_remote(self) -> None:
        """A local remote that is missing is said so plainly (git's own words blame permissions)."""
        if url_scheme(self.url) != "file":
            return
        local = Path(urlsplit(self.url).path if "://" in self.url else self.url)
        if not local.exists():
            raise SourceError(f"cannot fetch {self._display}: remote unreachable — {local} does not exist")

    def _ensure_local_copy(self) -> None:
        """Create the bare copy on first use; recreate it if it is not a usable repository."""
        if self.path.exists():
            try:
                git.Repo(self.path).close()
                return
            except (git.InvalidGitRepositoryError, git.NoSuchPathError):
                shutil.rmtree(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            repo = git.Repo.init(self.path, bare=True)
            with repo.config_writer() as cfg:
                cfg.set_value('remote "origin"', "url", self.url)
                cfg.set_value('remote "origin"', "fetch", _REFSPEC)
            repo.close()
        except (OSError, git.GitError) as exc:
            raise SourceError(f"{self._display}: cannot create the local copy in {self.path}: {exc}") from exc

    @contextmanager
    def _repo(self) -> Iterator[git.Repo]:
        try:
            repo = git.Repo(self.path)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise SourceError(
                f"{self._display}: no local copy yet in {self.path}; the first fetch has not succeeded"
            ) from None
        try:
            yield repo
        except (ValueError, git.GitError) as exc:
            raise SourceError(f"{self._display}: the local copy in {self.path} is unreadable: {exc}") from exc
        finally:
            repo.close()

    def _commit(self, repo: git.Repo, rev: str) -> git.Commit:
        if not rev or rev.startswith("-"):
            raise SourceError(f"{self._display}: {rev!r} is not a commit")
        try:
            return repo.commit(rev)
        except (ValueError, git.BadName, git.GitError) as exc:
            raise SourceError(
                f"{self._display}: commit {rev} is not in the local copy (force-pushed away, or not fetched yet)"
            ) from exc

    def _unknown_branch(self, repo: git.Repo, branch: str) -> str:
        refs = str(repo.git.for_each_ref("--format=%(refname)", _REMOTE_REFS)).split()
        known = sorted(r.removeprefix(_REMOTE_REFS) for r in refs if r != f"{_REMOTE_REFS}HEAD")
        if not known:
            return (
                f"{self._display}: branch {branch!r} not found: the repository has no branches (empty, or not fetched)"
            )
        shown = ", ".join(known[:BRANCHES_SHOWN]) + (
            f" (and {len(known) - BRANCHES_SHOWN} more)" if len(known) > BRANCHES_SHOWN else ""
        )
        return f"{self._display}: branch {branch!r} not found; existing branches: {shown}"

    def _fetch_failure(self, exc: git.GitCommandError) -> str:
        """A message a person can act on, from git's stderr (with any secret scrubbed)."""
        stderr = self.credentials.scrub(str(exc.stderr or ""), self.url)
        head = f"cannot fetch {self._display}"
        if "did not complete in" in stderr:
            return f"{head}: timed out after {self.timeout_s:g}s (remote unreachable or very slow)"
        for needles, what in _FAILURES:
            line = _line_with(stderr, needles)
            if line is None:
                continue
            if what == "auth":
                kind = "ssh authentication" if url_scheme(self.url) == "ssh" else "authentication"
                return f"{head}: {kind} failed — {self.credentials.hint()}"
            return f"{head}: {what} ({line})"
        detail = _line_with(stderr, ("fatal:", "error:")) or _last_line(stderr)
        return f"{head}: {detail or f'git exited with status {exc.status}'}"


#: (stderr fragments, what to tell a person), first match wins; matched case-insensitively
_FAILURES: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        (
            "authentication failed", "could not read username", "could not read password",
            "terminal prompts disabled", "returned error: 401", "returned error: 403",
            "invalid username or password", "permission denied (publickey", "host key verification failed",
        ),
        "auth",
    ),
    (
        (
            "could not resolve host", "connection refused", "couldn't connect", "failed to connect",
            "connection timed out", "network is unreachable", "no route to host", "operation timed out",
            "connection closed by remote host", "connection reset",
        ),
        "remote unreachable — check the URL and the network",
    ),
    (
        (
            "does not appear to be a git repository", "not found", "repository not exported",
            "not a git repository",
        ),
        "not a git repository, or no access to it",
    ),
    (
        ("protocol error", "unexpected disconnect", "bad pack", "index-pack failed", "did not send all necessary"),
        "the remote answered with something that is not valid git data",
    ),
)  # fmt: skip


def _cache_name(url: str) -> str:
    """A directory name that is readable and unique per URL: ``config-repo-1a2b3c4d5e6f.git``."""
    stem = re.sub(r"\.git$", "", url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1])
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip(".-")[:40] or "repo"
    return f"{stem}-{hashlib.sha256(url.encode()).hexdigest()[:12]}.git"


def _clean(line: str) -> str:
    line = line.strip().removeprefix("stderr: ").strip("'").strip()
    for prefix in ("fatal: ", "error: ", "remote: "):
        line = line.removeprefix(prefix)
    return "".join(c if c.isprintable() else "?" for c in line)[:300]


def _line_with(text: str, needles: tuple[str, ...]) -> str | None:
    """The first line of git's stderr mentioning one of ``needles``, tidied for a message."""
    for line in text.splitlines():
        lowered = line.lower()
        if any(n in lowered for n in needles):
            return _clean(line)
    return None


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("cmdline:")]
    return _clean(lines[-1]) if lines else ""
