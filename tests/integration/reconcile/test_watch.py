"""Watch-driven live state on the real API server: an edit made as `kubectl edit` does is explained
(report) or repaired (enforce) within 2 s with no polling in between (interval 1 h), the agent's
own repair triggers no pass, and a pass with the cache synced sends no read."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

from gitops_agent.agent import Agent
from gitops_agent.cluster.watch import WatchCache, WatchOptions
from gitops_agent.composition.daemon import watch_live_state
from gitops_agent.reconcile import PassResult
from gitops_agent.scheduler import Scheduler
from tests.integration.conftest import AgentFactory
from tests.support.builders import ConfigRepo, configmap, deployment, make_config

pytestmark = pytest.mark.integration

#: the issue's bound: edit → drift reported (report) or repaired (enforce)
WITHIN_S = 2.0


class Passes:
    """A pass listener: every finished pass, with when it finished."""

    def __init__(self) -> None:
        self.done: list[tuple[float, PassResult]] = []
        self._cond = threading.Condition()

    def applying(self, environment: str, commit: str) -> None:
        return None

    def finished(self, result: PassResult) -> None:
        with self._cond:
            self.done.append((time.monotonic(), result))
            self._cond.notify_all()

    def wait(self, test: Callable[[PassResult], bool], *, after: float, timeout: float) -> tuple[float, PassResult]:
        def found() -> tuple[float, PassResult] | None:
            return next(((t, r) for t, r in self.done if t >= after and test(r)), None)

        with self._cond:
            self._cond.wait_for(lambda: found() is not None, timeout)
            hit = found()
        assert hit is not None, f"no such pass within {timeout}s: {[(r.environment, r.outcome) for _, r in self.done]}"
        return hit

    def of(self, env: str, *, after: float) -> list[PassResult]:
        with self._cond:
            return [r for t, r in self.done if t >= after and r.environment == env]


@pytest.fixture
def app(repo: ConfigRepo) -> ConfigRepo:
    repo.write("environments/dev/app.yaml", [configmap("settings", {"v": "1"}), deployment("api", replicas=1)])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"v": "1"})])
    repo.commit("first")
    return repo


def running(agent: Agent, options: WatchOptions | None = None) -> Iterator[tuple[Scheduler, WatchCache]]:
    """The daemon's scheduler and watches (as ``composition.daemon`` wires them), leading."""
    scheduler = Scheduler(agent)
    watches = watch_live_state(agent, scheduler)
    if options is not None:  # tests shorten the watch timeout and backoff
        watches.options = options
    scheduler.start()
    scheduler.set_leading(True)
    try:
        yield scheduler, watches
    finally:
        scheduler.stop(timeout_s=10)
        watches.stop()


def synced(watches: WatchCache, passes: Passes, env: str) -> None:
    """The first pass applied and its drift check started the watches; wait until they listed."""
    passes.wait(lambda r: r.environment == env and r.ok, after=0, timeout=60)
    deadline = time.monotonic() + 10
    while not watches.synced(env):
        assert time.monotonic() < deadline, "the watches never synced"
        time.sleep(0.05)


def kubectl_edit(apps: k8s.AppsV1Api, namespace: str, replicas: int) -> float:
    apps.patch_namespaced_deployment("api", namespace, {"spec": {"replicas": replicas}}, field_manager="kubectl-edit")
    return time.monotonic()


def drifted(env: str) -> Callable[[PassResult], bool]:
    return lambda r: r.environment == env and any(d.key.name == "api" for d in r.drift)


@pytest.mark.parametrize("policy", ["report", "enforce"])
def test_kubectl_edit_is_seen_within_2s_without_polling(
    policy: str, app: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory,
    api_client: k8s.ApiClient,
) -> None:  # fmt: skip
    passes = Passes()
    agent = agent_factory(make_config(app, names, tmp_path, interval="1h", policy=policy), listeners=[passes])
    apps = k8s.AppsV1Api(api_client)
    for _, watches in running(agent):
        synced(watches, passes, "dev")
        edited = kubectl_edit(apps, names["dev"], 3)
        if policy == "report":
            seen, result = passes.wait(drifted("dev"), after=edited, timeout=10)
            fields = [f.path for d in result.drift for f in d.fields]
            assert "/spec/replicas" in fields
            assert [f.manager for d in result.drift for f in d.fields] == ["kubectl-edit"]
            assert seen - edited < WITHIN_S, f"drift reported {seen - edited:.2f}s after the edit"
            assert apps.read_namespaced_deployment("api", names["dev"]).spec.replicas == 3  # report: left alone
        else:
            seen, result = passes.wait(
                lambda r: r.environment == "dev" and r.repaired is not None, after=edited, timeout=10
            )
            assert apps.read_namespaced_deployment("api", names["dev"]).spec.replicas == 1
            assert seen - edited < WITHIN_S, f"drift repaired {seen - edited:.2f}s after the edit"
            assert result.drift == (), "drift still seen after the repair"
        # the agent's own repair (and the edit's status churn) triggers no pass: no loop
        time.sleep(1.5)
        assert len(passes.of("dev", after=seen + 0.001)) == 0, "a pass triggered by the agent's own write"


def test_a_scheduled_pass_with_the_cache_synced_sends_no_read(
    app: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory
) -> None:
    passes = Passes()
    agent = agent_factory(make_config(app, names, tmp_path, interval="1h"), listeners=[passes])
    for scheduler, watches in running(agent):
        synced(watches, passes, "dev")
        time.sleep(0.5)  # the apply's status churn settles
        before = dict(agent.clusters.request_counts())
        started = time.monotonic()
        scheduler.trigger(["dev"], urgent=False)  # as the interval's tick asks
        _, result = passes.wait(lambda r: r.environment == "dev", after=started, timeout=10)
        after = agent.clusters.request_counts()
        delta = {verb: n - before.get(verb, 0) for verb, n in after.items() if n - before.get(verb, 0)}
        assert result.outcome == "up-to-date" and result.drift == ()
        reads = ("get", "list", "list-watch", "discovery")
        assert {verb: n for verb, n in delta.items() if verb in reads} == {}, delta


def test_watches_stop_when_the_replica_no_longer_reconciles_the_environment(
    app: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory,
    api_client: k8s.ApiClient,
) -> None:  # fmt: skip
    passes = Passes()
    agent = agent_factory(make_config(app, names, tmp_path, interval="1h"), listeners=[passes])
    for scheduler, watches in running(agent):
        synced(watches, passes, "dev")
        assert watches.object_count() >= 2  # dev's ConfigMap and Deployment (and prod's)
        assert watches.sizes()["dev"] >= 3  # and dev's ledger
        assert watches.watch_count() >= 3
        scheduler.set_leading(False)  # as a lost Lease (or, sharded, dev moved to another replica)
        deadline = time.monotonic() + 5
        while watches.synced("dev") or watches.object_count():
            assert time.monotonic() < deadline, "watches still running for environments not reconciled"
            time.sleep(0.1)
        edited = kubectl_edit(k8s.AppsV1Api(api_client), names["dev"], 2)
        time.sleep(1.0)
        assert passes.of("dev", after=edited) == []
        # their watches were cut, not left open until the server's timeout
        assert [t.name for t in threading.enumerate() if t.name.startswith("watch-dev-")] == []
