"""``gitops-agent run`` end to end (serve.py): two processes elect a leader on a real Lease and
share the environment by their membership Leases (``test_sharding`` for more); its owner applies,
a signed push delivered to the other replica is relayed to the owner and applied, SIGTERM hands
leadership and the environment over; SIGTERM during a pass stops following the rollout, exits 0, and leaves an
inventory that matches what it applied.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s

from tests.controlplane.harness import FAIL_ANNOTATION, free_port
from tests.support.builders import ConfigRepo, config_yaml, configmap, deployment
from tests.support.polling import wait_until
from tests.support.webhooks import post_push

pytestmark = pytest.mark.integration

SECRET = "push-secret"


class Replica:
    def __init__(self, tmp_path: Path, name: str, config: dict[str, Any], kubeconfig: str) -> None:
        config = {**config, "repo": {**config["repo"], "cache_dir": str(tmp_path / f"cache-{name}")}}
        path = tmp_path / f"agent-{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        self.port, self.status_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"  # webhooks and probes
        self.status_url = f"http://127.0.0.1:{self.status_port}"  # /status and /metrics
        command = [sys.executable, "-m", "gitops_agent", "run", "--config", str(path), "--kubeconfig", kubeconfig,
                   "--listen", f"127.0.0.1:{self.port}", "--status-listen", f"127.0.0.1:{self.status_port}",
                   "--log-format", "json"]  # fmt: skip
        env = {**os.environ, "POD_NAME": f"replica-{name}"}
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def status(self) -> Any:
        try:
            return httpx.get(self.status_url + "/status", timeout=5).json()
        except httpx.TransportError:
            return None

    def leads(self) -> bool:
        s = self.status()
        return bool(s and s["leader"])

    def identity(self) -> str:
        return str((self.status() or {}).get("identity") or "")

    def dev(self) -> Any:
        s = self.status()
        return s["environments"][0] if s else {}

    def terminate(self) -> tuple[int, list[dict[str, Any]]]:
        self.proc.send_signal(signal.SIGTERM)
        _, stderr = self.proc.communicate(timeout=60)
        return self.proc.returncode, [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    made: list[Replica] = []
    yield made
    for r in made:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.communicate()


def test_two_replicas_one_leader_pushes_relayed_graceful_hand_over(
    tmp_path: Path, names: dict[str, str], api_client: k8s.ApiClient, kubeconfig: str, replicas: list[Replica]
) -> None:
    core = k8s.CoreV1Api(api_client)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=names["agent"])))  # the Lease lives here
    repo = ConfigRepo(tmp_path / "config")
    repo.write("environments/dev/app.yaml", [configmap("settings", {"mode": "one"})])
    first = repo.commit("first")
    (tmp_path / "secret").write_text(SECRET + "\n")
    config = {
        "repo": {"url": str(repo.root), "branch": "main", "poll_interval": "1h"},
        "agent": {"namespace": names["agent"]},
        "environments": [{"name": "dev", "path": "environments/dev", "namespace": names["dev"]}],
        "server": {"webhook_secret_file": str(tmp_path / "secret")},
    }
    a = Replica(tmp_path, "a", config, kubeconfig)
    replicas.append(a)
    wait_until(lambda: a.dev().get("outcome") == "applied", timeout=60)
    assert a.leads() and a.dev()["commit"] == first
    b = Replica(tmp_path, "b", config, kubeconfig)
    replicas.append(b)
    wait_until(lambda: _get(b.url + "/readyz") == 200, timeout=60)
    assert not b.leads()
    # both are members; dev belongs to one of them by hashing (b passes it once if it is b's)
    wait_until(lambda: a.dev().get("owner") and a.dev()["owner"] == b.dev().get("owner"), timeout=30)
    owner, other = (a, b) if a.dev()["owner"] == a.identity() else (b, a)
    wait_until(lambda: owner.dev().get("outcome") in ("applied", "up-to-date"), timeout=30)

    # a push delivered to the replica that does not own dev reaches its owner through its Lease
    repo.write("environments/dev/app.yaml", [configmap("settings", {"mode": "two"})])
    second = repo.commit("second")
    answer = post_push(other.url, SECRET, second, timeout=5).json()
    assert (answer["environments"], answer["relayed"]) == (["dev"], True)
    wait_until(lambda: owner.dev().get("commit") == second, timeout=20)
    assert core.read_namespaced_config_map("settings", names["dev"]).data == {"mode": "two"}

    # SIGTERM: the owner finishes, leaves (and releases the Lease if it leads), exits 0; the other
    # replica takes dev over at once
    led = owner.leads()
    code, lines = owner.terminate()
    assert code == 0, lines[-5:]
    messages = [line["message"] for line in lines]
    assert messages[-1] == "stopped" and any(m.startswith("left the members") for m in messages)
    assert "released the Lease" in messages or not led
    wait_until(other.leads, timeout=10)
    wait_until(lambda: other.dev().get("owner") == other.identity(), timeout=10)
    wait_until(lambda: other.dev().get("commit") == second, timeout=30)  # its pass finds the commit applied
    assert other.dev()["outcome"] == "up-to-date"
    code, _ = other.terminate()
    assert code == 0
    lease = k8s.CoordinationV1Api(api_client).read_namespaced_lease("gitops-agent-leader", names["agent"])
    assert lease.spec.holder_identity in ("", None)

    # every line of a pass names its environment and commit
    passes = [line for line in lines if line["message"].startswith("pass ")]
    assert passes and all(line["environment"] == "dev" and line["commit"] in (first, second) for line in passes)


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.TransportError:
        return 0


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
               "--listen", f"127.0.0.1:{free_port()}", "--status-listen", f"127.0.0.1:{free_port()}",
               "--no-leader-election", "--log-format", "json"]  # fmt: skip
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
