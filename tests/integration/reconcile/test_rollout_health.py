"""Rollouts followed to the end on the real control plane, kwok playing the kubelet."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from gitops_agent.cluster import ClusterApi
from gitops_agent.cluster.read import LiveReads
from gitops_agent.core.health import assess
from gitops_agent.model import HealthStatus, KubeObject, ObjectKey
from gitops_agent.reconcile import FollowSettings
from gitops_agent.rollout import follow
from tests.controlplane.harness import FAIL_ANNOTATION, ControlPlane
from tests.integration.conftest import AgentFactory
from tests.support.builders import ConfigRepo, configmap, crashing, crd_scope, deployment, make_config, widget_crd

pytestmark = pytest.mark.integration
CONTROLLER_MANAGER = "kube-controller-manager"


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


@pytest.fixture
def quick(agent_factory: AgentFactory) -> AgentFactory:
    def make(config: Any) -> Any:
        return agent_factory(config, follow=FollowSettings(poll_s=0.25))

    return make


def test_a_good_rollout_and_a_completed_job_end_current(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, quick: AgentFactory
) -> None:
    group = f"h{names['agent'].split('-')[1]}.example.com"
    repo.write("environments/dev/app.yaml", [deployment("api", replicas=3), job("migrate"), widget_crd(group)])
    repo.write("environments/prod/app.yaml", [configmap("settings", {})])
    repo.commit()
    agent = quick(make_config(repo, names, tmp_path, scope=crd_scope(names)))
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
    # its pod's own words, read through the Job's selector and owner reference
    assert "doomed: 0/1 succeeded, 1 failed, container c exited 1" in dev.health.message, dev.health.message


class Recording:
    """The cluster's reads as the follower's LiveReader, noting the health of each object it hands over."""

    def __init__(self, reads: LiveReads) -> None:
        self.reads = reads
        self.seen: list[str] = []

    def get_many(self, keys: Sequence[ObjectKey]) -> Mapping[ObjectKey, KubeObject]:
        found = self.reads.get_many(keys)
        self.seen.extend(f"{assess(o).status.value}: {assess(o).message}" for o in found.values())
        return found

    def list_pods(self, namespace: str, selector: dict[str, str]) -> list[KubeObject]:
        return self.reads.list_pods(namespace, selector)


def test_a_new_image_is_followed_from_an_unobserved_generation_to_current(
    control_plane: ControlPlane | None,
    repo: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    quick: AgentFactory,
    agent_factory: AgentFactory,
) -> None:
    """The controller manager is stopped while the new image is applied, so the follower's first
    look meets a status written for the old generation (still "2/2 available"); it must wait for
    the controller, started again between its polls, to observe generation 2 and roll it out."""
    if control_plane is None:
        pytest.skip("stops the controller manager: needs the session's own control plane")
    d = deployment("api", replicas=2)
    repo.write("environments/dev/app.yaml", [d])
    repo.write("environments/prod/app.yaml", [configmap("settings", {})])
    repo.commit()
    agent = quick(make_config(repo, names, tmp_path))
    first = agent.sync_all("dev")[0].health
    assert first is not None and first.status is HealthStatus.CURRENT, first
    agent = agent_factory(agent.config, follow=FollowSettings(enabled=False))
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example/api:2.0"
    repo.write("environments/dev/app.yaml", [d])
    repo.commit("new image")
    control_plane.stop_component(CONTROLLER_MANAGER)
    try:
        assert agent.sync_all("dev")[0].outcome == "applied"
    except BaseException:
        control_plane.start_component(CONTROLLER_MANAGER)
        raise

    reader = Recording(LiveReads(ClusterApi(agent.clusters.kube(agent.config.environments[0]))))
    started: list[bool] = []

    def sleep(seconds: float) -> None:  # between the follower's polls: let the controller work
        if not started:
            control_plane.start_component(CONTROLLER_MANAGER)
            started.append(True)
        time.sleep(seconds)

    key = ObjectKey("apps", "Deployment", names["dev"], "api")
    result = follow([key], reader, timeout_s=60, poll_s=0.2, sleep=sleep)
    assert result.status is HealthStatus.CURRENT, result
    assert reader.seen[0] == "InProgress: the controller has not observed generation 2 yet (at 1)"
    assert reader.seen[-1] == "Current: 2/2 replicas available"
