"""Health beyond Deployments on the real control plane (kwok playing the kubelet with the
harness's failure switch): pod reasons for a StatefulSet and a bare Pod, read through their owner
chain, and a user's CEL rule judging a custom resource the API server stored."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_agent.config import parse_config
from gitops_agent.model import HealthStatus
from gitops_agent.reconcile import FollowSettings
from tests.controlplane.harness import FAIL_ANNOTATION
from tests.integration.conftest import AgentFactory
from tests.support.builders import ConfigRepo, configmap, crd_scope, make_config, widget_crd

pytestmark = pytest.mark.integration


@pytest.fixture
def quick(agent_factory: AgentFactory) -> AgentFactory:
    def make(config: Any) -> Any:
        return agent_factory(config, follow=FollowSettings(poll_s=0.25))

    return make


def crashing_statefulset(name: str) -> dict[str, Any]:
    labels = {"app": name}
    template = {
        "metadata": {"labels": labels, "annotations": {FAIL_ANNOTATION: "crashloop"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/db:1.0"}]},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {"replicas": 1, "serviceName": name, "selector": {"matchLabels": labels}, "template": template},
    }


def exiting_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {FAIL_ANNOTATION: "exit"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "task", "image": "registry.example/task:1.0"}]},
    }


def _prod(repo: ConfigRepo) -> None:
    repo.write("environments/prod/app.yaml", [configmap("settings", {})])


def test_a_crashlooping_statefulset_times_out_with_its_pods_reason_and_health_shows_it(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, quick: AgentFactory
) -> None:
    repo.write("environments/dev/app.yaml", [crashing_statefulset("db")])
    _prod(repo)
    repo.commit()
    agent = quick(make_config(repo, names, tmp_path, health_timeout="8s"))
    dev = agent.sync_all("dev")[0]
    assert dev.health is not None and dev.health.status is HealthStatus.FAILED, dev.health
    assert "db: 0/1 ready, CrashLoopBackOff in container app, exit code 1 (Error)" in dev.health.message, dev.health
    _, objects = agent.health("dev")  # what `gitops-agent health` prints
    (db,) = [o for o in objects if o.key.kind == "StatefulSet"]
    assert db.status is HealthStatus.IN_PROGRESS
    assert db.message.startswith("db: 0/1 ready, CrashLoopBackOff in container app, exit code 1 (Error)"), db


def test_a_bare_pod_that_exits_fails_with_its_exit_code(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, quick: AgentFactory
) -> None:
    repo.write("environments/dev/app.yaml", [exiting_pod("once")])
    _prod(repo)
    repo.commit()
    dev = quick(make_config(repo, names, tmp_path, health_timeout="60s")).sync_all("dev")[0]
    assert dev.health is not None and dev.health.status is HealthStatus.FAILED, dev.health
    assert dev.health.message.startswith("Pod/once: container task exited 1 (Error)"), dev.health


def test_a_cel_rule_judges_a_custom_resource(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, quick: AgentFactory
) -> None:
    """The Widget's CRD has no status subresource, so its status is stored as applied: what its
    controller would have written, validated and served back by the API server."""
    group = f"h{names['agent'].split('-')[1]}.example.com"
    widget = {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {"name": "build"},
        "status": {"phase": "Error", "message": "step compile failed"},
    }
    repo.write("environments/dev/app.yaml", [widget_crd(group), widget])
    _prod(repo)
    repo.commit()
    base = make_config(repo, names, tmp_path, scope=crd_scope(names), health_timeout="60s")
    rule = {
        "api_version": f"{group}/v1",
        "kind": "Widget",
        "current": 'has(object.status.phase) && object.status.phase == "Succeeded"',
        "failed": 'has(object.status.phase) && object.status.phase in ["Failed", "Error"]',
        "message": '"widget says: " + object.status.message',
    }
    rules = parse_config(_rules_yaml([rule]), source="rules.yaml").health_rules
    dev = quick(dataclasses.replace(base, health_rules=rules)).sync_all("dev")[0]
    assert dev.health is not None and dev.health.status is HealthStatus.FAILED, dev.health
    assert "widget says: step compile failed" in dev.health.message, dev.health


def _rules_yaml(rules: list[dict[str, Any]]) -> str:
    repo = {"url": "https://example.com/r.git", "branch": "main"}
    env = {"name": "dev", "path": "env/dev", "namespace": "dev"}
    return yaml.safe_dump({"repo": repo, "environments": [env], "health_rules": rules})
