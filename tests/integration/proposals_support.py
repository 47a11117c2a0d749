"""Helpers for promotion, rollback and preview tests: the people's clone, the agent's config."""

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

from gitops_agent.config import Config, parse_config
from tests.integration.git_http import GitHTTPServer

#: the token the loopback git server and the GitHub double require; must never show in output
TOKEN = "ghs_promotion-test-token-0123456789"
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


def agent_config(remote: GitHTTPServer, names: dict[str, str], tmp_path: Path, github: Any) -> Config:
    """staging and prod of the template, in the test's namespaces, over the loopback remote."""
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    text = yaml.safe_dump(
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
            "github": {"repository": "acme/config", "api_url": github.url, "token_file": str(token)},
        }
    )
    return parse_config(text, source="test.yaml")


def image_of(api_client: k8s.ApiClient, namespace: str, deployment: str) -> str:
    live = k8s.AppsV1Api(api_client).read_namespaced_deployment(deployment, namespace).to_dict()
    return str(live["spec"]["template"]["spec"]["containers"][0]["image"])


class _InMemoryGitHub:
    """Stand-in for the GitHub client until tests/doubles/github_server.py lands (same calls)."""

    def __init__(self) -> None:
        self.pulls: list[dict[str, Any]] = []
        self.statuses: list[dict[str, Any]] = []
        self.comments: list[dict[str, Any]] = []

    def create_pull_request(self, *, title: str, head: str, base: str, body: str) -> dict[str, Any]:
        pr = {"number": len(self.pulls) + 1, "title": title, "head": head, "base": base, "body": body,
              "state": "open", "html_url": f"https://github.invalid/pull/{len(self.pulls) + 1}"}  # fmt: skip
        self.pulls.append(pr)
        return pr

    def list_pulls(self, *, head: str | None = None, state: str = "open") -> list[dict[str, Any]]:
        return [p for p in self.pulls if (head is None or p["head"] == head) and p["state"] == state]

    def create_status(
        self, sha: str, *, state: str, context: str, description: str, target_url: str | None = None
    ) -> dict[str, Any]:
        status = {"sha": sha, "state": state, "context": context, "description": description}
        self.statuses.append(status)
        return status

    def list_issue_comments(self, number: int) -> list[dict[str, Any]]:
        return [c for c in self.comments if c["issue"] == number]

    def create_issue_comment(self, number: int, body: str) -> dict[str, Any]:
        comment = {"id": 1000 + len(self.comments), "issue": number, "body": body}
        self.comments.append(comment)
        return comment

    def update_issue_comment(self, comment_id: int, body: str) -> dict[str, Any]:
        comment = next(c for c in self.comments if c["id"] == comment_id)
        comment["body"] = body
        return comment


@dataclass
class GitHubDouble:
    client: Any
    url: str = "https://github.invalid/api"

    def pull(self, number: int) -> dict[str, Any]:
        return next(p for p in self.client.pulls if p["number"] == number)

    def pulls(self) -> list[dict[str, Any]]:
        return list(self.client.pulls)


@contextmanager
def github_double() -> Iterator[GitHubDouble]:
    yield GitHubDouble(_InMemoryGitHub())
