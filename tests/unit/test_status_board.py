"""What the status board gathers from a real config repository (git log, the paths each environment
renders from) and the environments' ledgers (fixtures here: the browser test reads real ones)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_agent import status_board
from gitops_agent.agent import Agent
from gitops_agent.composition import build_agent
from gitops_agent.config import EnvironmentConfig, parse_config
from gitops_agent.core.ledger import APPLIED, REACHED, Ledger, LedgerEntry
from gitops_agent.core.pass_rules import UP_TO_DATE, WAITING
from gitops_agent.reconcile import PassResult
from gitops_agent.scheduler import EnvironmentView, SchedulerStatus
from gitops_agent.status_board import StatusBoard
from tests.support.builders import ConfigRepo, configmap


@dataclass
class FakeScheduler:
    """The scheduler's view: each environment's last pass (no drift, so nothing is read live)."""

    passes: dict[str, PassResult] = field(default_factory=dict)

    def status(self) -> SchedulerStatus:
        views = tuple(
            EnvironmentView(name, "auto", "main", 60.0, False, False, self.passes.get(name), 0.0, 0.1, 0.0, "pod-a")
            for name in ("dev", "prod")
        )
        return SchedulerStatus(True, "pod-a", (), "", views)


class LedgerBoard(StatusBoard):
    """The board with ledgers from a fixture instead of the cluster."""

    ledgers: dict[str, Ledger]

    def _ledger(self, env: EnvironmentConfig) -> Ledger:
        return self.ledgers.get(env.name, Ledger())


def entry(commit: str, result: str = APPLIED) -> LedgerEntry:
    return LedgerEntry(commit, "2026-05-01T10:00:00Z", "0.1.0", result, rollout="Current")


def agent_for(repo: ConfigRepo, tmp_path: Path) -> Agent:
    text = {
        "repo": {"url": str(repo.root), "branch": "main", "cache_dir": str(tmp_path / "cache")},
        "agent": {"namespace": "agent"},
        "environments": [
            {"name": "dev", "path": "environments/dev", "namespace": "dev"},
            {"name": "prod", "path": "environments/prod", "namespace": "prod", "policy": "manual"},
        ],
    }
    agent = build_agent(parse_config(yaml.safe_dump(text), source="agent.yaml"))
    assert agent.fetch() is None
    return agent


def cells(view: dict[str, Any]) -> dict[str, dict[str, str | None]]:
    return {c["subject"]: {env: (cell or {}).get("state") for env, cell in c["cells"].items()} for c in view["commits"]}


@dataclass
class Scene:
    """dev applied the first, the second, then the fourth (which changed prod only); prod, manual,
    runs the first and the fourth waits for it; the third changed no environment."""

    board: LedgerBoard
    commits: tuple[str, str, str, str]
    repo: ConfigRepo


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    repo = ConfigRepo(tmp_path / "config")
    repo.write("environments/dev/app.yaml", [configmap("a", {"v": "1"})])
    repo.write("environments/prod/app.yaml", [configmap("a", {"v": "1"})])
    first = repo.commit("First (#1)")
    repo.write("environments/dev/app.yaml", [configmap("a", {"v": "2"})])
    second = repo.commit("Dev two")
    repo.write("README.md", "not an environment")
    third = repo.commit("Docs only")
    repo.write("environments/prod/app.yaml", [configmap("a", {"v": "2"})])
    fourth = repo.commit("Prod two")
    agent = agent_for(repo, tmp_path)
    scheduler = FakeScheduler(
        {"dev": PassResult("dev", fourth, UP_TO_DATE), "prod": PassResult("prod", fourth, WAITING)}
    )
    board = LedgerBoard(scheduler, agent)  # type: ignore[arg-type]
    board.ledgers = {
        "dev": Ledger((entry(first), entry(second), entry(fourth, REACHED))),
        "prod": Ledger((entry(first),)),
    }
    yield Scene(board, (first, second, third, fourth), repo)
    agent.close()


def test_each_commit_has_cells_where_it_changed_an_environment(scene: Scene) -> None:
    _, _, _, fourth = scene.commits
    view = scene.board.view()
    assert cells(view) == {
        "Prod two": {"dev": None, "prod": "waiting"},
        "Dev two": {"dev": "running", "prod": None},
        "First (#1)": {"dev": "replaced", "prod": "running"},
    }  # "Docs only" changed no environment: no row
    assert [c["changed"] for c in view["commits"]] == [["prod"], ["dev"], ["dev", "prod"]]
    envs = {e["name"]: e for e in view["environments"]}
    assert envs["dev"]["running"]["commit"] == fourth and envs["dev"]["target"] == fourth
    assert envs["prod"]["waiting"] and envs["prod"]["owner"] == "pod-a"
    assert envs["dev"]["last_pass"]["outcome"] == UP_TO_DATE
    assert view["commits"][2]["pull_request"] == {"number": 1, "url": ""}  # not on GitHub: no links
    assert scene.board.view() is view  # built once per ttl, whoever asks


def test_what_runs_and_what_waits_are_shown_however_far_down_the_log(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene.repo.write("environments/dev/app.yaml", [configmap("a", {"v": "3"})])
    scene.repo.commit("Dev three")  # dev's next pass takes it
    assert scene.board.agent.fetch() is None
    monkeypatch.setattr(status_board, "MAX_COMMITS", 1)
    # one row allowed: the newest, then what each environment runs and what prod waits for
    assert cells(scene.board.view()) == {
        "Dev three": {"dev": "pending", "prod": None},
        "Prod two": {"dev": None, "prod": "waiting"},
        "Dev two": {"dev": "running", "prod": None},
        "First (#1)": {"dev": "replaced", "prod": "running"},
    }


def test_commits_the_mirror_lacks_yet_are_placed_once_it_has_fetched_them(scene: Scene) -> None:
    scene.repo.write("environments/dev/app.yaml", [configmap("a", {"v": "3"})])
    scene.repo.commit("Dev three")
    scene.repo.write("environments/dev/app.yaml", [configmap("a", {"v": "4"})])
    dev_four = scene.repo.commit("Dev four")  # another replica fetched and applied both; this one has not
    board = LedgerBoard(scene.board.scheduler, scene.board.agent, ttl_s=0)
    board.ledgers = {**scene.board.ledgers, "dev": Ledger((*scene.board.ledgers["dev"].entries, entry(dev_four)))}
    assert "Dev three" not in cells(board.view()), "git cannot place them yet"
    assert board.agent.fetch() is None
    placed = cells(board.view())
    assert placed["Dev four"] == {"dev": "running", "prod": None}
    assert placed["Dev three"] == {"dev": "running", "prod": None}, "rolled forward by the apply of Dev four"
