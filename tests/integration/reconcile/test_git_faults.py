"""Faults in the environment around the agent: the git remote goes away, lies or is rewritten.

Each must give a clear error for the environments it affects, prune nothing, and leave the other
environments working. Against the real control plane and real git repositories.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from kubernetes import client as k8s

from tests.integration.conftest import AgentFactory
from tests.support.builders import ConfigRepo, configmap, make_config

pytestmark = pytest.mark.integration


def settings(api_client: k8s.ApiClient, namespace: str) -> dict[str, str]:
    return dict(k8s.CoreV1Api(api_client).read_namespaced_config_map("settings", namespace).data)


@pytest.fixture
def two_envs(repo: ConfigRepo) -> ConfigRepo:
    repo.write("environments/dev/app.yaml", [configmap("settings", {"v": "dev-1"}), configmap("extra", {})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"v": "prod-1"})])
    repo.commit("first")
    return repo


def test_an_unreachable_remote_fails_every_environment_and_prunes_nothing(
    two_envs: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> None:
    agent = agent_factory(make_config(two_envs, names, tmp_path))
    assert all(r.ok for r in agent.sync_all())
    moved = tmp_path / "moved"
    shutil.move(two_envs.root, moved)

    results = agent.sync_all()
    assert [r.outcome for r in results] == ["failed", "failed"]
    assert all(r.reason == "SourceUnavailable" and str(two_envs.root) in r.error for r in results), results
    assert settings(api_client, names["dev"]) == {"v": "dev-1"}
    k8s.CoreV1Api(api_client).read_namespaced_config_map("extra", names["dev"])  # not pruned

    shutil.move(moved, two_envs.root)
    assert [r.outcome for r in agent.sync_all()] == ["up-to-date", "up-to-date"]


def test_garbage_instead_of_a_repository(
    two_envs: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> None:
    agent = agent_factory(make_config(two_envs, names, tmp_path))
    assert all(r.ok for r in agent.sync_all())
    shutil.rmtree(two_envs.root / ".git")
    (two_envs.root / ".git").write_text("this is not a repository\n")

    results = agent.sync_all()
    assert all(r.outcome == "failed" and r.reason == "SourceUnavailable" for r in results), results
    assert settings(api_client, names["prod"]) == {"v": "prod-1"}


def test_a_deleted_branch_fails_only_the_environment_that_follows_it(
    two_envs: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> None:
    two_envs.git("branch", "release")
    config = make_config(two_envs, names, tmp_path)
    prod = next(e for e in config.environments if e.name == "prod")
    config = replace(config, environments=(config.environments[0], replace(prod, branch="release")))
    agent = agent_factory(config)
    assert all(r.ok for r in agent.sync_all())

    two_envs.git("branch", "-D", "release")
    two_envs.write("environments/dev/app.yaml", [configmap("settings", {"v": "dev-2"}), configmap("extra", {})])
    two_envs.commit("dev moves on")
    dev, prod_result = agent.sync_all()
    assert dev.outcome == "applied", dev.error
    assert prod_result.outcome == "failed" and "release" in prod_result.error
    assert settings(api_client, names["dev"]) == {"v": "dev-2"}
    assert settings(api_client, names["prod"]) == {"v": "prod-1"}


def test_a_force_push_back_to_an_older_commit_applies_that_snapshot_again(
    two_envs: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> None:
    agent = agent_factory(make_config(two_envs, names, tmp_path))
    first = two_envs.git("rev-parse", "HEAD").strip()
    assert all(r.ok for r in agent.sync_all())
    two_envs.write("environments/dev/app.yaml", [configmap("settings", {"v": "dev-2"})])
    two_envs.commit("second: extra removed")
    dev = agent.sync_all("dev")[0]
    assert dev.outcome == "applied"

    two_envs.git("reset", "-q", "--hard", first)  # history rewritten, as by a force-push
    dev = agent.sync_all("dev")[0]
    assert (dev.outcome, dev.commit) == ("applied", first), dev.error
    assert settings(api_client, names["dev"]) == {"v": "dev-1"}
    k8s.CoreV1Api(api_client).read_namespaced_config_map("extra", names["dev"])  # back again
