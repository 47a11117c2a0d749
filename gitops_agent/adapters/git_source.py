"""The config repository: a local bare copy that follows the remote, read one commit at a time.

Why a bare copy and exports instead of a working tree: several environments are rendered at
different commits (prod pinned to a branch, dev following main), possibly at the same time. A
shared checkout would make them step on each other; exporting the tree *of a commit* into a fresh
directory never does.

Why this much care with credentials: the token is read from its file (or variable) on every fetch
and handed to git only through the ``GIT_CONFIG_COUNT/KEY/VALUE`` environment of that one process,
as an ``http.<origin>.extraHeader`` scoped to the remote's origin. It never lands in ``.git/config``,
in argv (visible in ``ps``), or in an error message. SSH keys go through ``GIT_SSH_COMMAND``.

Every failure leaves as a :class:`SourceError` whose message says what to check; a symlink in the
repository that points outside it is a :class:`RenderError` naming the link.
"""

from __future__ import annotations

import base64
import hashlib
import os
import posixpath
import re
import shlex
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import git

from gitops_agent.errors import RenderError, SourceError

FETCH_TIMEOUT_S = 300.0
SSH_CONNECT_TIMEOUT_S = 30
#: branches named in an "unknown branch" error, so a typo is easy to spot
BRANCHES_SHOWN = 8
_REMOTE_REFS = "refs/remotes/origin/"
_REFSPEC = "+refs/heads/*:refs/remotes/origin/*"
_SCP_LIKE = re.compile(r"^(?:[\w.-]+@)?[\w.-]+:(?!//)")
#: what ``git check-ref-format --branch`` would accept, minus the rare corners (and never an option)
_BRANCH = re.compile(r"[A-Za-z0-9_][^\s~^:?*\[\\\x00-\x1f\x7f]*(?<![/.])")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_SCHEMES = frozenset({"https", "http", "ssh", "git", "file"})
_MODE_SYMLINK = 0o120000
_MODE_GITLINK = 0o160000
_MODE_TREE = 0o040000


#: where an exported symlink that leaves the repository points instead: nowhere readable
REFUSED_LINK_TARGET = "/dev/null/symlink-outside-the-repository-refused"


@dataclass(frozen=True)
class GitCredentials:
    """Where the credentials are, never the credentials themselves.

    ``token_file``/``token_env`` are for https remotes (a GitHub/GitLab token or app installation
    token), ``ssh_key_file`` for ssh remotes. ``username`` is what the token is presented with;
    GitHub and GitLab ignore it for tokens, but Basic auth needs one.
    """

    token_file: str | None = None
    token_env: str | None = None
    ssh_key_file: str | None = None
    username: str = "x-access-token"


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
        self.url = _normalize_url(url)
        self.credentials = credentials or GitCredentials()
        self.timeout_s = timeout_s
        self.path = Path(cache_dir) / _cache_name(self.url)

    def __repr__(self) -> str:
        return f"GitSource({redact_url(self.url)!r}, {str(self.path)!r})"

    # --- following the remote ---------------------------------------------------------------

    def fetch(self) -> None:
        """Bring the local copy up to date: new commits, force-pushes and deleted branches alike."""
        env = self._environment()
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
        ``_write_links``); submodules are skipped (their content is not in this repository).
        """
        dest = Path(dest)
        with self._repo() as repo:
            tree = self._commit(repo, commit).tree
            if subdir:
                tree = _subtree(tree, subdir, self._display, commit)
            links: list[tuple[str, str]] = []
            for item in _walk(tree):
                path = str(item.path)
                _check_entry_path(path)
                if item.mode == _MODE_SYMLINK:
                    links.append((path, item.data_stream.read().decode("utf-8", "surrogateescape")))
                else:
                    _write_entry(item, dest / path)
        _write_links(dest, links)

    def changed_paths(self, old: str, new: str) -> set[str]:
        """Paths added, removed or modified between two commits (renames count as both paths)."""
        with self._repo() as repo:
            old_c, new_c = self._commit(repo, old), self._commit(repo, new)
            out = repo.git.diff("--name-only", "-z", "--no-renames", old_c.hexsha, new_c.hexsha, "--")
        return {p for p in str(out).split("\0") if p}

    def log(self, old: str | None, new: str, *, limit: int = 100) -> list[CommitInfo]:
        """Commits reachable from ``new`` but not ``old`` (all of ``new``'s history when None), newest first."""
        with self._repo() as repo:
            new_c = self._commit(repo, new)
            rev = f"{self._commit(repo, old).hexsha}..{new_c.hexsha}" if old else new_c.hexsha
            return [
                CommitInfo(
                    sha=c.hexsha,
                    author=f"{c.author.name} <{c.author.email}>",
                    date=datetime.fromtimestamp(c.authored_date, timezone(timedelta(seconds=-c.author_tz_offset))),
                    subject=str(c.summary),
                )
                for c in repo.iter_commits(rev, max_count=limit)
            ]

    # --- helpers ------------------------------------------------------------------------------

    @property
    def _display(self) -> str:
        return redact_url(self.url)

    def _check_local_remote(self) -> None:
        """A local remote that is missing is said so plainly (git's own words blame permissions)."""
        if _scheme(self.url) != "file":
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

    def _environment(self) -> dict[str, str]:
        """Environment for git network commands: no prompts, credentials by reference.

        Config entries are appended after any ``GIT_CONFIG_COUNT`` entries the agent was started
        with (a proxy, say), not instead of them.
        """
        env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "", "GCM_INTERACTIVE": "never"}
        config: list[tuple[str, str]] = [("http.lowSpeedLimit", "1000"), ("http.lowSpeedTime", "60")]
        if self.credentials.token_file or self.credentials.token_env:
            config.append(self._auth_header())
        if _scheme(self.url) == "ssh":
            env["GIT_SSH_COMMAND"] = self._ssh_command()
        inherited = _int(os.environ.get("GIT_CONFIG_COUNT"))
        env["GIT_CONFIG_COUNT"] = str(inherited + len(config))
        for i, (key, value) in enumerate(config, start=inherited):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
        return env

    def _auth_header(self) -> tuple[str, str]:
        """``http.<origin>.extraHeader``: the token, sent only to the remote's own scheme, host and port."""
        scheme, host = _scheme(self.url), urlsplit(self.url).hostname
        if scheme not in ("https", "http"):
            raise SourceError(
                f"{self._display}: a token ({self._token_ref}) works only with https URLs; "
                "use ssh_key_file for ssh remotes"
            )
        if scheme == "http" and host not in _LOOPBACK:
            raise SourceError(f"{self._display}: refusing to send a token over plain http; use an https URL")
        basic = base64.b64encode(f"{self.credentials.username}:{self._read_token()}".encode()).decode()
        return f"http.{_origin(self.url)}.extraHeader", f"Authorization: Basic {basic}"

    @property
    def _token_ref(self) -> str:
        creds = self.credentials
        return f"token_file {creds.token_file}" if creds.token_file else f"token_env ${creds.token_env}"

    def _read_token(self) -> str:
        creds = self.credentials
        if creds.token_file:
            try:
                token = Path(creds.token_file).read_text().strip()
            except OSError as exc:
                raise SourceError(
                    f"{self._display}: cannot read token_file {creds.token_file}: {exc.strerror}"
                ) from None
        else:
            token = os.environ.get(creds.token_env or "", "").strip()
        if not token:
            raise SourceError(f"{self._display}: {self._token_ref} is empty")
        return token

    def _ssh_command(self) -> str:
        parts = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={SSH_CONNECT_TIMEOUT_S}"]
        key = self.credentials.ssh_key_file
        if key:
            if not os.access(key, os.R_OK):
                raise SourceError(f"{self._display}: cannot read ssh_key_file {key}")
            parts += ["-i", key, "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=accept-new"]
        elif os.environ.get("GIT_SSH_COMMAND"):
            return os.environ["GIT_SSH_COMMAND"]
        return shlex.join(parts)

    def _fetch_failure(self, exc: git.GitCommandError) -> str:
        """A message a person can act on, from git's stderr (with any secret scrubbed)."""
        stderr = self._scrub(str(exc.stderr or ""))
        head = f"cannot fetch {self._display}"
        if "did not complete in" in stderr:
            return f"{head}: timed out after {self.timeout_s:g}s (remote unreachable or very slow)"
        for needles, what in _FAILURES:
            line = _line_with(stderr, needles)
            if line is None:
                continue
            if what == "auth":
                kind = "ssh authentication" if _scheme(self.url) == "ssh" else "authentication"
                return f"{head}: {kind} failed — {self._credential_hint()}"
            return f"{head}: {what} ({line})"
        detail = _line_with(stderr, ("fatal:", "error:")) or _last_line(stderr)
        return f"{head}: {detail or f'git exited with status {exc.status}'}"

    def _credential_hint(self) -> str:
        creds = self.credentials
        if creds.token_file or creds.token_env:
            return f"check {self._token_ref}"
        if creds.ssh_key_file:
            return f"check ssh_key_file {creds.ssh_key_file} (and that its public key has access)"
        return "the remote needs credentials: set repo.token_file (https) or repo.ssh_key_file (ssh)"

    def _scrub(self, text: str) -> str:
        """Remove anything secret from text that came back from git."""
        text = redact_text(text)
        creds = self.credentials
        try:
            token = self._read_token() if (creds.token_file or creds.token_env) else ""
        except SourceError:
            token = ""
        return text.replace(token, "***") if token else text


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


# --- URLs ---------------------------------------------------------------------------------------


def _scheme(url: str) -> str:
    if "://" in url:
        return urlsplit(url).scheme.lower()
    return "ssh" if _SCP_LIKE.match(url) else "file"


def _normalize_url(url: str) -> str:
    """Absolute local paths, and refusal of transports that run commands (``ext::``) or look like options."""
    url = url.strip()
    if not url or url.startswith("-"):
        raise SourceError(f"{url!r} is not a repository URL")
    if "://" in url:
        if _scheme(url) not in _SCHEMES:
            raise SourceError(f"{redact_url(url)}: unsupported URL scheme; use https, ssh, git, file or a local path")
        return url
    if "::" in url.split("/", 1)[0]:
        raise SourceError(f"{url}: git remote helpers (transport::address) are not supported")
    if _SCP_LIKE.match(url):
        return url
    return str(Path(url).expanduser().absolute())


def _origin(url: str) -> str:
    """``https://host:port/`` — the scope of the auth header, so it never goes to another host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/"


def redact_url(url: str) -> str:
    """The URL without any password or token written into it (``https://user:***@host/…``)."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None and not (parts.username and "@" in parts.netloc):
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"***@{host}{port}").geturl()


_USERINFO = re.compile(r"(\w+://)[^/@\s]+@")


def redact_text(text: str) -> str:
    """Scrub ``scheme://user:secret@`` from free text such as git's stderr."""
    return _USERINFO.sub(r"\1***@", text)


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


def _int(text: str | None) -> int:
    try:
        return max(int(text or 0), 0)
    except ValueError:
        return 0


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("cmdline:")]
    return _clean(lines[-1]) if lines else ""


# --- trees --------------------------------------------------------------------------------------


def _subtree(tree: git.Tree, subdir: str, display: str, commit: str) -> git.Tree:
    path = posixpath.normpath(subdir.strip("/"))
    if path.startswith("..") or posixpath.isabs(subdir):
        raise RenderError(f"{subdir}: path escapes the repository")
    try:
        sub = tree / path
    except KeyError:
        raise RenderError(f"{subdir}: no such directory in {display} at {commit[:12]}") from None
    if not isinstance(sub, git.Tree):
        raise RenderError(f"{subdir}: not a directory in {display} at {commit[:12]}")
    return sub


def _walk(tree: git.Tree) -> Iterator[git.Blob | git.Tree | git.Submodule]:
    """Every entry below ``tree``, parents before children."""
    for item in tree.traverse():
        if isinstance(item, (git.Blob, git.Tree, git.Submodule)):
            yield item


def _write_entry(item: git.Blob | git.Tree | git.Submodule, target: Path) -> None:
    """A directory or a regular file; submodules are skipped (their content lives elsewhere)."""
    if item.mode == _MODE_TREE:
        target.mkdir(parents=True, exist_ok=True)
    elif item.mode != _MODE_GITLINK and isinstance(item, git.Blob):
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            shutil.copyfileobj(item.data_stream, out)


def _check_entry_path(path: str) -> None:
    """Git refuses ``..`` and ``.git`` entries on checkout; we refuse them on export, too."""
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") or p.lower() == ".git" or "\\" in p for p in parts):
        raise RenderError(f"{path}: unsafe path in the repository tree; refusing to export it")


def _write_links(dest: Path, links: list[tuple[str, str]]) -> None:
    """Create symlinks last (so no file is written through one). A link that leaves the tree is
    not an error here: the commit is shared by every environment, and only one that reads the
    link should fail. It is written pointing at a path that cannot exist, so reading through it
    fails and the renderer, which checks every link it reads, names it."""
    for path, target in links:
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        escapes = posixpath.isabs(target) or resolved == ".." or resolved.startswith("../")
        link = dest / path
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(REFUSED_LINK_TARGET if escapes else target, link)
    root = os.path.realpath(dest)
    for path, _ in links:  # through chains of links, too
        real = os.path.realpath(dest / path)
        if real != root and not real.startswith(root + os.sep):
            os.unlink(dest / path)
            os.symlink(REFUSED_LINK_TARGET, dest / path)
