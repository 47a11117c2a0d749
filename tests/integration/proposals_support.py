"""Helpers for promotion, rollback and preview tests: the people's clone, the agent's config, the
GitHub double (fixtures over them: ``proposals_fixtures``)."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

from gitops_agent.adapters.github import GitHubClient, TokenAuth
from gitops_agent.config import Config, parse_config
from tests.doubles.github_server import GitHubServer
from tests.integration.git_http import GitHTTPServer

#: the tokens the loopback git server and the GitHub double require; never to show in any output
TOKEN = "ghs_promotion-test-token-0123456789"
GITHUB_TOKEN = "ghp_promotionTestToken0123456789abcdefAB"
_AUTH = "Authorization: Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()


@dataclass
class Upstream:
    """A clone of the remote where the test plays the people: commits, merges, pushes."""

    root: Path

    @classmethod
    def create(cls, root: Path, url: str) -> Upstream:
        up = cls(root)
        root.mkdir(parents=True)
        up.git("init", "-q", "-b", "main")
        up.git("remote", "add", "origin", url)
        return up

    def git(self, *args: str) -> str:
        base = ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "-c", f"http.extraHeader={_AUTH}"]
        done = subprocess.run([*base, *args], cwd=self.root, check=True, capture_output=True, text=True)
        return done.stdout

    def edit(self, path: str, old: str, new: str, count: int = -1) -> None:
        target = self.root / path
        text = target.read_text()
        assert old in text, f"{old!r} not in {path}"
        target.write_text(text.replace(old, new, count))

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def push(self, *refs: str) -> None:
        self.git("push", "-q", "origin", *refs)

    def fetch(self) -> None:
        self.git("fetch", "-q", "origin")

    def merge(self, ref: str) -> str:
        """Merge as GitHub's merge button does (a merge commit); returns it."""
        self.git("merge", "-q", "--no-ff", "-m", f"Merge {ref}", ref)
        return self.git("rev-parse", "HEAD").strip()

    def changed_files(self, a: str, b: str) -> list[str]:
        return self.git("diff", "--name-only", a, b).split()

    def changed_lines(self, a: str, b: str) -> list[str]:
        out = self.git("diff", "-U0", a, b).splitlines()
        return [ln for ln in out if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]

    def show(self, rev: str, path: str) -> str:
        return self.git("show", f"{rev}:{path}")

    def tree(self, rev: str, path: str) -> str:
        return self.git("rev-parse", f"{rev}:{path}").strip()


def agent_config(remote: GitHTTPServer, names: dict[str, str], tmp_path: Path, github: GitHubDouble) -> Config:
    """staging and prod of the template, in the test's namespaces, over the loopback remote."""
    return parse_config(agent_config_text(remote, names, tmp_path, github), source="test.yaml")


def agent_config_text(remote: GitHTTPServer, names: dict[str, str], tmp_path: Path, github: GitHubDouble) -> str:
    token, github_token = tmp_path / "token", tmp_path / "github-token"
    token.write_text(TOKEN + "\n")
    github_token.write_text(GITHUB_TOKEN + "\n")
    return yaml.safe_dump(
        {
            "repo": {
                "url": f"{remote.url}/config.git",
                "branch": "main",
                "token_file": str(token),
                "cache_dir": str(tmp_path / "cache"),
            },
            "agent": {"namespace": names["agent"]},
            "environments": [
                {"name": "staging", "path": "environments/staging", "namespace": names["dev"]},
                {"name": "prod", "path": "environments/prod", "namespace": names["prod"]},
            ],
            "github": {"repository": "acme/config", "api_url": github.url, "token_file": str(github_token)},
        }
    )


def image_of(api_client: k8s.ApiClient, namespace: str, deployment: str) -> str:
    live = k8s.AppsV1Api(api_client).read_namespaced_deployment(deployment, namespace).to_dict()
    return str(live["spec"]["template"]["spec"]["containers"][0]["image"])


@dataclass
class GitHubDouble:
    """GitHub's double (held to the OpenAPI description) and our client pointed at it."""

    server: GitHubServer
    client: GitHubClient

    @property
    def url(self) -> str:
        return self.server.url

    def pull(self, number: int) -> dict[str, Any]:
        return next(p for p in self.server.pulls if p["number"] == number)

    def pulls(self) -> list[dict[str, Any]]:
        return list(self.server.pulls)


@contextmanager
def github_double() -> Iterator[GitHubDouble]:
    server = GitHubServer(owner="acme", repo="config", token=GITHUB_TOKEN)
    server.start()
    client = GitHubClient(server.url, "acme/config", TokenAuth(GITHUB_TOKEN))
    try:
        yield GitHubDouble(server, client)
    finally:
        client.close()
        server.stop()
    assert server.violations == [], server.violations
