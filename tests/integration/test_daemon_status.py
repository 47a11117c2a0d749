"""The daemon's ``/status`` and ``/metrics`` after real passes on the control plane: each
environment's rollout health (JSON and the page for people), and ``github_requests_total``
counting the statuses the reporter sent to the GitHub double (by method and status code)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gitops_agent.composition.daemon import DaemonWiring
from tests.controlplane.harness import FAIL_ANNOTATION
from tests.doubles.github_server import GitHubServer
from tests.support.builders import ConfigRepo, config_yaml, configmap, deployment
from tests.support.daemon import running_daemon
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    with GitHubServer() as server:
        yield server
    assert server.violations == []


@pytest.fixture
def daemon(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, kubeconfig: str, github: GitHubServer
) -> Iterator[DaemonWiring]:
    failing = deployment("api", replicas=1, annotations={FAIL_ANNOTATION: "crashloop"})
    failing["spec"]["progressDeadlineSeconds"] = 3
    repo.write("environments/dev/app.yaml", [deployment("web"), configmap("settings", {})])
    repo.write("environments/prod/app.yaml", [failing])
    repo.commit()
    (tmp_path / "token").write_text(github.token + "\n")
    text: dict[str, Any] = yaml.safe_load(config_yaml(repo, names, tmp_path))
    text["environments"][1]["health_timeout"] = "60s"
    text["github"] = {"api_url": github.url, "repository": f"{github.owner}/{github.repo}",
                      "token_file": str(tmp_path / "token")}  # fmt: skip
    with running_daemon(text, kubeconfig) as wiring:
        yield wiring


def environments(wiring: DaemonWiring) -> dict[str, Any]:
    data = httpx.get(f"{wiring.server.status_url}/status", timeout=5).json()
    return {e["name"]: e for e in data["environments"]}


def followed(wiring: DaemonWiring) -> dict[str, Any] | None:
    """The environments once each one's rollout has a verdict."""
    envs = environments(wiring)
    return envs if all(e["health"] and e["health"]["status"] != "InProgress" for e in envs.values()) else None


def test_status_shows_each_environment_s_rollout_health_and_github_requests_are_counted(
    daemon: DaemonWiring, github: GitHubServer
) -> None:
    # leading starts a pass of each environment: dev's rollout ends Current, prod's Failed
    envs = wait_until(lambda: followed(daemon), timeout=90, message=lambda: str(environments(daemon)))
    assert envs["dev"]["health"]["status"] == "Current"
    assert envs["dev"]["health"]["message"].startswith("healthy (")
    assert envs["prod"]["health"]["status"] == "Failed"
    assert "CrashLoopBackOff in container app" in envs["prod"]["health"]["message"]

    page = httpx.get(f"{daemon.server.status_url}/status", headers={"Accept": "text/html"}, timeout=5).text
    assert f"<td>Current: {envs['dev']['health']['message']}</td>" in page
    assert "<td>Failed: api: 0/1 ready, CrashLoopBackOff in container app" in page

    def posted() -> float:
        metrics = httpx.get(f"{daemon.server.status_url}/metrics", timeout=5).text
        family = {f.name: f for f in text_string_to_metric_families(metrics)}.get("gitops_agent_github_requests")
        samples = family.samples if family else []
        return sum(s.value for s in samples if s.labels == {"verb": "POST", "code": "201"})

    wait_until(lambda: posted() >= len(github.statuses) > 0, timeout=30)
