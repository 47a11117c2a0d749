"""PR environments with the environments sharded: real ``gitops-agent run`` processes (two
replicas, membership Leases shortened as in ``test_sharding``), the loopback git remote and the
GitHub double. A pull request's webhook reaches one replica through the Service and GitHub does not
redeliver it elsewhere, so the replica it reached deploys, leader or not; its close, delivered to
the other replica, removes what the first deployed (under the PR environment's lock).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s

from gitops_agent.adapters.kube import KubeClient
from gitops_agent.core.ledger import ledger_name, parse_ledger
from gitops_agent.core.pr_env import PR_HEAD_ANNOTATION
from gitops_agent.core.webhook import signature
from tests.integration.git_http import GitHTTPServer
from tests.integration.proposals_support import GitHubDouble, Upstream, agent_config_text
from tests.integration.test_pr_environments import (  # noqa: F401 -- pr_namespaces: a fixture, used by name
    CONTEXT,
    People,
    event,
    gone,
    pr_namespaces,
    state_of,
)
from tests.integration.test_sharding import CONFIGMAPS, Replica, replicas  # noqa: F401 -- the fixture is used by name
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.proposals_fixtures"]

SECRET = "pr-env-sharded-secret"


def _config(remote: GitHTTPServer, names: dict[str, str], tmp_path: Path, github: GitHubDouble) -> dict[str, Any]:
    (tmp_path / "secret").write_text(SECRET + "\n")
    config: dict[str, Any] = yaml.safe_load(agent_config_text(remote, names, tmp_path, github))
    config["repo"]["poll_interval"] = "1h"  # passes on webhooks and ownership changes only
    config["server"] = {"webhook_secret_file": str(tmp_path / "secret")}
    config["pull_request_environments"] = [
        {"environment": "staging", "namespace": "pr-{number}-" + names["agent"], "ttl": "1h", "max": 3}
    ]
    return config


def _deliver(replica: Replica, payload: dict[str, Any]) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d-1", "Content-Type": "application/json",
               "X-Hub-Signature-256": signature(SECRET.encode(), body)}  # fmt: skip
    return httpx.post(replica.url + "/webhooks/github", content=body, headers=headers, timeout=30)


def _states(github: GitHubDouble, sha: str) -> list[str]:
    return [s["state"] for s in github.server.statuses if s["sha"] == sha and s["context"] == CONTEXT]


def test_a_follower_deploys_the_pr_environment_its_webhook_brought_and_the_other_replica_removes_it(
    remote: GitHTTPServer, upstream: Upstream, github: GitHubDouble, names: dict[str, str], tmp_path: Path,
    kubeconfig: str, pr_namespaces: k8s.CoreV1Api, replicas: list[Replica],  # noqa: F811
) -> None:  # fmt: skip
    upstream.git("checkout", "-q", "-b", "feature")
    people = People(upstream, remote, github)
    config = _config(remote, names, tmp_path, github)
    replicas += [Replica(tmp_path, name, config, kubeconfig) for name in ("a", "b")]
    ids = {r.identity for r in replicas}
    wait_until(lambda: all(set(r.members()) == ids and r.ready() for r in replicas), timeout=90)
    wait_until(lambda: sum(bool((r.status() or {}).get("leader")) for r in replicas) == 1, timeout=30)
    follower, leader = sorted(replicas, key=lambda r: bool(r.status()["leader"]))

    upstream.edit("environments/staging/kustomization.yaml", "count: 2", "count: 1")
    upstream.commit("staging: 1 web replica")
    head = people.publish(21)
    answer = _deliver(follower, event("opened", 21, head))
    assert answer.status_code == 202 and answer.json().get("pr_environments") == ["staging"], answer.text

    ns = "pr-21-" + names["agent"]
    wait_until(lambda: _states(github, head)[-1:] == ["success"], timeout=180, message="the PR environment's status")
    assert pr_namespaces.read_namespace(ns).metadata.annotations[PR_HEAD_ANNOTATION] == head
    kube = KubeClient.connect(kubeconfig=kubeconfig)
    ledger = parse_ledger(kube.get(CONFIGMAPS, names["agent"], ledger_name("pr-21-staging")))
    applied = [(e.commit, e.applied_by) for e in ledger.entries if e.result == "applied"]
    assert applied == [(head, follower.identity)], ledger.entries
    kube.close()

    # closed, told to the other replica: the follower's PR environment and its records go
    assert _deliver(leader, event("closed", 21, head)).status_code == 202
    wait_until(lambda: gone(pr_namespaces, ns), timeout=120, message="the PR namespace removed")
    assert state_of(pr_namespaces, names, "pr-21-staging") == []
    for r in replicas:
        code, _ = r.stop()
        assert code == 0
