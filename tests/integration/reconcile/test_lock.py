"""One writer per environment, against the real API server: a pass that writes holds the Lease
``gitops-agent-env-<env>``; another process's sync meanwhile waits, then is refused naming the holder,
having written nothing; a pass whose lock is taken over between two write batches writes nothing more
and its ledger entry says it was cut short; the lock is released after a pass; passes that write
nothing take no lock; and a daemon stopped (SIGSTOP) past its lock's duration writes nothing after
it resumes, while the process that took over applied the newer commit.

Passes are held between their first write batch and the next by a CRD gate: the snapshot's CRD has
the kind of a CRD already in the cluster under another plural, so it is not Established
(NamesAccepted=False) and the pass waits for it, until the test deletes the other CRD.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

import pytest
from kubernetes import client as k8s

from gitops_agent.adapters.kube import KubeClient
from gitops_agent.agent import Agent
from gitops_agent.cluster import ClusterApi
from gitops_agent.cluster.lock import EnvironmentLock, Locks, LockSettings
from gitops_agent.cluster.state import StateStore
from gitops_agent.core.env_lock import LockTimes
from gitops_agent.core.ledger import Ledger
from gitops_agent.reconcile import PassRequest, PassResult
from tests.controlplane.harness import free_port
from tests.integration.conftest import AgentFactory
from tests.support.builders import ConfigRepo, config_yaml, configmap, crd_scope, make_config, widget_crd
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

T = TypeVar("T")


class CrdGate:
    """``crd`` (for the snapshot) waits to be Established until ``open`` deletes its rival."""

    def __init__(self, api_client: k8s.ApiClient, group: str) -> None:
        self.ext = k8s.ApiextensionsV1Api(api_client)
        self.group = group
        self.ext.create_custom_resource_definition(widget_crd(group))
        wait_until(lambda: self.established(f"widgets.{group}"), timeout=30, message="the rival CRD Established")
        self.crd = copy.deepcopy(widget_crd(group))  # the same kind under another plural
        self.crd["metadata"]["name"] = f"gadgets.{group}"
        self.crd["spec"]["names"].update({"plural": "gadgets", "singular": "gadget"})

    def established(self, name: str) -> bool:
        try:
            crd = self.ext.read_custom_resource_definition(name)
        except k8s.ApiException:
            return False
        return any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))

    def reached(self) -> bool:
        """The pass wrote its first batch (the CRD) and waits for it."""
        try:
            self.ext.read_custom_resource_definition(f"gadgets.{self.group}")
        except k8s.ApiException:
            return False
        return True

    def open(self) -> None:
        self.ext.delete_custom_resource_definition(f"widgets.{self.group}")


@pytest.fixture
def gate(names: dict[str, str], api_client: k8s.ApiClient) -> Iterator[CrdGate]:
    gate = CrdGate(api_client, f"l{names['agent'].split('-')[1]}.example.com")
    yield gate
    for crd in gate.ext.list_custom_resource_definition().items:
        if crd.spec.group == gate.group:
            gate.ext.delete_custom_resource_definition(crd.metadata.name)


class Background(Generic[T]):
    """A call in a thread of its own (a pass held at the gate), its result fetched later."""

    def __init__(self, call: Callable[[], T]) -> None:
        self._result: list[T] = []
        self._thread = threading.Thread(target=lambda: self._result.append(call()), daemon=True)
        self._thread.start()

    def result(self, timeout: float = 90) -> T:
        self._thread.join(timeout)
        assert self._result, "the call did not return in time"
        return self._result[0]


def lease(api_client: k8s.ApiClient, names: dict[str, str]) -> k8s.V1Lease | None:
    try:
        return k8s.CoordinationV1Api(api_client).read_namespaced_lease("gitops-agent-env-dev", names["agent"])
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def holder(api_client: k8s.ApiClient, names: dict[str, str]) -> str:
    live = lease(api_client, names)
    return (live.spec.holder_identity or "") if live is not None else "<none>"


def ledger(agent: Agent) -> Ledger:
    api = ClusterApi(agent.clusters.agent_kube(agent.config.environment("dev")))
    return StateStore(api, namespace=agent.config.agent.namespace, field_manager="gitops-agent").read_ledger("dev")


def dev_objects(api_client: k8s.ApiClient, names: dict[str, str], group: str) -> dict[str, str]:
    """What the dev snapshot wrote, by name: its ConfigMaps' resourceVersions, and its CRD's generation
    and last apply by the agent (its resourceVersion moves with status the API server writes)."""
    core, ext = k8s.CoreV1Api(api_client), k8s.ApiextensionsV1Api(api_client)
    found = {
        f"ConfigMap/{cm.metadata.name}": cm.metadata.resource_version
        for cm in core.list_namespaced_config_map(names["dev"]).items
        if cm.metadata.name != "kube-root-ca.crt"
    }
    for crd in ext.list_custom_resource_definition().items:
        if crd.spec.group == group and crd.metadata.name.startswith("gadgets."):
            ours = [m.time for m in crd.metadata.managed_fields or [] if m.manager == "gitops-agent"]
            found[f"CRD/{crd.metadata.name}"] = f"generation {crd.metadata.generation}, applied {ours}"
    return found


class Heard:
    def __init__(self, heard: list[PassResult]) -> None:
        self.heard = heard

    def applying(self, environment: str, commit: str) -> None: ...

    def finished(self, result: PassResult) -> None:
        self.heard.append(result)


def test_a_sync_while_another_pass_writes_is_refused_naming_the_holder_and_the_lock_is_released_after(
    repo: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    api_client: k8s.ApiClient,
    gate: CrdGate,
) -> None:
    repo.write("environments/dev/app.yaml", [gate.crd, configmap("settings", {"v": "1"})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {})])
    first = repo.commit("first")
    config = make_config(repo, names, tmp_path, scope=crd_scope(names))
    daemon = agent_factory(config, identity="daemon-0-aaaaaa")
    heard: list[PassResult] = []
    laptop = agent_factory(
        config, identity="laptop-alice-bbbbbb", lock=LockSettings(wait_s=1.5), listeners=[Heard(heard)]
    )
    dev = config.environment("dev")

    held = Background(lambda: daemon.sync_all("dev")[0])
    wait_until(gate.reached, timeout=30, message="the daemon's pass at the CRD gate")
    assert holder(api_client, names) == "daemon-0-aaaaaa"
    before = dev_objects(api_client, names, gate.group)

    started = time.monotonic()
    refused = laptop.sync_all("dev")[0]
    assert time.monotonic() - started >= 1.5, "it waited for the lock first"
    assert (refused.outcome, refused.reason) == ("failed", "Locked"), refused
    assert refused.error.startswith("environment 'dev' is locked by daemon-0-aaaaaa since 20"), refused.error
    assert f"applying {first[:12]}" in refused.error and "wrote nothing" in refused.error
    assert list(laptop.clusters.kube(dev).writes) == [], "the refused sync wrote nothing at all"
    assert dev_objects(api_client, names, gate.group) == before
    assert ledger(laptop).entries == (), "nor did it record anything"
    assert heard == [], "a locked-out pass says nothing about the commit (no status, no chat): the holder reports it"

    gate.open()
    done = held.result()
    assert (done.outcome, done.commit) == ("applied", first), done.error
    assert holder(api_client, names) == "", "released at the end of the pass"

    repo.write("environments/dev/app.yaml", [gate.crd, configmap("settings", {"v": "2"})])
    second = repo.commit("second")
    at_once = agent_factory(config, identity="laptop-carol-cccccc", lock=LockSettings(wait_s=0))
    result = at_once.sync_all("dev")[0]
    assert (result.outcome, result.commit) == ("applied", second), result.error
    assert k8s.CoreV1Api(api_client).read_namespaced_config_map("settings", names["dev"]).data == {"v": "2"}


def test_a_pass_whose_lock_is_taken_over_mid_apply_writes_nothing_more_and_says_it_was_cut_short(
    repo: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    api_client: k8s.ApiClient,
    kubeconfig: str,
    gate: CrdGate,
) -> None:
    repo.write("environments/dev/app.yaml", [gate.crd, configmap("settings", {"v": "1"})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {})])
    first = repo.commit("first")
    config = make_config(repo, names, tmp_path, scope=crd_scope(names))
    # a 2s lock whose renewals never happen in the background (as if they could not reach the
    # server): it expires while the pass waits at the gate
    unrenewed = LockSettings(times=LockTimes(duration_s=2, renew_interval_s=3600, renew_deadline_s=1.5))
    daemon = agent_factory(config, identity="daemon-0-aaaaaa", lock=unrenewed)
    dev = config.environment("dev")

    held = Background(lambda: daemon.sync_all("dev")[0])
    wait_until(gate.reached, timeout=30, message="the daemon's pass at the CRD gate")
    other = KubeClient.connect(kubeconfig=kubeconfig)
    try:
        settings = LockSettings(wait_s=20, poll_s=0.1)
        taken = Locks("other-1-dddddd", namespace=names["agent"], field_manager="gitops-agent", settings=settings)
        lock = taken.of(other, "dev")
        lock.acquire("f" * 40)  # once the daemon's lock expired: a take-over by the rules
        assert holder(api_client, names) == "other-1-dddddd"
        writes = len(daemon.clusters.kube(dev).writes)
        before = dev_objects(api_client, names, gate.group)

        gate.open()
        cut = held.result()
        assert (cut.outcome, cut.commit, cut.reason) == ("failed", first, "LockLost"), cut
        assert cut.error == (
            "the lock of environment 'dev' was taken over by other-1-dddddd (since "
            f"{lease(api_client, names).spec.acquire_time:%Y-%m-%dT%H:%M:%SZ}); "  # type: ignore[union-attr]
            "the pass was cut short: nothing more was written"
        )
        # a renewal is sent conditional on the Lease as the pass last wrote it: the server refuses
        # it (written since), and the pass reads whose it is
        after = [w for w in list(daemon.clusters.kube(dev).writes)[writes:] if w[1].kind != "Lease"]
        assert after and all(
            key.kind == "ConfigMap" and key.namespace == names["agent"] and key.name.startswith("ledger-dev")
            for _, key in after
        ), f"only its ledger entry was written after the take-over: {after}"
        assert dev_objects(api_client, names, gate.group) == before
        assert "ConfigMap/settings" not in before, "the batch after the gate never ran"
        assert holder(api_client, names) == "other-1-dddddd", "nor was the lock written (not even released)"
        last = ledger(daemon).entries[-1]
        assert (last.commit, last.result) == (first, "failed") and "the pass was cut short" in last.message
        lock.release()
    finally:
        other.close()

    again = daemon.sync_all("dev")[0]  # the next pass (the daemon's next interval)
    assert (again.outcome, again.commit) == ("applied", first), again.error
    assert "ConfigMap/settings" in dev_objects(api_client, names, gate.group)


class HoldApplying:
    """A listener holding a pass when it starts applying (the lock held), until ``go`` is set."""

    def __init__(self) -> None:
        self.go = threading.Event()

    def applying(self, environment: str, commit: str) -> None:
        assert self.go.wait(60)

    def finished(self, result: PassResult) -> None:
        pass


def test_a_pass_that_waited_for_a_rollback_decides_again_and_keeps_the_hold(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> None:
    repo.write("environments/dev/app.yaml", [configmap("settings", {"v": "good"})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {})])
    good = repo.commit("good")
    config = make_config(repo, names, tmp_path)
    dev = config.environment("dev")
    daemon = agent_factory(config, identity="daemon-0-aaaaaa")
    assert daemon.sync_all("dev")[0].outcome == "applied"
    repo.write("environments/dev/app.yaml", [configmap("settings", {"v": "bad"})])
    bad = repo.commit("bad")

    hold = HoldApplying()
    laptop = agent_factory(config, identity="laptop-alice-bbbbbb", listeners=[hold])
    rollback = Background(lambda: laptop.reconcile(dev, PassRequest(explicit=True, commit=good, rolled_back_from=bad)))
    wait_until(lambda: holder(api_client, names) == "laptop-alice-bbbbbb", timeout=30, message="the rollback's lock")

    asked = threading.Event()  # the daemon's pass decided to apply `bad` and asks for the lock
    of = daemon.reconciler.locks.of

    def observed(kube: KubeClient, environment: str) -> EnvironmentLock:
        lock = of(kube, environment)
        acquire = lock.acquire

        def asking(commit: str = "") -> None:
            asked.set()
            acquire(commit)

        lock.acquire = asking  # type: ignore[method-assign]
        return lock

    daemon.reconciler.locks.of = observed  # type: ignore[method-assign]
    waiting = Background(lambda: daemon.sync_all("dev")[0])
    assert asked.wait(30)
    hold.go.set()

    rolled = rollback.result()
    assert (rolled.outcome, rolled.commit) == ("reached", good), rolled.error  # `bad` never ran: nothing to undo
    after = waiting.result()
    assert (after.outcome, after.commit) == ("up-to-date", good), "decided again under the lock: the hold stands"
    assert k8s.CoreV1Api(api_client).read_namespaced_config_map("settings", names["dev"]).data == {"v": "good"}
    last = ledger(daemon).entries[-1]
    assert (last.commit, last.rolled_back_from) == (good, bad)


def test_passes_that_write_nothing_take_no_lock(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: AgentFactory, api_client: k8s.ApiClient
) -> None:
    repo.write("environments/dev/app.yaml", [configmap("settings", {"v": "1"})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {})])
    repo.commit()
    agent = agent_factory(make_config(repo, names, tmp_path))
    assert agent.sync_all("dev", dry_run=True)[0].outcome == "planned"
    assert lease(api_client, names) is None, "a dry run takes no lock"
    assert agent.sync_all("dev")[0].outcome == "applied"
    version = lease(api_client, names).metadata.resource_version  # type: ignore[union-attr]
    assert agent.sync_all("dev")[0].outcome == "up-to-date"
    assert lease(api_client, names).metadata.resource_version == version, "a pass with no new commit: no lock"


# --- the daemon, stopped past its lock's duration ----------------------------------------------


def test_a_daemon_stopped_past_its_lock_writes_nothing_after_it_resumes(
    repo: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    kubeconfig: str,
    api_client: k8s.ApiClient,
    agent_factory: AgentFactory,
    gate: CrdGate,
) -> None:
    repo.write("environments/dev/app.yaml", [gate.crd, configmap("settings", {"v": "old"})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {})])
    old = repo.commit("old")
    path = tmp_path / "agent.yaml"
    text = config_yaml(repo, names, tmp_path, scope=crd_scope(names))
    path.write_text(text.replace(str(tmp_path / "cache"), str(tmp_path / "daemon-cache")))
    command = [sys.executable, "-m", "gitops_agent", "run", "--config", str(path), "--kubeconfig", kubeconfig,
               "--listen", f"127.0.0.1:{free_port()}", "--no-leader-election", "--log-format", "json"]  # fmt: skip
    env = {**os.environ, "POD_NAME": "daemon", "GITOPS_AGENT_LOCK_DURATION": "3"}
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    core = k8s.CoreV1Api(api_client)
    try:
        wait_until(gate.reached, timeout=60, message="the daemon's pass at the CRD gate")
        assert holder(api_client, names).startswith("daemon-")
        proc.send_signal(signal.SIGSTOP)
        gate.open()  # while it is stopped: its pass would go on at once when it resumes
        wait_until(lambda: gate.established(gate.crd["metadata"]["name"]), timeout=30)

        repo.write("environments/dev/app.yaml", [gate.crd, configmap("settings", {"v": "new"})])
        new = repo.commit("new")
        laptop = agent_factory(make_config(repo, names, tmp_path, scope=crd_scope(names)), lock=LockSettings(wait_s=20))
        synced = laptop.sync_all("dev")[0]  # waits for the stopped daemon's lock to expire (3s), takes it over
        assert (synced.outcome, synced.commit) == ("applied", new), synced.error
        settled = dev_objects(api_client, names, gate.group)
        inventory = core.read_namespaced_config_map("inventory-dev", names["agent"]).metadata.resource_version
        entries = ledger(laptop).entries
        lock_version = lease(api_client, names).metadata.resource_version  # type: ignore[union-attr]

        proc.send_signal(signal.SIGCONT)

        def noticed() -> bool:  # the resumed daemon's pass recorded that it was cut short
            return len(ledger(laptop).entries) > len(entries)

        wait_until(noticed, timeout=30, message="the daemon's cut-short ledger entry")
        cut = ledger(laptop).entries[-1]
        assert (cut.commit, cut.result) == (old, "failed") and "the pass was cut short" in cut.message, cut
        assert "released by someone else" in cut.message or "taken over" in cut.message, cut.message
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]

    # it wrote nothing to the environment, its inventory or the lock after resuming: all as `new` left them
    assert dev_objects(api_client, names, gate.group) == settled
    assert core.read_namespaced_config_map("settings", names["dev"]).data == {"v": "new"}
    assert core.read_namespaced_config_map("inventory-dev", names["agent"]).metadata.resource_version == inventory
    assert lease(api_client, names).metadata.resource_version == lock_version  # type: ignore[union-attr]
    final = ledger(laptop)
    assert final.entries[: len(entries)] == entries and len(final.entries) == len(entries) + 1
    assert final.last_success() is not None and final.last_success().commit == new  # type: ignore[union-attr]
    assert final.is_current(new)
