"""reconcile: every entry point is one pass, so listeners hear every apply and the ledger has one
writer — a rollback applied at once included; a dry run writes nothing and tells nobody."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_agent.cluster import ClusterApi
from gitops_agent.cluster.state import StateStore
from gitops_agent.reconcile import PassRequest, PassResult
from tests.integration.conftest import AgentFactory
from tests.support.builders import ConfigRepo, configmap, make_config

pytestmark = pytest.mark.integration


class Heard:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def applying(self, environment: str, commit: str) -> None:
        self.events.append(("applying", environment, commit))

    def finished(self, result: PassResult) -> None:
        self.events.append((result.outcome, result.environment, result.commit))


def test_a_rollback_applied_now_is_a_pass_that_listeners_hear_and_that_holds_the_environment(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory
) -> None:
    repo.write("environments/dev/app.yaml", [configmap("settings", {"v": "1"})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"v": "1"})])
    first = repo.commit("first")
    heard = Heard()
    agent = agent_factory(make_config(repo, names, tmp_path), listeners=[heard])
    dev = agent.config.environment("dev")
    assert agent.sync_all("dev")[0].outcome == "applied"
    repo.write("environments/dev/app.yaml", [configmap("settings", {"v": "2"})])
    second = repo.commit("second")
    assert agent.sync_all("dev")[0].outcome == "applied"
    heard.events.clear()

    rolled = agent.reconcile(dev, PassRequest(explicit=True, commit=first, rolled_back_from=second))
    assert (rolled.outcome, rolled.commit) == ("applied", first), rolled.error
    assert heard.events == [("applying", "dev", first), ("applied", "dev", first)]
    ledger = StateStore(ClusterApi(agent.clusters.kube(dev)), namespace=names["agent"], field_manager="gitops-agent")
    last = ledger.read_ledger("dev").entries[-1]
    assert (last.commit, last.result, last.rolled_back_from) == (first, "applied", second)

    held = agent.sync_all("dev")[0]  # the branch still says `second`: the rollback holds
    assert (held.outcome, held.commit) == ("up-to-date", first)
    assert heard.events[-1] == ("up-to-date", "dev", first)


def test_a_dry_run_pass_writes_nothing_and_tells_no_listener(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory
) -> None:
    repo.write("environments/dev/app.yaml", [configmap("settings", {"v": "1"})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"v": "1"})])
    commit = repo.commit()
    heard = Heard()
    agent = agent_factory(make_config(repo, names, tmp_path), listeners=[heard])
    planned = agent.sync_all("dev", dry_run=True)[0]
    assert (planned.outcome, planned.commit) == ("planned", commit), planned.error
    assert planned.sync is not None and planned.sync.dry_run
    assert heard.events == []
    assert not agent.clusters.kube(agent.config.environment("dev")).writes
