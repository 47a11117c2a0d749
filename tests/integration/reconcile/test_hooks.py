"""Sync hooks on the real control plane, kwok playing the kubelet (a Job's pods succeed, or fail
with the harness's failure switch), statuses on the GitHub double."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from gitops_agent.model import HealthStatus
from gitops_agent.reconcile import FollowSettings
from gitops_agent.reporting import Reporter
from tests.controlplane.harness import FAIL_ANNOTATION
from tests.doubles.github_server import GitHubServer
from tests.integration.conftest import AgentFactory
from tests.support.builders import ConfigRepo, configmap, deployment, make_config

pytestmark = pytest.mark.integration
QUICK = FollowSettings(poll_s=0.25)
DEV = "gitops-agent/dev"


def hook_job(name: str, annotations: dict[str, str], *, fail: bool = False, image: str = "migrate:1") -> dict[str, Any]:
    template: dict[str, Any] = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": image}]}}
    if fail:
        template["metadata"] = {"annotations": {FAIL_ANNOTATION: "exit"}}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"backoffLimit": 0, "template": template},
    }


ARGO_PRE_SYNC = {"argocd.argoproj.io/hook": "PreSync"}
HELM_PRE_SYNC = {"helm.sh/hook": "pre-install,pre-upgrade", "helm.sh/hook-weight": "-1"}
POST_SYNC = {"gitops-agent.io/hook": "post-sync"}


def commit_dev(repo: ConfigRepo, *objects: dict[str, Any], message: str = "dev") -> str:
    repo.write("environments/dev/app.yaml", list(objects))
    if not (repo.root / "environments/prod/app.yaml").exists():
        repo.write("environments/prod/app.yaml", [configmap("settings", {"v": "1"})])
    return repo.commit(message)


def read_job(api_client: k8s.ApiClient, namespace: str, name: str) -> Any:
    try:
        return k8s.BatchV1Api(api_client).read_namespaced_job(name, namespace)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def read_deployment(api_client: k8s.ApiClient, namespace: str, name: str) -> Any:
    try:
        return k8s.AppsV1Api(api_client).read_namespaced_deployment(name, namespace)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def inventory(api_client: k8s.ApiClient, names: dict[str, str]) -> str:
    return str(k8s.CoreV1Api(api_client).read_namespaced_config_map("inventory-dev", names["agent"]).data["objects"])


def last_entry(api_client: k8s.ApiClient, names: dict[str, str]) -> dict[str, Any]:
    cm = k8s.CoreV1Api(api_client).read_namespaced_config_map("ledger-dev", names["agent"])
    return dict(json.loads(cm.data["entries"])[-1])


def condition_time(obj: Any, kind: str) -> datetime:
    return next(c.last_transition_time for c in obj.status.conditions if c.type == kind)


def test_a_pre_sync_migration_completes_before_the_rest_is_written(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> None:
    commit_dev(repo, deployment("api"), hook_job("migrate", ARGO_PRE_SYNC), hook_job("schema", HELM_PRE_SYNC))
    agent = agent_factory(make_config(repo, names, tmp_path), follow=QUICK)
    dev = agent.sync_all("dev")[0]
    assert dev.outcome == "applied", dev.error
    assert dev.health is not None and dev.health.status is HealthStatus.CURRENT, dev.health
    migrate, schema = (read_job(api_client, names["dev"], n) for n in ("migrate", "schema"))
    api = read_deployment(api_client, names["dev"], "api")
    assert migrate.status.completion_time is not None and schema.status.completion_time is not None
    assert api.metadata.creation_timestamp >= migrate.status.completion_time, "the Deployment waited for the hook"
    # Helm's weight -1 runs before Argo CD's default 0: one group at a time.
    assert migrate.metadata.creation_timestamp >= schema.status.completion_time
    assert migrate.metadata.labels["gitops-agent.io/environment"] == "dev"
    assert migrate.metadata.annotations["gitops-agent.io/hook"] == "pre-sync"
    assert "|Job|" not in inventory(api_client, names), "hooks are not inventoried"
    assert "Deployment" in inventory(api_client, names)
    assert dev.sync is not None and {o.key.kind for o in dev.sync.objects} == {"Namespace", "Deployment"}
    assert agent.drift_all("dev")[0].drift == (), "a hook's run is not drift"


def test_a_failed_pre_sync_hook_stops_the_pass_and_is_reported_naming_it(
    repo: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    api_client: k8s.ApiClient,
    reporter: Reporter,
    github: GitHubServer,
) -> None:
    commit = commit_dev(repo, hook_job("migrate", HELM_PRE_SYNC, fail=True), deployment("api"), configmap("c", {}))
    agent = agent_factory(make_config(repo, names, tmp_path), listeners=[reporter], follow=QUICK)
    dev = agent.sync_all("dev")[0]
    words = f"pre-sync hook Job/{names['dev']}/migrate failed: BackoffLimitExceeded"
    assert dev.outcome == "failed" and dev.reason == "HookFailed" and dev.error.startswith(words), dev.error
    assert dev.health is not None and dev.health.status is HealthStatus.FAILED
    assert read_deployment(api_client, names["dev"], "api") is None, "nothing after the hook is written"
    with pytest.raises(k8s.ApiException):
        k8s.CoreV1Api(api_client).read_namespaced_config_map("c", names["dev"])
    entry = last_entry(api_client, names)
    assert (entry["commit"], entry["result"], entry["rollout"]) == (commit, "failed", "Failed")
    assert entry["message"].startswith(words)
    assert reporter.flush()
    status = [s for s in github.statuses if s["context"] == DEV][-1]
    assert (status["sha"], status["state"]) == (commit, "failure")
    assert status["description"].startswith(f"rollout failed: {words}")


def test_a_post_sync_hook_runs_once_the_rollout_is_current(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> None:
    commit_dev(repo, deployment("api", replicas=2), hook_job("smoke", POST_SYNC))
    agent = agent_factory(make_config(repo, names, tmp_path), follow=QUICK)
    dev = agent.sync_all("dev")[0]
    assert dev.health is not None and dev.health.status is HealthStatus.CURRENT, dev.health
    smoke = read_job(api_client, names["dev"], "smoke")
    api = read_deployment(api_client, names["dev"], "api")
    assert smoke.status.completion_time is not None
    assert smoke.metadata.creation_timestamp >= condition_time(api, "Available"), "after the rollout was Current"
    assert last_entry(api_client, names)["rollout"] == "Current"


def test_a_failed_post_sync_hook_fails_the_rollout(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> None:
    commit_dev(repo, deployment("api"), hook_job("smoke", POST_SYNC, fail=True))
    dev = agent_factory(make_config(repo, names, tmp_path), follow=QUICK).sync_all("dev")[0]
    assert dev.outcome == "applied"
    assert dev.health is not None and dev.health.status is HealthStatus.FAILED
    assert dev.health.message.startswith(f"post-sync hook Job/{names['dev']}/smoke failed: BackoffLimitExceeded")
    entry = last_entry(api_client, names)
    assert (entry["result"], entry["rollout"]) == ("applied", "Failed")


def test_before_hook_creation_reruns_the_hook_on_the_next_commit_and_never_prunes_it(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> None:
    commit_dev(repo, configmap("c", {"v": "1"}), hook_job("migrate", ARGO_PRE_SYNC))
    agent = agent_factory(make_config(repo, names, tmp_path), follow=QUICK)
    assert agent.sync_all("dev")[0].outcome == "applied"
    first = read_job(api_client, names["dev"], "migrate").metadata.uid

    # A dry run validates the changed hook (a Job's template is immutable: as a new object) and writes nothing.
    commit_dev(repo, configmap("c", {"v": "2"}), hook_job("migrate", ARGO_PRE_SYNC, image="migrate:2"))
    planned = agent.sync_all("dev", dry_run=True)[0]
    assert planned.ok, planned.error
    assert read_job(api_client, names["dev"], "migrate").metadata.uid == first

    assert agent.sync_all("dev")[0].outcome == "applied"
    again = read_job(api_client, names["dev"], "migrate")
    assert again.metadata.uid != first, "deleted and created again"
    assert again.spec.template.spec.containers[0].image == "migrate:2" and again.status.succeeded == 1

    # A commit that changes nothing of dev's runs no hook.
    repo.write("environments/prod/app.yaml", [configmap("settings", {"v": "2"})])
    repo.commit("prod only")
    assert agent.sync_all("dev")[0].outcome == "reached"
    assert read_job(api_client, names["dev"], "migrate").metadata.uid == again.metadata.uid

    # The hook leaves the snapshot: it is not pruned as an ordinary object.
    commit_dev(repo, configmap("c", {"v": "3"}))
    dev = agent.sync_all("dev")[0]
    assert dev.outcome == "applied" and dev.sync is not None
    assert all(o.key.kind != "Job" for o in dev.sync.objects), dev.sync.objects
    assert read_job(api_client, names["dev"], "migrate").metadata.uid == again.metadata.uid


def test_hook_succeeded_deletes_the_hook_once_it_succeeded(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> None:
    policy = {"argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}
    commit_dev(repo, configmap("c", {"v": "1"}), hook_job("migrate", {**ARGO_PRE_SYNC, **policy}))
    dev = agent_factory(make_config(repo, names, tmp_path), follow=QUICK).sync_all("dev")[0]
    assert dev.outcome == "applied" and dev.health is not None and dev.health.status is HealthStatus.CURRENT
    assert read_job(api_client, names["dev"], "migrate") is None


def test_an_existing_object_the_agent_did_not_create_is_not_deleted_for_a_hook(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> None:
    commit_dev(repo, configmap("c", {"v": "1"}))
    agent = agent_factory(make_config(repo, names, tmp_path), follow=QUICK)
    assert agent.sync_all("dev")[0].ok
    theirs = hook_job("migrate", {})
    theirs["metadata"] = {"name": "migrate", "namespace": names["dev"]}
    k8s.BatchV1Api(api_client).create_namespaced_job(names["dev"], theirs)
    uid = read_job(api_client, names["dev"], "migrate").metadata.uid
    commit_dev(repo, configmap("c", {"v": "2"}), hook_job("migrate", ARGO_PRE_SYNC))
    dev = agent.sync_all("dev")[0]
    assert dev.outcome == "failed" and "did not create" in dev.error, dev.error
    assert read_job(api_client, names["dev"], "migrate").metadata.uid == uid
    cm = k8s.CoreV1Api(api_client).read_namespaced_config_map("c", names["dev"])
    assert cm.data == {"v": "1"}, "refused before any write"
