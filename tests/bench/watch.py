"""``make bench``'s watch figures: drift latency (a `kubectl edit`-like patch → the pass reporting
it) p50/p95 over repeated edits, and the API requests of a scheduled pass with no new commit once
the watch cache is synced. The daemon's scheduler and watch cache, wired as ``gitops-agent run``
wires them, against the bench's cluster; written to ``.bench/watch.json``. Not a test."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from gitops_agent.adapters.kube import KubeClient
from gitops_agent.composition import build_agent
from gitops_agent.composition.daemon import watch_live_state
from gitops_agent.reconcile import PassResult
from gitops_agent.scheduler import Scheduler
from tests.support.builders import ConfigRepo, configmap, deployment, make_config


class _Passes:
    def __init__(self) -> None:
        self.done: list[tuple[float, PassResult]] = []
        self.cond = threading.Condition()

    def applying(self, environment: str, commit: str) -> None:
        return None

    def finished(self, result: PassResult) -> None:
        with self.cond:
            self.done.append((time.monotonic(), result))
            self.cond.notify_all()

    def first_after(self, after: float, env: str, drifted: bool, timeout: float = 30) -> float:
        def hit() -> float | None:
            ok = (t for t, r in self.done if t >= after and r.environment == env and bool(r.drift) == drifted)
            return next(ok, None)

        with self.cond:
            self.cond.wait_for(lambda: hit() is not None, timeout)
            found = hit()
        if found is None:
            raise RuntimeError(f"no pass of {env} within {timeout}s")
        return found


def bench_watch(kubeconfig: str, edits: int = 20) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:6]
    names = {"dev": f"bw-dev-{suffix}", "prod": f"bw-prod-{suffix}", "agent": f"bw-agent-{suffix}"}
    with tempfile.TemporaryDirectory() as tmp:
        repo = ConfigRepo(Path(tmp) / "config")
        repo.write("environments/dev/app.yaml", [configmap("settings", {"v": "1"}), deployment("api")])
        repo.write("environments/prod/app.yaml", [configmap("settings", {"v": "1"})])
        repo.commit("bench")
        passes = _Passes()
        agent = build_agent(
            make_config(repo, names, Path(tmp), interval="1h"), kubeconfig=kubeconfig, listeners=[passes]
        )
        scheduler = Scheduler(agent)
        watches = watch_live_state(agent, scheduler)
        scheduler.start()
        scheduler.set_leading(True)
        try:
            return _measure(agent.clusters.kube(agent.config.environments[0]), scheduler, watches, passes, names, edits)
        finally:
            scheduler.stop(timeout_s=10)
            watches.stop()
            agent.close()
            _delete_namespaces(kubeconfig, names)


def _measure(
    kube: KubeClient, scheduler: Any, watches: Any, passes: _Passes, names: dict[str, str], edits: int
) -> dict[str, Any]:
    passes.first_after(0, "dev", drifted=False, timeout=120)
    while not watches.synced("dev"):
        time.sleep(0.05)
    time.sleep(0.5)
    clusters = scheduler.agent.clusters
    before = dict(clusters.request_counts())
    started = time.monotonic()
    scheduler.trigger(["dev"], urgent=False)
    passes.first_after(started, "dev", drifted=False)
    after = clusters.request_counts()
    no_change = {verb: n - before.get(verb, 0) for verb, n in after.items() if n != before.get(verb, 0)}
    deployments = kube.discover().lookup("apps", "Deployment")
    assert deployments is not None
    latencies = []
    for i in range(edits):
        patch = {"spec": {"replicas": 2 + i % 2}}
        kube.merge_patch(deployments, names["dev"], "api", patch, field_manager="kubectl-edit")
        edited = time.monotonic()
        latencies.append(passes.first_after(edited, "dev", drifted=True) - edited)
        time.sleep(0.3)
    ordered = sorted(latencies)
    return {
        "scenario": "watch",
        "drift_latency_p50_s": round(statistics.median(ordered), 3),
        "drift_latency_p95_s": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 3),
        "edits": edits,
        "no_change_pass_requests": no_change,
        "no_change_pass_reads": sum(n for verb, n in no_change.items() if verb in ("get", "list", "discovery")),
        "watched_objects": watches.object_count(),
    }


def _delete_namespaces(kubeconfig: str, names: dict[str, str]) -> None:
    kube = KubeClient.connect(kubeconfig=kubeconfig)
    try:
        info = kube.discover().lookup("", "Namespace")
        if info is not None:
            for ns in names.values():
                kube.delete(info, "", ns)
    finally:
        kube.close()
