"""Promotion and rollback end to end: a real git remote over HTTP, pull requests on a GitHub double.

The config repository is config-repo-template itself, served by ``git http-backend`` on loopback
with a token required on every request, so the agent's pushes really travel over the network with
its credentials. Tests that apply to a cluster use the real control plane and are marked
``integration``; the others need git only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client as k8s

from gitops_agent.agent import Agent
from gitops_agent.cli import main
from gitops_agent.composition import build_agent
from gitops_agent.core.ledger import APPLIED, REACHED
from gitops_agent.promotion import promote, rollback
from tests.integration.conftest import AgentFactory
from tests.integration.git_http import GitHTTPServer
from tests.integration.proposals_support import (
    GITHUB_TOKEN,
    TOKEN,
    GitHubDouble,
    Upstream,
    agent_config,
    agent_config_text,
    image_of,
)

pytest_plugins = ["tests.integration.proposals_fixtures"]


def plain_agent(remote: GitHTTPServer, names: dict[str, str], tmp_path: Path, github: GitHubDouble) -> Agent:
    """An agent for tests that need git only (no cluster calls are made)."""
    return build_agent(agent_config(remote, names, tmp_path, github))


NAMES = {"dev": "staging-ns", "prod": "prod-ns", "agent": "agent-ns"}


# --- promote (git only) ---------------------------------------------------------------------------


def test_promote_opens_a_pull_request_whose_branch_changes_only_the_image_lines(
    remote: GitHTTPServer, upstream: Upstream, github: GitHubDouble, tmp_path: Path
) -> None:
    upstream.edit(
        "environments/staging/kustomization.yaml",
        "newTag: 1.1.0\n  - name: ghcr.io/acme/worker",
        "newTag: 1.3.0\n  - name: ghcr.io/acme/worker",
    )
    bump = upstream.commit("staging: web 1.3.0")
    upstream.push("main")
    pushes = remote.pushes()
    agent = plain_agent(remote, NAMES, tmp_path, github)
    try:
        proposal = promote(agent, github.client, source="staging", target="prod")
    finally:
        agent.close()

    assert proposal.pull_request is not None and remote.pushes() == pushes + 1
    pr = github.pull(proposal.pull_request)
    assert (pr["head"], pr["base"]) == (proposal.branch, "main")
    assert proposal.branch.startswith("promote/staging-to-prod/")
    upstream.fetch()
    assert upstream.changed_files("origin/main", f"origin/{proposal.branch}") == [
        "environments/prod/kustomization.yaml"
    ]
    assert upstream.changed_lines("origin/main", f"origin/{proposal.branch}") == [
        "-    newTag: 1.0.0",
        "+    newTag: 1.3.0",
        "-    newTag: 1.0.0",
        "+    newTag: 1.1.0",
    ]
    assert "# The prod environment" in upstream.show(
        f"origin/{proposal.branch}", "environments/prod/kustomization.yaml"
    )
    # The body says what moves and which commits brought it to staging.
    assert "| `ghcr.io/acme/web` | 1.0.0 | **1.3.0** | — |" in pr["body"]
    assert f"`{bump[:12]}` staging: web 1.3.0" in pr["body"]
    assert TOKEN not in repr(proposal) and TOKEN not in pr["body"]


def test_promoting_again_reuses_the_open_pull_request(
    remote: GitHTTPServer, upstream: Upstream, github: GitHubDouble, tmp_path: Path
) -> None:
    agent = plain_agent(remote, NAMES, tmp_path, github)
    try:
        first = promote(agent, github.client, source="staging", target="prod", app="web")
        second = promote(agent, github.client, source="staging", target="prod", app="web")
    finally:
        agent.close()
    assert first.pull_request == second.pull_request
    assert len(github.pulls()) == 1


def test_dry_run_prints_the_diff_and_body_and_pushes_nothing(
    remote: GitHTTPServer, upstream: Upstream, github: GitHubDouble, tmp_path: Path
) -> None:
    agent = plain_agent(remote, NAMES, tmp_path, github)
    try:
        proposal = promote(agent, None, source="staging", target="prod", app="worker", dry_run=True)
    finally:
        agent.close()
    assert "-    newTag: 1.0.0\n+    newTag: 1.1.0" in proposal.diff
    assert "ghcr.io/acme/web" not in proposal.body
    assert remote.pushes() == 1 and github.pulls() == []


def test_nothing_to_promote_opens_nothing(
    remote: GitHTTPServer, upstream: Upstream, github: GitHubDouble, tmp_path: Path
) -> None:
    agent = plain_agent(remote, NAMES, tmp_path, github)
    try:
        promote(agent, github.client, source="staging", target="prod")
        upstream.fetch()
        upstream.merge(f"origin/{github.pulls()[0]['head']}")
        upstream.push("main")
        again = promote(agent, github.client, source="staging", target="prod")
    finally:
        agent.close()
    assert again.promotion is not None and again.promotion.empty and again.pull_request is None
    assert len(github.pulls()) == 1


def test_the_cli_prints_the_dry_run_and_opens_the_pull_request_without_showing_a_token(
    remote: GitHTTPServer,
    upstream: Upstream,
    github: GitHubDouble,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "gitops-agent.yaml"
    config.write_text(agent_config_text(remote, NAMES, tmp_path, github))
    args = ["promote", "--config", str(config), "--from", "staging", "--to", "prod", "--app", "web"]

    assert main([*args, "--dry-run"]) == 0
    dry = capsys.readouterr()
    assert "--- the change on promote/staging-to-prod/" in dry.out and "+    newTag: 1.1.0" in dry.out
    assert "| `ghcr.io/acme/web` | 1.0.0 | **1.1.0** | — |" in dry.out
    assert github.pulls() == []

    assert main([*args, "--output", "json"]) == 0
    done = capsys.readouterr()
    answer = json.loads(done.out)
    assert answer["pull_request"] == 1 and answer["url"].endswith("/pull/1")
    assert answer["images"] == [
        {"name": "ghcr.io/acme/web", "from": ["ghcr.io/acme/web:1.0.0"], "to": "ghcr.io/acme/web:1.1.0", "digest": ""}
    ]
    for secret in (TOKEN, GITHUB_TOKEN):
        assert secret not in dry.out + dry.err + done.out + done.err


def test_a_rollback_restores_only_the_environment_and_says_when_a_shared_base_changed_since(
    remote: GitHTTPServer, upstream: Upstream, github: GitHubDouble, tmp_path: Path
) -> None:
    good = upstream.git("rev-parse", "HEAD").strip()
    upstream.edit("environments/prod/kustomization.yaml", "count: 3", "count: 5")
    upstream.edit("apps/worker/deployment.yaml", '"orders"', '"orders-v2"')
    upstream.commit("prod: 5 web replicas; worker reads orders-v2")
    upstream.push("main")
    agent = plain_agent(remote, NAMES, tmp_path, github)
    try:
        proposal = rollback(agent, github.client, environment="prod", to="HEAD~1", dry_run=True)
    finally:
        agent.close()
    assert proposal.branch == f"rollback/prod/{good[:12]}"
    assert "-    count: 5\n+    count: 3" in proposal.diff and "apps/worker" not in proposal.diff
    (note,) = proposal.notes
    assert note.startswith(f"Files outside environments/prod changed since {good[:12]} (apps/worker/deployment.yaml)")
    assert note in proposal.body
    assert github.pulls() == []


# --- against the cluster ----------------------------------------------------------------------------


@pytest.mark.integration
def test_a_merged_promotion_rolls_prod_forward_and_history_shows_the_commits_it_brought(
    remote: GitHTTPServer,
    upstream: Upstream,
    github: GitHubDouble,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    api_client: k8s.ApiClient,
) -> None:
    agent = agent_factory(agent_config(remote, names, tmp_path, github))
    first = agent.sync_all("prod")[0]
    assert first.outcome == APPLIED, first.error
    proposal = promote(agent, github.client, source="staging", target="prod")
    upstream.fetch()
    merge = upstream.merge(f"origin/{proposal.branch}")
    upstream.push("main")

    assert agent.sync_all("prod")[0].outcome == APPLIED
    assert image_of(api_client, names["prod"], "web") == "ghcr.io/acme/web:1.1.0"
    history = agent.history("prod")
    assert [h.entry.commit for h in history] == [merge, first.commit]
    assert [c.sha for c in history[0].commits] == [merge, proposal.commit]
    assert history[0].running


@pytest.mark.integration
def test_rollback_now_restores_the_older_tree_by_pr_and_holds_the_environment_until_it_merges(
    remote: GitHTTPServer,
    upstream: Upstream,
    github: GitHubDouble,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    api_client: k8s.ApiClient,
) -> None:
    agent = agent_factory(agent_config(remote, names, tmp_path, github))
    good = agent.sync_all("prod")[0].commit
    upstream.edit("environments/prod/kustomization.yaml", "newTag: 1.0.0", "newTag: 9.9.9-bad", count=1)
    bad = upstream.commit("prod: web 9.9.9-bad")
    upstream.push("main")
    assert agent.sync_all("prod")[0].outcome == APPLIED
    assert image_of(api_client, names["prod"], "web") == "ghcr.io/acme/web:9.9.9-bad"

    proposal = rollback(agent, github.client, environment="prod", to=good[:10], now=True)

    # Applied at once, and the pull request's branch has prod's tree as it was at the good commit.
    assert proposal.applied is not None and proposal.applied.ok, proposal.applied
    assert image_of(api_client, names["prod"], "web") == "ghcr.io/acme/web:1.0.0"
    upstream.fetch()
    assert upstream.tree(f"origin/{proposal.branch}", "environments/prod") == upstream.tree(good, "environments/prod")
    assert upstream.changed_files("origin/main", f"origin/{proposal.branch}") == [
        "environments/prod/kustomization.yaml"
    ]
    assert github.pull(proposal.pull_request or 0)["base"] == "main"
    body = github.pull(proposal.pull_request or 0)["body"]
    assert f"`{bad[:12]}` prod: web 9.9.9-bad" in body and "holds it there until this pull request merges" in body

    # The next pass does not roll forward again; status and history say why.
    assert agent.sync_all("prod")[0].commit == good
    assert image_of(api_client, names["prod"], "web") == "ghcr.io/acme/web:1.0.0"
    status = agent.status("prod")[0]
    assert status.target_commit == bad and status.applied_commit == good and status.in_sync
    assert "rolled back to" in status.last_result
    top = agent.history("prod")[0]
    assert (top.entry.commit, top.entry.rolled_back_from, top.running) == (good, bad, True)

    # A change to another environment does not end the hold; merging the rollback does.
    upstream.edit("environments/staging/kustomization.yaml", "count: 2", "count: 3")
    upstream.commit("staging: 3 web replicas")
    upstream.push("main")
    assert agent.sync_all("prod")[0].commit == good
    upstream.fetch()
    merged = upstream.merge(f"origin/{proposal.branch}")
    upstream.push("main")
    after = agent.sync_all("prod")[0]
    assert (after.commit, after.outcome) == (merged, REACHED)
    assert agent.status("prod")[0].in_sync and "rolled back" not in agent.status("prod")[0].last_result
