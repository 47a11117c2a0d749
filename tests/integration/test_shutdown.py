"""SIGTERM during a pass: the agent stops waiting on the rollout, exits 0, and leaves an inventory
that matches what it applied (the real ``gitops-agent run`` process, the real control plane)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client as k8s

from tests.controlplane.harness import FAIL_ANNOTATION, free_port
from tests.support.builders import ConfigRepo, config_yaml, configmap, deployment
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration


def test_sigterm_while_following_a_rollout_exits_cleanly_with_a_consistent_inventory(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, kubeconfig: str, api_client: k8s.ApiClient
) -> None:
    stuck = deployment("api")
    stuck["spec"]["progressDeadlineSeconds"] = 600  # the pass would follow this rollout for ten minutes
    stuck["spec"]["template"]["metadata"]["annotations"] = {FAIL_ANNOTATION: "crashloop"}
    repo.write("environments/dev/app.yaml", [stuck] + [configmap(f"cm-{i}", {"i": str(i)}) for i in range(30)])
    repo.write("environments/prod/app.yaml", [configmap("settings", {})])
    repo.commit()
    path = tmp_path / "agent.yaml"
    path.write_text(config_yaml(repo, names, tmp_path))
    command = [sys.executable, "-m", "gitops_agent", "run", "--config", str(path), "--kubeconfig", kubeconfig,
               "--listen", f"127.0.0.1:{free_port()}", "--no-leader-election", "--log-format", "json"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    core = k8s.CoreV1Api(api_client)
    try:

        def applied() -> bool:  # the ledger is written after the apply, before the rollout is followed
            try:
                return '"applied"' in core.read_namespaced_config_map("ledger-dev", names["agent"]).data["entries"]
            except k8s.ApiException:
                return False

        wait_until(applied, timeout=60)
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr[-2000:]
        assert time.monotonic() - stopping < 30, "shutdown waited for the rollout instead of abandoning the watch"
    finally:
        if proc.poll() is None:
            proc.kill()

    inventory = core.read_namespaced_config_map("inventory-dev", names["agent"]).data["objects"].splitlines()
    live = {cm.metadata.name for cm in core.list_namespaced_config_map(names["dev"]).items}
    assert sorted(line.rsplit("|", 1)[1] for line in inventory if "|ConfigMap|" in line) == sorted(
        f"cm-{i}" for i in range(30)
    )
    assert {f"cm-{i}" for i in range(30)} <= live
    assert any(line.endswith("|Deployment|" + names["dev"] + "|api") for line in inventory)
