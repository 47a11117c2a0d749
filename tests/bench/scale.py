"""``make bench``'s scale figures (issue 17, part 3), with real ``gitops-agent run`` daemons against
the bench's cluster:

- ``converge``: 100 environments of 50 objects (each environment its own namespace), reconciled by 1
  replica and then by 3 (sharded by rendezvous hashing over their membership Leases): the time from
  one commit touching every environment, told by a push webhook to one replica, until every
  environment's ledger records it applied; and the first reconcile of all of them (1 replica,
  from nothing).
- ``rss``: the daemon's resident memory (steady: ``VmRSS`` once every environment is applied and
  its watch cache holds every managed object; peak: ``VmHWM``) at 5,000 managed objects (the 100
  environments above) and 20,000 (100 of 200 each).

The objects are ConfigMaps, Secrets, ServiceAccounts and Roles (no Deployments: 20,000 objects'
worth of pods is another benchmark). Written to ``.bench/scale.json``; ``python -m tests.bench
--scale-only`` runs just this. Not a test: nothing here asserts speed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from gitops_agent.adapters.kube import KubeClient, ResourceInfo
from gitops_agent.core.ledger import parse_ledger
from gitops_agent.core.prepare import STATE_OF_LABEL
from tests.bench.procfs import status_kib
from tests.controlplane.harness import free_port
from tests.support.webhooks import post_push

SECRET = "scale-bench-secret"
AGENT_NS = "bench-scale-agent"
CONFIGMAPS = ResourceInfo("", "v1", "ConfigMap", "configmaps", True)
NAMESPACES = ResourceInfo("", "v1", "Namespace", "namespaces", False)
#: per 10 objects
MIX = [("ConfigMap", 6), ("Secret", 2), ("ServiceAccount", 1), ("Role", 1)]


def env_names(count: int) -> list[str]:
    return [f"e{i:03d}" for i in range(count)]


def namespace_of(env: str) -> str:
    return f"bench-scale-{env}"


def objects(env: str, per_env: int, version: str) -> list[dict[str, Any]]:
    """``per_env`` objects; the first ConfigMap carries ``version`` (the commit touching them all)."""
    kinds: list[str] = []
    while len(kinds) < per_env:
        for kind, count in MIX:
            kinds.extend([kind] * count)
    out = []
    for i, kind in enumerate(kinds[:per_env]):
        meta = {"name": f"{kind.lower()}-{i}", "labels": {"app": f"app-{i % 5}", "tier": "bench"}}
        if kind == "ConfigMap":
            settings = {"env": env, "i": i, "version": version if i == 0 else "0", "padding": "x" * 400}
            data = {"settings.json": json.dumps(settings)}
            out.append({"apiVersion": "v1", "kind": kind, "metadata": meta, "data": data})
        elif kind == "Secret":
            out.append({"apiVersion": "v1", "kind": kind, "metadata": meta, "stringData": {"token": f"not-real-{i}"}})
        elif kind == "ServiceAccount":
            out.append({"apiVersion": "v1", "kind": kind, "metadata": meta})
        else:
            rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]
            out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta, "rules": rules})
    return out


class Repo:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=bench", "-c", "user.email=b@x", *args],
            cwd=self.root, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip

    def write(self, envs: list[str], per_env: int, version: str) -> str:
        for env in envs:
            d = self.root / "environments" / env
            d.mkdir(parents=True, exist_ok=True)
            (d / "app.yaml").write_text(yaml.safe_dump_all(objects(env, per_env, version)))
        self.git("add", "-A")
        self.git("commit", "-qm", version)
        return self.git("rev-parse", "HEAD").strip()


def config(repo: Path, envs: list[str], work: Path) -> dict[str, Any]:
    (work / "secret").write_text(SECRET + "\n")
    return {
        "repo": {"url": str(repo), "branch": "main", "poll_interval": "1h"},
        "agent": {"namespace": AGENT_NS},
        "environments": [{"name": e, "path": f"environments/{e}", "namespace": namespace_of(e)} for e in envs],
        "server": {"webhook_secret_file": str(work / "secret")},
    }


class Daemon:
    """One ``gitops-agent run`` process."""

    def __init__(self, work: Path, name: str, cfg: dict[str, Any], kubeconfig: str) -> None:
        cfg = {**cfg, "repo": {**cfg["repo"], "cache_dir": str(work / f"cache-{name}")}}
        path = work / f"agent-{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        self.port, self.status_port = free_port(), free_port()
        self.url, self.status_url = f"http://127.0.0.1:{self.port}", f"http://127.0.0.1:{self.status_port}"
        agent = str(Path(sys.executable).parent / "gitops-agent")
        listen = ["--listen", f"127.0.0.1:{self.port}", "--status-listen", f"127.0.0.1:{self.status_port}"]
        command = [agent, "run", "--config", str(path), "--kubeconfig", kubeconfig, "--log-format", "json", *listen]
        self.log = work / f"agent-{name}.log"  # a file: a pipe nobody reads would block the agent
        with self.log.open("w") as log:
            env = {**os.environ, "POD_NAME": f"scale-{name}"}
            self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env)

    def get(self, path: str) -> httpx.Response | None:
        try:
            return httpx.get(self.status_url + path, timeout=10)
        except httpx.TransportError:
            return None

    def status(self) -> dict[str, Any] | None:
        r = self.get("/status")
        return r.json() if r is not None and r.status_code == 200 else None

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def metric(self, name: str) -> float | None:
        """The sum of a metric's samples (None when the daemon does not expose it)."""
        r = self.get("/metrics")
        if r is None:
            return None
        found = [float(m.group(1)) for m in re.finditer(rf"^gitops_agent_{name}(?:{{[^}}]*}})? (\S+)$", r.text, re.M)]
        return sum(found) if found else None

    def memory_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MiB: resident now, and the peak."""
        now, peak = status_kib(self.proc.pid, "VmRSS"), status_kib(self.proc.pid, "VmHWM")
        return (now or 0) / 1024, (peak or 0) / 1024

    def push(self, commit: str) -> Any:
        return post_push(self.url, SECRET, commit).json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_for(what: str, check: Callable[[], bool], timeout: float, poll: float = 0.25) -> float:
    """Seconds until ``check`` held; RuntimeError after ``timeout``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"scale bench: {what} not within {timeout:.0f}s")
        time.sleep(poll)
    return time.monotonic() - started


def applied(kube: KubeClient, commit: str) -> set[str]:
    """Environments whose ledger records ``commit`` applied: one list of the agent's state."""
    found = set()
    for cm in kube.list(CONFIGMAPS, namespace=AGENT_NS, label_selector=STATE_OF_LABEL):
        if not cm["metadata"]["name"].startswith("ledger-"):
            continue
        ledger = parse_ledger(cm)
        if any(e.commit == commit and e.result == "applied" for e in ledger.entries):
            found.add(cm["metadata"]["labels"][STATE_OF_LABEL])
    return found


def until_applied(kube: KubeClient, commit: str, envs: list[str], daemons: list[Daemon], timeout: float) -> int:
    """Waits until every environment's ledger has ``commit`` applied; pushes it again each minute
    meanwhile (a failed pass retries at the next interval, an hour here). How many pushes that took."""
    pushes, deadline = 0, time.monotonic() + timeout
    while True:
        try:
            wait_for(f"{commit[:12]} applied everywhere", lambda: len(applied(kube, commit)) == len(envs), 60, 1.0)
            return pushes
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            pushes += 1
            daemons[0].push(commit)


def idle(daemons: list[Daemon]) -> bool:
    for d in daemons:
        s = d.status()
        if s is None or any(e["running"] or e["pending"] for e in s["environments"]):
            return False
    return True


def requests(daemons: list[Daemon]) -> int:
    return int(sum(d.metric("kubernetes_requests_total") or 0 for d in daemons))


def start(work: Path, names: list[str], cfg: dict[str, Any], kubeconfig: str) -> list[Daemon]:
    daemons = [Daemon(work, n, cfg, kubeconfig) for n in names]
    wait_for("the replicas joined and ready", lambda: all(d.ready() for d in daemons), timeout=120)
    wait_for(
        "every replica sees every member",
        lambda: all(len((d.status() or {}).get("members", [])) == len(daemons) for d in daemons),
        timeout=60,
    )
    return daemons


def warm(daemons: list[Daemon], objects_total: int, timeout: float = 300) -> float:
    """Seconds until the replicas' watch caches hold every managed object (0 when not exposed)."""

    def held() -> bool:
        counts = [d.metric("watch_cache_objects") for d in daemons]
        return None in counts or sum(c or 0 for c in counts) >= objects_total

    took = wait_for("the watch caches warm", held, timeout=timeout, poll=1.0)
    if any(d.metric("watch_cache_objects") is None for d in daemons):
        print("scale: the daemon exposes no watch_cache_objects: waiting 20 s instead", flush=True)
        time.sleep(20)
    return took


def converge(
    kube: KubeClient, repo: Repo, envs: list[str], per_env: int, daemons: list[Daemon], version: str
) -> dict[str, Any]:
    """One commit touching every environment, pushed to the first replica; until every ledger has it."""
    wait_for("the replicas idle", lambda: idle(daemons), timeout=600, poll=1.0)
    before = requests(daemons)
    commit = repo.write(envs, per_env, version)
    started = time.monotonic()
    answer = daemons[0].push(commit)
    assert len(answer.get("environments", [])) == len(envs), answer
    wait_for(f"{version} applied everywhere", lambda: len(applied(kube, commit)) == len(envs), timeout=900, poll=0.5)
    seconds = time.monotonic() - started
    return {"seconds": round(seconds, 2), "api_requests": requests(daemons) - before}


def memory(daemons: list[Daemon]) -> dict[str, float]:
    sizes = [d.memory_mb() for d in daemons]
    return {"rss_steady_mb": round(max(s[0] for s in sizes), 1), "rss_peak_mb": round(max(s[1] for s in sizes), 1)}


def bench_scale(
    kubeconfig: str, *, envs_n: int = 100, per_env: int = 50, big_per_env: int = 200
) -> list[dict[str, Any]]:
    envs = env_names(envs_n)
    kube = KubeClient.connect(kubeconfig=kubeconfig)
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        work = Path(tmp)
        repo = Repo(work / "config")
        v0 = repo.write(envs, per_env, "v0")
        cfg = config(repo.root, envs, work)
        daemons: list[Daemon] = []
        try:
            # 1 replica: the first reconcile of every environment, then one commit touching all
            started = time.monotonic()
            daemons = start(work, ["one"], cfg, kubeconfig)
            again = until_applied(kube, v0, envs, daemons, timeout=1800)
            first = time.monotonic() - started
            total = envs_n * per_env
            warm(daemons, total)
            rss = memory(daemons)
            records.append({"scenario": "rss", "objects": total, "environments": envs_n, **rss})
            print(f"scale: rss at {total} objects: {rss}", flush=True)
            one = converge(kube, repo, envs, per_env, daemons, "v1")
            records.append({"scenario": "first-reconcile", "replicas": 1, "environments": envs_n,
                            "objects": total, "seconds": round(first, 2), "pushed_again": again})  # fmt: skip
            records.append({"scenario": "converge", "replicas": 1, "environments": envs_n, "objects": total, **one})
            print(f"scale: first reconcile {first:.1f}s; 1 replica converges in {one}", flush=True)
            stop_all(daemons)

            # 3 replicas on the same state: each owns a third
            daemons = start(work, ["a", "b", "c"], cfg, kubeconfig)
            three = converge(kube, repo, envs, per_env, daemons, "v2")
            owners = {e["owner"] for e in (daemons[0].status() or {}).get("environments", [])}
            records.append({"scenario": "converge", "replicas": 3, "environments": envs_n, "objects": total,
                            "owners": len(owners), **three, **memory(daemons)})  # fmt: skip
            print(f"scale: 3 replicas converge in {three}", flush=True)
            stop_all(daemons)

            # 20,000 objects: one replica's memory once its watch cache holds them all
            big = repo.write(envs, big_per_env, "v3")
            daemons = start(work, ["big"], cfg, kubeconfig)
            started = time.monotonic()
            again = until_applied(kube, big, envs, daemons, timeout=3600)
            records.append({"scenario": "grow", "replicas": 1, "environments": envs_n,  # 150 new objects each
                            "objects": envs_n * big_per_env, "seconds": round(time.monotonic() - started, 2),
                            "pushed_again": again})  # fmt: skip
            total = envs_n * big_per_env
            warm(daemons, total)
            rss = memory(daemons)
            records.append({"scenario": "rss", "objects": total, "environments": envs_n, **rss})
            print(f"scale: rss at {total} objects: {rss}", flush=True)
        finally:
            stop_all(daemons)
            for env in envs:
                kube.delete(NAMESPACES, "", namespace_of(env))
            kube.delete(NAMESPACES, "", AGENT_NS)
            kube.close()
    return records


def stop_all(daemons: list[Daemon]) -> None:
    for d in daemons:
        d.stop()


def print_scale(records: list[dict[str, Any]]) -> None:
    for r in records:
        print("  ".join(f"{k}={v}" for k, v in r.items()))
