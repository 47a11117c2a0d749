"""Sharding end to end: real ``gitops-agent run`` processes on the real API server share 12
environments by rendezvous hashing over their membership Leases. Each environment is applied by
its owner alone (the ledger names the replica); a push delivered to one replica reaches every
owner; a SIGKILLed replica's environments are taken over within the Lease duration plus one
interval; a fourth replica takes only its share; an owner SIGSTOPped mid-pass is taken over and writes
nothing once resumed. And on a fresh cluster ``run`` creates its
namespace and is ready only once it joined.

Leases are shortened (``$GITOPS_AGENT_LEASE_DURATION`` 3s, renewed every second); the poll
interval is an hour, so passes happen only on pushes and on ownership changes: what a commit's
entries in the ledgers show is what those caused.
"""

from __future__ import annotations

import functools
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

from gitops_agent.adapters.kube import KubeClient, ResourceInfo
from gitops_agent.core.ledger import LedgerEntry, ledger_name, parse_ledger
from gitops_agent.core.shard import assignments, member_name, moved, owned_by
from tests.controlplane.harness import free_port
from tests.integration.reconcile.test_lock import CrdGate
from tests.support.builders import ConfigRepo, configmap, crd_scope
from tests.support.polling import wait_until
from tests.support.webhooks import post_push

pytestmark = pytest.mark.integration

SECRET = "push-secret"
LEASE_S = 3.0
RENEW_S = LEASE_S / 3
ENVS = [f"e{i:02d}" for i in range(12)]
CONFIGMAPS = ResourceInfo("", "v1", "ConfigMap", "configmaps", True)


class Replica:
    def __init__(
        self, tmp_path: Path, name: str, config: dict[str, Any], kubeconfig: str, *, lock_s: float | None = None
    ) -> None:
        config = {**config, "repo": {**config["repo"], "cache_dir": str(tmp_path / f"cache-{name}")}}
        path = tmp_path / f"agent-{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        self.port, self.status_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.status_url = f"http://127.0.0.1:{self.status_port}"
        command = [sys.executable, "-m", "gitops_agent", "run", "--config", str(path), "--kubeconfig", kubeconfig,
                   "--listen", f"127.0.0.1:{self.port}", "--status-listen", f"127.0.0.1:{self.status_port}",
                   "--log-format", "json"]  # fmt: skip
        env = {**os.environ, "POD_NAME": f"replica-{name}", "GITOPS_AGENT_LEASE_DURATION": str(LEASE_S)}
        if lock_s is not None:  # environments' locks expire this soon too
            env["GITOPS_AGENT_LOCK_DURATION"] = str(lock_s)
        self.log = tmp_path / f"agent-{name}.log"  # a file, not a pipe nobody reads: a full pipe blocks the agent
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, text=True, env=env)

    def status(self) -> Any:
        try:
            return httpx.get(self.status_url + "/status", timeout=5).json()
        except (httpx.TransportError, ValueError):
            return None

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def members(self) -> tuple[str, ...]:
        s = self.status()
        return tuple(s["members"]) if s else ()

    @functools.cached_property
    def identity(self) -> str:
        s = wait_until(self.status, timeout=60)
        return str(s["identity"])

    def stop(self) -> tuple[int, list[dict[str, Any]]]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        lines = self.log.read_text().splitlines()
        return self.proc.returncode, [json.loads(line) for line in lines if line.startswith("{")]


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    made: list[Replica] = []
    yield made
    for r in made:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.communicate()


def _write_all(repo: ConfigRepo, version: str, only: list[str] | None = None) -> str:
    for env in only or ENVS:
        repo.write(f"environments/{env}/app.yaml", [configmap(f"settings-{env}", {"version": version})])
    return repo.commit(version)


def _entries(kube: KubeClient, namespace: str) -> dict[str, tuple[LedgerEntry, ...]]:
    out = {}
    for env in ENVS:
        cm = kube.get(CONFIGMAPS, namespace, ledger_name(env))
        out[env] = parse_ledger(cm).entries if cm is not None else ()
    return out


def _applied(kube: KubeClient, namespace: str, commit: str) -> dict[str, list[str]]:
    """Per environment: which replicas recorded applying ``commit``."""
    return {
        env: [e.applied_by for e in entries if e.commit == commit and e.result == "applied"]
        for env, entries in _entries(kube, namespace).items()
    }


def _push(replica: Replica, commit: str) -> Any:
    return post_push(replica.url, SECRET, commit, timeout=10).json()


def _config(repo: ConfigRepo, names: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "secret").write_text(SECRET + "\n")
    return {
        "repo": {"url": str(repo.root), "branch": "main", "poll_interval": "1h"},
        "agent": {"namespace": names["agent"]},
        "environments": [{"name": e, "path": f"environments/{e}", "namespace": names["dev"]} for e in ENVS],
        "server": {"webhook_secret_file": str(tmp_path / "secret")},
    }


def test_three_replicas_share_twelve_environments_kill_one_add_a_fourth(
    tmp_path: Path, names: dict[str, str], kubeconfig: str, replicas: list[Replica]
) -> None:
    kube = KubeClient.connect(kubeconfig=kubeconfig)
    repo = ConfigRepo(tmp_path / "config")
    _write_all(repo, "v1")
    config = _config(repo, names, tmp_path)
    replicas += [Replica(tmp_path, name, config, kubeconfig) for name in ("a", "b", "c")]
    a, b, c = replicas
    ids = {r.identity: r for r in replicas}
    wait_until(lambda: all(set(r.members()) == set(ids) and r.ready() for r in replicas), timeout=90)

    # a commit touching every environment, pushed to one replica: each owner applies its own, once
    v2 = _write_all(repo, "v2")
    members = tuple(ids)
    owners = assignments(ENVS, members)
    assert _push(a, v2)["environments"] == ENVS
    wait_until(lambda: all(_applied(kube, names["agent"], v2).values()), timeout=60)
    assert _applied(kube, names["agent"], v2) == {env: [owners[env]] for env in ENVS}
    status = a.status()
    assert {e["name"]: e["owner"] for e in status["environments"]} == owners
    assert len(set(owners.values())) == 3  # 12 environments over 3 replicas: everyone owns some
    time.sleep(6)  # past fetch_max_age_s (5s) since the v2 fetch: a take-over's pass fetches v3

    # SIGKILL c: its environments are applied by their new owners within a Lease plus an interval
    v3 = _write_all(repo, "v3")
    killed = c.identity
    c.proc.send_signal(signal.SIGKILL)
    c.proc.communicate()
    killed_at = time.monotonic()
    survivors = tuple(m for m in members if m != killed)
    after = assignments(ENVS, survivors)
    handed = moved(owners, after)
    assert handed == {env for env, who in owners.items() if who == killed}
    wait_until(lambda: all(_applied(kube, names["agent"], v3)[env] for env in handed), timeout=60)
    took = time.monotonic() - killed_at
    assert took < LEASE_S + RENEW_S + 5, took  # a pass is a few API calls: a few seconds of slack
    applied = _applied(kube, names["agent"], v3)
    assert {env: applied[env] for env in handed} == {env: [after[env]] for env in handed}
    others = {env: applied[env] for env in ENVS if env not in handed and applied[env]}
    assert not others, (others, handed, after)  # only the killed one's share moved

    # a fourth replica: only its share moves to it (and the others keep theirs)
    v4 = _write_all(repo, "v4")
    d = Replica(tmp_path, "d", config, kubeconfig)
    replicas.append(d)
    grown = (*survivors, d.identity)
    wait_until(lambda: all(set(r.members()) == set(grown) for r in (a, b, d)), timeout=60)
    share = owned_by(d.identity, ENVS, grown)
    assert moved(after, assignments(ENVS, grown)) == share
    wait_until(lambda: all(_applied(kube, names["agent"], v4)[env] for env in share), timeout=60)
    time.sleep(RENEW_S * 2)  # two more membership rounds: nothing else is passed
    assert _applied(kube, names["agent"], v4) == {env: [d.identity] if env in share else [] for env in ENVS}

    # SIGTERM: d leaves the members at once (its Lease deleted), no waiting for expiry
    code, _ = d.stop()
    assert code == 0
    assert kube.get(LEASES, names["agent"], member_name(d.identity)) is None
    wait_until(lambda: set(a.members()) == set(survivors), timeout=RENEW_S * 3)
    kube.close()


LEASES = ResourceInfo("coordination.k8s.io", "v1", "Lease", "leases", True)


def test_fresh_cluster_run_creates_its_namespace_and_is_ready_once_joined(
    tmp_path: Path, names: dict[str, str], kubeconfig: str, api_client: k8s.ApiClient, replicas: list[Replica]
) -> None:
    repo = ConfigRepo(tmp_path / "config")
    _write_all(repo, "v1", only=ENVS[:1])
    config = _config(repo, names, tmp_path)
    config["environments"] = config["environments"][:1]
    core = k8s.CoreV1Api(api_client)
    with pytest.raises(k8s.ApiException):
        core.read_namespace(names["agent"])  # a fresh cluster: no namespace for the agent yet
    replica = Replica(tmp_path, "fresh", config, kubeconfig)
    replicas.append(replica)
    wait_until(replica.ready, timeout=60)
    kube = KubeClient.connect(kubeconfig=kubeconfig)
    identity = replica.identity
    assert kube.get(LEASES, names["agent"], member_name(identity)) is not None
    assert kube.get(LEASES, names["agent"], "gitops-agent-leader") is not None
    wait_until(lambda: (replica.status() or {}).get("environments", [{}])[0].get("outcome") == "applied", timeout=60)
    assert replica.status()["members"] == [identity]
    kube.close()


def test_an_owner_stopped_mid_pass_past_its_leases_is_taken_over_and_writes_nothing_after_it_resumes(
    tmp_path: Path, names: dict[str, str], kubeconfig: str, api_client: k8s.ApiClient, replicas: list[Replica]
) -> None:
    gate = CrdGate(api_client, f"s{names['agent'].split('-')[1]}.example.com")
    try:
        repo = ConfigRepo(tmp_path / "config")
        repo.write("environments/dev/app.yaml", [gate.crd, configmap("settings", {"v": "old"})])
        repo.commit("old")
        config = _config(repo, names, tmp_path)
        dev = {"name": "dev", "path": "environments/dev", "scope": crd_scope(names)}
        config["environments"] = [{**config["environments"][0], **dev}]
        a = Replica(tmp_path, "a", config, kubeconfig, lock_s=LEASE_S)
        replicas.append(a)
        wait_until(gate.reached, timeout=60, message="a's pass at the CRD gate")
        a.proc.send_signal(signal.SIGSTOP)  # mid-pass, holding dev's lock and its membership
        gate.open()  # while it is stopped: its pass would go on at once when it resumes
        repo.write("environments/dev/app.yaml", [gate.crd, configmap("settings", {"v": "new"})])
        new = repo.commit("new")

        b = Replica(tmp_path, "b", config, kubeconfig, lock_s=LEASE_S)
        replicas.append(b)
        kube = KubeClient.connect(kubeconfig=kubeconfig)
        entries = lambda: parse_ledger(kube.get(CONFIGMAPS, names["agent"], ledger_name("dev"))).entries  # noqa: E731
        wait_until(lambda: any(e.commit == new and e.result == "applied" for e in entries()), timeout=60)
        assert entries()[-1].applied_by == b.identity
        core = k8s.CoreV1Api(api_client)
        inventory = core.read_namespaced_config_map("inventory-dev", names["agent"]).metadata.resource_version
        settings = core.read_namespaced_config_map("settings", names["dev"]).metadata.resource_version
        seen = len(entries())

        a.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: len(entries()) > seen, timeout=30, message="a's cut-short ledger entry")
        cut = entries()[-1]
        assert cut.result == "failed" and "the pass was cut short" in cut.message, cut
        wait_until(lambda: set(b.members()) == {a.identity, b.identity}, timeout=30)  # a is back as a member
        time.sleep(RENEW_S * 2)
        # a wrote nothing to the environment or its inventory after resuming
        assert core.read_namespaced_config_map("settings", names["dev"]).data == {"v": "new"}
        assert core.read_namespaced_config_map("settings", names["dev"]).metadata.resource_version == settings
        assert core.read_namespaced_config_map("inventory-dev", names["agent"]).metadata.resource_version == inventory
        kube.close()
    finally:
        for crd in gate.ext.list_custom_resource_definition().items:
            if crd.spec.group == gate.group:
                gate.ext.delete_custom_resource_definition(crd.metadata.name)
