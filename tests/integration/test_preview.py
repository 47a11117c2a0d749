"""PR previews against the real control plane: one status per changed environment, one comment.

The pull request lives where GitHub keeps it, ``refs/pull/N/head`` on the remote (served over HTTP
on loopback), and the preview plans it against the live environments with server-side dry-runs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from kubernetes import client as k8s

from gitops_agent.cli import main
from gitops_agent.preview import MARKER, preview_pull_request
from tests.integration.conftest import AgentFactory
from tests.integration.git_http import GitHTTPServer
from tests.integration.proposals_support import (
    TOKEN,
    GitHubDouble,
    Upstream,
    agent_config,
    agent_config_text,
)

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.proposals_fixtures"]

PASSWORD = "hunter2-never-in-a-comment"
SECRET = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: {PASSWORD}
"""


def open_pull_request(remote: GitHTTPServer, up: Upstream, number: int) -> str:
    """Push the branch and publish it as GitHub does, as ``refs/pull/N/head``; returns the head."""
    up.push("--force", "HEAD:refs/heads/feature")
    head = up.git("rev-parse", "HEAD").strip()
    subprocess.run(
        ["git", "-C", str(remote.root / "config.git"), "update-ref", f"refs/pull/{number}/head", head], check=True
    )
    return head


def test_a_preview_posts_one_status_per_changed_environment_and_one_comment_updated_in_place(
    remote: GitHTTPServer,
    upstream: Upstream,
    github: GitHubDouble,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    api_client: k8s.ApiClient,
) -> None:
    agent = agent_factory(agent_config(remote, names, tmp_path, github))
    assert all(r.ok for r in agent.sync_all()), [r.error for r in agent.sync_all()]
    upstream.git("checkout", "-q", "-b", "feature")
    upstream.edit("environments/staging/kustomization.yaml", "newTag: 1.1.0", "newTag: 1.2.0", count=1)
    upstream.commit("staging: web 1.2.0")
    head = open_pull_request(remote, upstream, 7)

    first = preview_pull_request(agent, github.client, 7, head)

    assert [(p.environment, p.state, p.description) for p in first.environments] == [
        ("staging", "success", "1 object changes")
    ]
    assert [(s["sha"], s["context"], s["state"]) for s in github.server.statuses] == [
        (head, "gitops-agent/preview/staging", "success")
    ]
    (comment,) = github.server.comments
    assert comment["body"].startswith(MARKER)
    assert f"# configured Deployment/{names['dev']}/web" in comment["body"]
    assert "+      - image: ghcr.io/acme/web:1.2.0" in comment["body"]

    # A second push changes prod too, and adds a Secret: both environments, still one comment.
    upstream.edit("environments/prod/kustomization.yaml", "count: 3", "count: 4")
    (upstream.root / "environments/staging/db-secret.yaml").write_text(SECRET)
    upstream.edit(
        "environments/staging/kustomization.yaml",
        "  - ../../apps/worker\n",
        "  - ../../apps/worker\n  - db-secret.yaml\n",
    )
    upstream.commit("prod: 4 web replicas; staging: db secret")
    second_head = open_pull_request(remote, upstream, 7)

    second = preview_pull_request(agent, github.client, 7, second_head)

    assert {(s["context"], s["description"]) for s in github.server.statuses if s["sha"] == second_head} == {
        ("gitops-agent/preview/staging", "2 objects change"),
        ("gitops-agent/preview/prod", "1 object changes"),
    }
    assert len(github.server.comments) == 1 and second.comment_id == first.comment_id
    body = github.server.comments[0]["body"]
    assert f"# created Secret/{names['dev']}/db" in body and f"# configured Deployment/{names['prod']}/web" in body
    assert PASSWORD not in body and TOKEN not in body
    # Nothing was written to the cluster.
    live = k8s.AppsV1Api(api_client).read_namespaced_deployment("web", names["prod"])
    assert live.spec.replicas == 3


def test_a_stale_head_is_skipped_and_a_pull_request_changing_no_environment_gets_no_comment(
    remote: GitHTTPServer,
    upstream: Upstream,
    github: GitHubDouble,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    agent = agent_factory(agent_config(remote, names, tmp_path, github))
    upstream.git("checkout", "-q", "-b", "feature")
    (upstream.root / "NOTES.md").write_text("docs only\n")
    upstream.commit("docs")
    head = open_pull_request(remote, upstream, 8)

    assert preview_pull_request(agent, github.client, 8, "0" * 40).skipped.startswith("PR #8 moved on to")
    config = tmp_path / "gitops-agent.yaml"
    config.write_text(agent_config_text(remote, names, tmp_path, github))
    assert main(["preview", "--config", str(config), "--pr", "8", "--head", head]) == 0
    assert capsys.readouterr().out == f"PR #8 @ {head[:12]}: changes no environment\n"
    assert github.server.statuses == [] and github.server.comments == []
