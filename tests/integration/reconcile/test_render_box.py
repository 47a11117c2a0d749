"""A hostile commit against the real API server: the render is refused, the pass fails before any
write, and the agent's token (planted in its environment) is in no output and nowhere in the cluster."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from gitops_agent.cli import main
from tests.support.builders import ConfigRepo, config_yaml, configmap

pytestmark = pytest.mark.integration

TOKEN = "ghp_planted0token0for0the0sync0test"
ENV = "environments/dev"
KFILE = f"{ENV}/kustomization.yaml"
EXEC_FN = {
    "apiVersion": "example.com/v1",
    "kind": "Exfiltrate",
    "metadata": {"name": "x", "annotations": {"config.kubernetes.io/function": "exec:\n  path: ./steal.sh\n"}},
}


def hostile(repo: ConfigRepo, case: str) -> str:
    """Commit one hostile dev environment; the start of the error it must fail with."""
    if case == "bare-env":
        repo.write(KFILE, [{"configMapGenerator": [{"name": "leak", "envs": ["app.env"]}]}])
        repo.write(f"{ENV}/app.env", "MODE=dev\nGIT_TOKEN\n")
        return f"{ENV}/app.env: line 2: 'GIT_TOKEN' has no value"
    if case == "remote":
        repo.write(KFILE, [{"resources": ["https://raw.githubusercontent.com/acme/x/main/cm.yaml"]}])
        return f"{KFILE}: resources entry 'https://raw.githubusercontent.com/acme/x/main/cm.yaml' is a remote URL"
    if case == "exec-plugin":
        repo.write(KFILE, [{"resources": [], "transformers": ["steal.yaml"]}])
        repo.write(f"{ENV}/steal.yaml", [EXEC_FN])
        repo.write(f"{ENV}/steal.sh", '#!/bin/sh\necho "$GIT_TOKEN"\n')
        return f"{ENV}/steal.yaml: Exfiltrate is an exec or KRM function plugin"
    # a 20 MB render from 1 MiB of files: twenty overlays of one big base
    repo.write("apps/big/kustomization.yaml", [{"resources": ["cm.yaml"]}])
    repo.write("apps/big/cm.yaml", [configmap("big", {"blob": "x" * (1024 * 1024 - 200)})])
    for i in range(20):
        repo.write(f"apps/copy{i}/kustomization.yaml", [{"resources": ["../big"], "nameSuffix": f"-{i}"}])
    repo.write(KFILE, [{"resources": [f"../../apps/copy{i}" for i in range(20)]}])
    return f"{KFILE}: the render's output passed the limit of 8 MiB"


def cluster_text(api_client: k8s.ApiClient, namespaces: list[str]) -> str:
    core = k8s.CoreV1Api(api_client)
    items = [core.list_namespaced_config_map(ns).items + core.list_namespaced_secret(ns).items for ns in namespaces]
    return json.dumps([api_client.sanitize_for_serialization(i) for group in items for i in group])


def versions(api_client: k8s.ApiClient, namespace: str) -> dict[str, Any]:
    core = k8s.CoreV1Api(api_client)
    own = core.list_namespaced_config_map(namespace).items  # kube-root-ca.crt: the controller-manager's, at any time
    return {c.metadata.name: c.metadata.resource_version for c in own if c.metadata.name != "kube-root-ca.crt"}


@pytest.mark.parametrize("case", ["bare-env", "remote", "exec-plugin", "render-over-the-cap"])
def test_a_hostile_render_fails_the_pass_writes_nothing_and_leaks_no_token(
    repo: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    kubeconfig: str,
    api_client: k8s.ApiClient,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    case: str,
) -> None:
    monkeypatch.setenv("GIT_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    config = tmp_path / "gitops-agent.yaml"
    config.write_text(config_yaml(repo, names, tmp_path))
    args = ["--config", str(config), "--kubeconfig", kubeconfig, "-o", "json"]
    repo.write(KFILE, [{"resources": ["app.yaml"]}])
    repo.write(f"{ENV}/app.yaml", [configmap("settings", {"mode": "dev"})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"mode": "prod"})])
    repo.commit("good")
    first = main(["sync", "--env", "dev", "--no-wait", *args])
    assert first == 0, capfd.readouterr()
    capfd.readouterr()
    before = versions(api_client, names["dev"])

    expected = hostile(repo, case)
    repo.commit(f"hostile: {case}")
    caplog.set_level(logging.DEBUG)
    code = main(["sync", "--env", "dev", *args])
    out, err = capfd.readouterr()

    assert code == 1, out + err
    [result] = json.loads(out)["results"]
    assert result["outcome"] == "failed" and expected in result["error"], result
    assert versions(api_client, names["dev"]) == before, "nothing written to the environment"
    for text in (out, err, caplog.text, cluster_text(api_client, [names["dev"], names["agent"]])):
        assert TOKEN not in text
