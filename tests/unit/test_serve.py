"""``gitops-agent run`` as a process: serves HTTP, logs JSON lines, exits 0 on SIGTERM.

The cluster is an address nothing listens on: this test is about the process (signals, probes,
logs), not about apply, which integration tests cover against the real API server.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.controlplane.harness import free_port
from tests.support.builders import ConfigRepo, configmap
from tests.support.polling import wait_until

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9", "insecure-skip-tls-verify": True}}],
    "users": [{"name": "u", "user": {"token": "ghp_" + "x" * 36}}],
    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    "current-context": "c",
}


def test_run_serves_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    repo = ConfigRepo(tmp_path / "config")
    repo.write("envs/dev/cm.yaml", [configmap("a", {"k": "v"})])
    repo.commit("first")
    (tmp_path / "secret").write_text("s3cret\n")
    config = {
        "repo": {"url": str(repo.root), "cache_dir": str(tmp_path / "cache")},
        "environments": [{"name": "dev", "path": "envs/dev", "namespace": "dev"}],
        "server": {"webhook_secret_file": str(tmp_path / "secret")},
    }
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(KUBECONFIG))
    port, status_port = free_port(), free_port()
    command = [sys.executable, "-m", "gitops_agent", "run", "--config", str(tmp_path / "agent.yaml"),
               "--kubeconfig", str(tmp_path / "kubeconfig"), "--listen", f"127.0.0.1:{port}",
               "--status-listen", f"127.0.0.1:{status_port}", "--no-leader-election"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _get(base + "/healthz") == 200, timeout=20)
        status_base = f"http://127.0.0.1:{status_port}"
        wait_until(lambda: _status(status_base)["environments"][0]["outcome"] == "failed", timeout=20)
        ready = httpx.get(base + "/readyz")
        assert ready.status_code == 503 and "is not reachable" in ready.text
        assert "the config repository" not in ready.text  # it was fetched
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert time.monotonic() - started < 15
    lines = [json.loads(line) for line in stderr.splitlines()]
    failed = [line for line in lines if line["message"].startswith("pass failed")]
    assert failed and failed[0]["environment"] == "dev" and len(failed[0]["commit"]) == 40
    assert any(line["message"] == "SIGTERM received: shutting down" for line in lines)
    assert lines[-1]["message"] == "stopped"
    assert "x" * 36 not in stderr


def _get(url: str) -> int:
    try:
        return httpx.get(url).status_code
    except httpx.TransportError:
        return 0


def _status(base: str) -> Any:
    return httpx.get(base + "/status").json()
