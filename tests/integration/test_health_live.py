"""Rollouts followed to the end on the real control plane, kwok playing the kubelet."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gitops_agent.engine import Engine
from gitops_agent.model import HealthStatus, ObjectKey
from gitops_agent.rollout import follow, health_of
from tests.controlplane.harness import FAIL_ANNOTATION
from tests.integration.conftest import AgentFactory
from tests.integration.support import ConfigRepo, configmap, deployment, make_config, widget_crd

pytestmark = pytest.mark.integration


def job(name: str, fail: bool = False) -> dict[str, Any]:
    template: dict[str, Any] = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}
    if fail:
        template["metadata"] = {"annotations": {FAIL_ANNOTATION: "exit"}}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": template},
    }


def crashing(name: str, deadline: int) -> dict[str, Any]:
    d = deployment(name, replicas=2)
    d["spec"]["progressDeadlineSeconds"] = deadline
    d["spec"]["template"]["metadata"]["annotations"] = {FAIL_ANNOTATION: "crashloop"}
    return d


@pytest.fixture
def quick(agent_factory: AgentFactory) -> AgentFactory:
    def make(config: Any) -> Any:
        agent = agent_factory(config)
        agent.poll_s = 0.25
        return agent

    return make


def test_a_good_rollout_and_a_completed_job_end_current(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, quick: AgentFactory
) -> None:
    group = f"h{names['agent'].split('-')[1]}.example.com"
    repo.write("environments/dev/app.yaml", [deployment("api", replicas=3), job("migrate"), widget_crd(group)])
    repo.write("environments/prod/app.yaml", [configmap("settings", {})])
    repo.commit()
    agent = quick(make_config(repo, names, tmp_path))
    dev = agent.sync_all("dev")[0]
    assert dev.outcome == "applied" and dev.health is not None, dev.error
    assert dev.health.status is HealthStatus.CURRENT, dev.health
    commit, objects = agent.health("dev")
    by_kind = {o.key.kind: o for o in objects}
    assert commit == dev.commit
    assert by_kind["Deployment"].message == "3/3 replicas available"
    assert by_kind["Job"].status is HealthStatus.CURRENT
    assert by_kind["CustomResourceDefinition"].message == "established"


def test_a_crashlooping_rollout_fails_after_its_progress_deadline_with_the_pod_reason(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, quick: AgentFactory
) -> None:
    repo.write("environments/dev/app.yaml", [crashing("api", deadline=5)])
    repo.write("environments/prod/app.yaml", [configmap("settings", {})])
    repo.commit()
    agent = quick(make_config(repo, names, tmp_path))
    dev = agent.sync_all("dev")[0]
    assert dev.health is not None and dev.health.status is HealthStatus.FAILED, dev.health
    assert "api: 0/2 ready, CrashLoopBackOff in container app" in dev.health.message
    assert "progress deadline exceeded" in dev.health.message


def test_a_failing_job_fails(repo: ConfigRepo, names: dict[str, str], tmp_path: Path, quick: AgentFactory) -> None:
    repo.write("environments/dev/app.yaml", [job("doomed", fail=True)])
    repo.write("environments/prod/app.yaml", [configmap("settings", {})])
    repo.commit()
    dev = quick(make_config(repo, names, tmp_path)).sync_all("dev")[0]
    assert dev.health is not None and dev.health.status is HealthStatus.FAILED
    assert "Job/" in dev.health.message and "backoff limit" in dev.health.message


def test_a_new_image_is_followed_from_in_progress_to_current(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, quick: AgentFactory
) -> None:
    d = deployment("api", replicas=2)
    d["spec"]["minReadySeconds"] = 2  # availability comes a little after readiness: InProgress first
    repo.write("environments/dev/app.yaml", [d])
    repo.write("environments/prod/app.yaml", [configmap("settings", {})])
    repo.commit()
    agent = quick(make_config(repo, names, tmp_path))
    agent.sync_all("dev")
    agent.follow_rollouts = False
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example/api:2.0"
    repo.write("environments/dev/app.yaml", [d])
    repo.commit("new image")
    dev = agent.sync_all("dev")[0]
    assert dev.outcome == "applied" and dev.health is None

    engine = Engine(agent.kube(agent.config.environments[0]))
    key = ObjectKey("apps", "Deployment", names["dev"], "api")
    seen: list[HealthStatus] = []

    def sleep(seconds: float) -> None:  # the follower sleeps between polls: note what it saw
        seen.append(health_of([key], engine)[0].status)
        time.sleep(seconds)

    result = follow([key], engine, timeout_s=60, poll_s=0.1, sleep=sleep)
    assert result.status is HealthStatus.CURRENT
    assert seen and seen[0] is HealthStatus.IN_PROGRESS, seen
