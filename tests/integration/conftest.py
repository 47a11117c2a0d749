"""Fixtures shared by the integration tests: unique namespaces, a config repo, agents."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from gitops_agent.agent import Agent
from gitops_agent.composition import build_agent
from gitops_agent.config import Config
from tests.support.builders import ConfigRepo

#: an agent for a config, built as the composition root builds it (``build_agent``'s keywords)
AgentFactory = Callable[..., Agent]


@pytest.fixture
def names(api_client: k8s.ApiClient) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:6]
    chosen = {"dev": f"dev-{suffix}", "prod": f"prod-{suffix}", "agent": f"agent-{suffix}"}
    yield chosen
    core = k8s.CoreV1Api(api_client)
    for ns in chosen.values():
        try:
            core.delete_namespace(ns)
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise


@pytest.fixture
def repo(tmp_path: Path) -> ConfigRepo:
    return ConfigRepo(tmp_path / "config")


@pytest.fixture
def agent_factory(kubeconfig: str) -> Iterator[AgentFactory]:
    made: list[Agent] = []

    def make(config: Config, **wiring: Any) -> Agent:
        agent = build_agent(config, kubeconfig=kubeconfig, **wiring)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.close()
