"""GitSource against real git repositories made in temporary directories (and served over HTTP).

No control plane is needed, only the ``git`` binary: upstream repositories are bare, a working clone
pushes to them (force-pushes too), and an HTTP server running ``git http-backend`` checks a token.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from gitops_agent.adapters.git_credentials import GitCredentials, redact_url
from gitops_agent.adapters.git_export import REFUSED_LINK_TARGET
from gitops_agent.adapters.git_source import GitSource
from gitops_agent.errors import RenderError, SourceError

TOKEN = "ghs_s3cr3t-t0ken-value"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


class Upstream:
    """A bare repository and a working clone that pushes to it."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "upstream.git"
        self.work = root / "work"
        git(root, "init", "-q", "--bare", "-b", "main", str(self.bare))
        git(root, "init", "-q", "-b", "main", str(self.work))
        git(self.work, "config", "user.email", "dev@example.com")
        git(self.work, "config", "user.name", "Dev")
        git(self.work, "remote", "add", "origin", str(self.bare))

    def write(self, path: str, text: str) -> None:
        target = self.work / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def link(self, path: str, target: str) -> None:
        (self.work / path).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, self.work / path)

    def commit(self, message: str = "change", *, branch: str = "main", force: bool = False) -> str:
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "--allow-empty", "-m", message)
        git(self.work, "push", "-q", *(["--force"] if force else []), "origin", f"HEAD:refs/heads/{branch}")
        return git(self.work, "rev-parse", "HEAD")


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    up = Upstream(tmp_path)
    up.write("apps/web/deployment.yaml", "kind: Deployment\n")
    up.write("environments/dev/kustomization.yaml", "resources: [../../apps/web]\n")
    up.commit("first")
    return up


@pytest.fixture
def source(upstream: Upstream, tmp_path: Path) -> GitSource:
    src = GitSource(str(upstream.bare), tmp_path / "cache")
    src.fetch()
    return src


def files_under(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- fetch, resolve, export ---------------------------------------------------------------------


def test_fetch_resolve_and_export(upstream: Upstream, source: GitSource, tmp_path: Path) -> None:
    commit = source.resolve("main")
    assert commit == git(upstream.work, "rev-parse", "HEAD")
    source.export(commit, tmp_path / "out")
    assert files_under(tmp_path / "out") == {
        "apps/web/deployment.yaml": "kind: Deployment\n",
        "environments/dev/kustomization.yaml": "resources: [../../apps/web]\n",
    }


def test_local_copy_is_bare_and_outside_the_upstream(source: GitSource, tmp_path: Path) -> None:
    assert source.path.parent == tmp_path / "cache"
    assert git(source.path, "rev-parse", "--is-bare-repository") == "true"


def test_two_commits_export_in_parallel_without_interfering(
    upstream: Upstream, source: GitSource, tmp_path: Path
) -> None:
    first = source.resolve("main")
    upstream.write("apps/web/deployment.yaml", "kind: Deployment\nspec: {replicas: 3}\n")
    upstream.write("apps/web/service.yaml", "kind: Service\n")
    second = upstream.commit("second")
    source.fetch()
    jobs = {f"{sha}-{i}": sha for i in range(4) for sha in (first, second)}
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda item: source.export(item[1], tmp_path / item[0]), jobs.items()))
    for name, sha in jobs.items():
        files = files_under(tmp_path / name)
        if sha == first:
            assert "apps/web/service.yaml" not in files
            assert files["apps/web/deployment.yaml"] == "kind: Deployment\n"
        else:
            assert files["apps/web/service.yaml"] == "kind: Service\n"


def test_export_of_a_subdirectory_keeps_its_paths(source: GitSource, tmp_path: Path) -> None:
    source.export(source.resolve("main"), tmp_path / "out", subdir="apps")
    assert list(files_under(tmp_path / "out")) == ["apps/web/deployment.yaml"]


def test_export_of_a_missing_subdirectory_names_it(source: GitSource, tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"^environments/qa: no such directory"):
        source.export(source.resolve("main"), tmp_path / "out", subdir="environments/qa")


def test_force_push_is_followed(upstream: Upstream, source: GitSource) -> None:
    old = upstream.commit("to be rewritten")
    source.fetch()
    assert source.resolve("main") == old
    git(upstream.work, "reset", "-q", "--hard", "HEAD~1")
    upstream.write("rewritten.yaml", "kind: ConfigMap\n")
    new = upstream.commit("rewritten", force=True)
    source.fetch()
    assert source.resolve("main") == new
    assert source.changed_paths(old, new) == {"rewritten.yaml"}


def test_deleted_branch_is_an_error_naming_it_and_the_branches_left(upstream: Upstream, source: GitSource) -> None:
    upstream.commit("release", branch="release-1")
    source.fetch()
    source.resolve("release-1")
    git(upstream.work, "push", "-q", "origin", ":refs/heads/release-1")
    source.fetch()
    with pytest.raises(SourceError, match=r"branch 'release-1' not found; existing branches: main$"):
        source.resolve("release-1")


def test_unknown_branch_lists_a_few_existing_ones(upstream: Upstream, source: GitSource) -> None:
    for i in range(12):
        git(upstream.work, "push", "-q", "origin", f"HEAD:refs/heads/feature-{i:02d}")
    source.fetch()
    with pytest.raises(SourceError) as info:
        source.resolve("mian")
    message = str(info.value)
    assert "branch 'mian' not found; existing branches: feature-00, feature-01" in message
    assert message.endswith("(and 5 more)")


@pytest.mark.parametrize("name", ["--all", "main~1", "a..b", "main^{tree}", ""], ids=str)
def test_branch_names_that_are_not_branches_are_refused(source: GitSource, name: str) -> None:
    with pytest.raises(SourceError, match="is not a branch name"):
        source.resolve(name)


def test_unknown_commit_is_a_source_error(source: GitSource, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="commit 0123456789abcdef0123456789abcdef01234567 is not in the local copy"):
        source.export("0123456789abcdef0123456789abcdef01234567", tmp_path / "out")


def test_resolve_before_any_fetch_says_so(upstream: Upstream, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no local copy yet"):
        GitSource(str(upstream.bare), tmp_path / "empty-cache").resolve("main")


def test_broken_local_copy_is_rebuilt(upstream: Upstream, source: GitSource) -> None:
    for child in source.path.iterdir():
        if child.is_dir():
            subprocess.run(["rm", "-rf", str(child)], check=True)
        else:
            child.unlink()
    (source.path / "junk").write_text("not a repository")
    source.fetch()
    assert source.resolve("main") == git(upstream.work, "rev-parse", "HEAD")


# --- history --------------------------------------------------------------------------------------


def test_changed_paths_and_log(upstream: Upstream, source: GitSource) -> None:
    old = source.resolve("main")
    upstream.write("apps/web/deployment.yaml", "kind: Deployment\n# v2\n")
    middle = upstream.commit("bump web")
    git(upstream.work, "mv", "environments/dev", "environments/qa")
    new = upstream.commit("rename dev to qa")
    source.fetch()
    assert source.changed_paths(old, new) == {
        "apps/web/deployment.yaml",
        "environments/dev/kustomization.yaml",
        "environments/qa/kustomization.yaml",
    }
    log = source.log(old, new)
    assert [(c.sha, c.subject, c.author) for c in log] == [
        (new, "rename dev to qa", "Dev <dev@example.com>"),
        (middle, "bump web", "Dev <dev@example.com>"),
    ]
    assert log[0].date.tzinfo is not None
    assert [c.subject for c in source.log(None, new, limit=2)] == ["rename dev to qa", "bump web"]


def test_a_log_by_paths_keeps_the_commits_that_touched_them_and_the_merges_that_brought_them(
    upstream: Upstream, source: GitSource
) -> None:
    old = source.resolve("main")
    git(upstream.work, "checkout", "-q", "-b", "promote")
    upstream.write("environments/dev/kustomization.yaml", "resources: []\n# v2\n")
    change = upstream.commit("dev: v2")
    git(upstream.work, "checkout", "-q", "main")
    git(upstream.work, "merge", "-q", "--no-ff", "-m", "Merge pull request #7", "promote")
    merge = git(upstream.work, "rev-parse", "HEAD").strip()
    upstream.write("apps/web/deployment.yaml", "kind: Deployment\n# v2\n")
    new = upstream.commit("bump web")
    source.fetch()
    assert [c.sha for c in source.log(old, new, paths=["environments/dev"])] == [merge, change]
    assert [c.sha for c in source.log(old, new, paths=["apps/web", "environments/qa"])] == [new]


# --- symlinks -------------------------------------------------------------------------------------


def test_symlinks_inside_the_repository_are_kept(upstream: Upstream, source: GitSource, tmp_path: Path) -> None:
    upstream.link("environments/dev/web.yaml", "../../apps/web/deployment.yaml")
    upstream.link("shared", "apps/web")
    commit = upstream.commit("links")
    source.fetch()
    source.export(commit, tmp_path / "out")
    assert (tmp_path / "out/environments/dev/web.yaml").read_text() == "kind: Deployment\n"
    assert (tmp_path / "out/shared/deployment.yaml").is_file()


@pytest.mark.parametrize(
    "links, culprit",
    [
        ({"apps/passwd.yaml": "/etc/passwd"}, "apps/passwd.yaml"),
        ({"apps/up.yaml": "../../outside.yaml"}, "apps/up.yaml"),
        ({"apps/root": "..", "apps/sneaky.yaml": "root/../../etc/passwd"}, "apps/sneaky.yaml"),
    ],
    ids=["absolute", "dot-dot", "through-a-link"],
)
def test_symlinks_leaving_the_repository_are_neutralised(
    upstream: Upstream, source: GitSource, tmp_path: Path, links: dict[str, str], culprit: str
) -> None:
    # not an export error: the commit is shared by every environment; the one that reads it fails
    for path, target in links.items():
        upstream.link(path, target)
    commit = upstream.commit("escape")
    source.fetch()
    source.export(commit, tmp_path / "out")
    assert os.readlink(tmp_path / "out" / culprit) == REFUSED_LINK_TARGET
    with pytest.raises(OSError):
        (tmp_path / "out" / culprit).read_bytes()


# --- unreachable and wrong remotes ----------------------------------------------------------------


def test_missing_local_remote(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"^cannot fetch file:///nonexistent/repo\.git: remote unreachable"):
        GitSource("file:///nonexistent/repo.git", tmp_path / "cache").fetch()


def test_closed_http_port(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/config.git"
    with pytest.raises(SourceError, match=rf"^cannot fetch {url}: remote unreachable — check the URL"):
        GitSource(url, tmp_path / "cache").fetch()


def test_a_directory_that_is_not_a_repository(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(SourceError, match="not a git repository"):
        GitSource(str(tmp_path / "plain"), tmp_path / "cache").fetch()


@pytest.mark.parametrize("url", ["ext::sh -c touch% /tmp/pwned", "--upload-pack=touch /tmp/pwned", "gopher://x/y"])
def test_dangerous_or_unknown_transports_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        GitSource(url, tmp_path / "cache")


def test_token_with_an_ssh_url_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN)
    src = GitSource(
        "git@example.com:org/repo.git", tmp_path / "cache", credentials=GitCredentials(str(tmp_path / "token"))
    )
    with pytest.raises(SourceError, match="works only with https"):
        src.fetch()


def test_token_over_plain_http_to_another_host_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN)
    src = GitSource("http://git.example.com/r.git", tmp_path / "c", credentials=GitCredentials(str(tmp_path / "token")))
    with pytest.raises(SourceError, match="refusing to send a token over plain http"):
        src.fetch()


def test_ssh_key_is_used_with_identities_only_and_failures_name_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir, key = tmp_path / "bin", tmp_path / "deploy_key"
    bin_dir.mkdir()
    key.write_text("not really a key\n")
    ssh = bin_dir / "ssh"  # a stand-in that records its arguments and refuses the key
    ssh.write_text(
        f'#!/bin/sh\necho "$@" > {tmp_path / "args"}\necho "git@h: Permission denied (publickey)." >&2\nexit 255\n'
    )
    ssh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    src = GitSource(
        "git@git.example.com:org/config.git", tmp_path / "c", credentials=GitCredentials(ssh_key_file=str(key))
    )
    with pytest.raises(SourceError) as info:
        src.fetch()
    assert str(info.value) == (
        f"cannot fetch git@git.example.com:org/config.git: ssh authentication failed — check ssh_key_file {key} "
        "(and that its public key has access)"
    )
    args = (tmp_path / "args").read_text().split()
    assert args[args.index("-i") + 1] == str(key)
    for option in ("IdentitiesOnly=yes", "StrictHostKeyChecking=accept-new", "BatchMode=yes"):
        assert option in args


def test_missing_ssh_key_is_named(tmp_path: Path) -> None:
    src = GitSource("ssh://git@example.com/r.git", tmp_path / "c", credentials=GitCredentials(ssh_key_file="/no/key"))
    with pytest.raises(SourceError, match="cannot read ssh_key_file /no/key"):
        src.fetch()


def test_unreadable_token_file_is_named(tmp_path: Path) -> None:
    src = GitSource("https://example.invalid/r.git", tmp_path / "c", credentials=GitCredentials("/no/such/token"))
    with pytest.raises(SourceError, match="cannot read token_file /no/such/token"):
        src.fetch()


def test_passwords_in_urls_are_redacted() -> None:
    assert redact_url("https://bot:hunter2@git.example.com:8443/r.git") == "https://***@git.example.com:8443/r.git"
    assert redact_url("https://git.example.com/r.git") == "https://git.example.com/r.git"


# --- over HTTP: git http-backend behind a token check ---------------------------------------------


class GitHTTP(BaseHTTPRequestHandler):
    """Smart HTTP via ``git http-backend`` (CGI); 401 unless the request carries the token."""

    project_root: Path
    expected_auth = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    seen_auth: list[str] = []
    seen_agents: list[str] = []

    def do_GET(self) -> None:
        self.serve()

    def do_POST(self) -> None:
        self.serve()

    def serve(self) -> None:
        auth = self.headers.get("Authorization", "")
        self.seen_auth.append(auth)
        self.seen_agents.append(self.headers.get("User-Agent", ""))
        if auth != self.expected_auth:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.end_headers()
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": url.path,
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
        }
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        headers = [line.split(": ", 1) for line in head.decode().split("\r\n") if line]
        status = next((int(v.split()[0]) for k, v in headers if k.lower() == "status"), 200)
        self.send_response(status)
        for key, value in headers:
            if key.lower() != "status":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_handler(upstream: Upstream) -> type[GitHTTP]:
    """A handler class of its own per test, so the requests it records are this test's."""
    return type("Handler", (GitHTTP,), {"project_root": upstream.bare.parent, "seen_auth": [], "seen_agents": []})


@pytest.fixture
def http_url(upstream: Upstream, http_handler: type[GitHTTP]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), http_handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{upstream.bare.name}"
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_over_http_with_a_token_file(upstream: Upstream, http_url: str, tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    src = GitSource(http_url, tmp_path / "cache", credentials=GitCredentials(token_file=str(tmp_path / "token")))
    src.fetch()
    assert src.resolve("main") == git(upstream.work, "rev-parse", "HEAD")
    config = (src.path / "config").read_text()
    assert TOKEN not in config
    assert base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode() not in config


def test_fetch_over_http_with_a_token_variable(
    http_url: str, http_handler: type[GitHTTP], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFIG_REPO_TOKEN", TOKEN)
    # config the agent was started with (a proxy, say) is kept alongside the auth header
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", "http.userAgent")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "gitops-agent-test")
    src = GitSource(http_url, tmp_path / "cache", credentials=GitCredentials(token_env="CONFIG_REPO_TOKEN"))
    src.fetch()
    assert src.resolve("main")
    assert set(http_handler.seen_agents) == {"gitops-agent-test"}
    assert set(http_handler.seen_auth) == {GitHTTP.expected_auth}


def test_wrong_token_is_an_authentication_error_naming_the_file(http_url: str, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("wrong-" + TOKEN)
    src = GitSource(http_url, tmp_path / "cache", credentials=GitCredentials(token_file=str(tmp_path / "token")))
    with pytest.raises(SourceError) as info:
        src.fetch()
    message = str(info.value)
    assert message == f"cannot fetch {http_url}: authentication failed — check token_file {tmp_path / 'token'}"
    assert TOKEN not in message


def test_no_credentials_for_a_private_remote_says_what_to_set(http_url: str, tmp_path: Path) -> None:
    with pytest.raises(
        SourceError, match=r"authentication failed — the remote needs credentials: set repo\.token_file"
    ):
        GitSource(http_url, tmp_path / "cache").fetch()


def test_a_remote_that_answers_garbage(tmp_path: Path) -> None:
    class Garbage(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            payload = b"\x00\x01this is not git\xff" * 10
            self.send_response(200)
            self.send_header("Content-Type", "application/x-git-upload-pack-advertisement")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        with pytest.raises(
            SourceError,
            match=r"^cannot fetch http://127\.0\.0\.1:\d+/r\.git: the remote answered .* not valid git data",
        ):
            GitSource(f"http://127.0.0.1:{server.server_address[1]}/r.git", tmp_path / "cache").fetch()
    finally:
        server.shutdown()
        server.server_close()


def test_a_remote_that_never_answers_times_out(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts connections (the kernel does), never replies
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/r.git"
        start = time.monotonic()
        with pytest.raises(SourceError, match=r"timed out after 2s"):
            GitSource(url, tmp_path / "cache", timeout_s=2).fetch()
        assert time.monotonic() - start < 20
    finally:
        listener.close()
