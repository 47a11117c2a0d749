"""composition.daemon: what ``gitops-agent run`` is built from, wired at construction."""

from __future__ import annotations

from pathlib import Path

from gitops_agent.composition.daemon import RunOptions, daemon_wiring
from gitops_agent.config import parse_config

BASE = """
repo: {url: https://github.com/acme/config.git}
environments: [{name: dev, path: environments/dev, namespace: shop-dev}]
"""


def config(github: str) -> str:
    return BASE + f"github: {github}\n"


def test_the_daemon_s_one_github_client_counts_its_requests_into_the_metrics(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("ghp_secretvalue\n")
    text = config(f"{{repository: acme/config, token_file: {tmp_path / 't'}}}").replace(
        "url: https://github.com/acme/config.git", f"url: {tmp_path}, cache_dir: {tmp_path / 'c'}"
    )
    cfg = parse_config(text + "server: {listen: '127.0.0.1:0', status_listen: '127.0.0.1:0'}\n", source="a.yaml")
    wiring = daemon_wiring(cfg, RunOptions(leader_election=False))
    try:
        assert wiring.elector is None and wiring.scheduler.relay is None
        assert wiring.reporter is not None and wiring.reporter.github is not None
        assert wiring.scheduler.previews is not None  # a github: section turns previews on
        assert wiring.agent.reconciler.listeners == (wiring.reporter,)
        assert wiring.agent.reconciler.stopping is wiring.stopping
        wiring.reporter.github._observer("GET")(200)  # what every request reports
        assert 'gitops_agent_github_requests_total{code="200",verb="GET"} 1.0' in wiring.metrics.render().decode()
    finally:
        wiring.server.stop()
        wiring.reporter.close()
        wiring.agent.close()
