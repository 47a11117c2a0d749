"""The rollout follower's loop, with objects captured from the control plane served from memory
and a fake clock: no cluster and no waiting needed for the loop itself."""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import Any

import yaml

from gitops_agent.model import HealthStatus, KubeObject, ObjectKey
from gitops_agent.rollout import LiveView, default_timeout, follow, health_of
from tests.support import paths

LIVE = paths.FIXTURES / "live"


def live(name: str) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((LIVE / f"{name}.yaml").read_text())
    return obj


class Frames:
    """Each poll reads the next frame (the last one repeats); time advances 1 s per sleep."""

    def __init__(self, *frames: dict[ObjectKey, KubeObject]) -> None:
        self.frames, self.polls, self.now = list(frames), 0, 0.0

    def get_many(self, keys: Sequence[ObjectKey]) -> dict[ObjectKey, KubeObject]:
        frame = self.frames[min(self.polls, len(self.frames) - 1)]
        return {k: frame[k] for k in keys if k in frame}

    def list_pods(self, namespace: str, selector: dict[str, str]) -> list[KubeObject]:
        pods = [live("pod-crashloop"), live("pod-ready")]
        return [p for p in pods if selector.items() <= p["metadata"]["labels"].items()]

    def sleep(self, seconds: float) -> None:
        self.polls += 1
        self.now += seconds


WEB = ObjectKey.of(live("deployment-available"))
CRASH = ObjectKey.of(live("deployment-deadline-exceeded"))


def run(frames: Frames, keys: list[ObjectKey], timeout: float = 10) -> Any:
    return follow(keys, frames, timeout_s=timeout, poll_s=1.0, clock=lambda: frames.now, sleep=frames.sleep)


def test_all_current_at_the_first_look() -> None:
    objects = [live(f) for f in ("deployment-available", "statefulset-ready", "job-complete", "service-clusterip")]
    frames = Frames({ObjectKey.of(o): o for o in objects})
    result = run(frames, [ObjectKey.of(o) for o in objects])
    assert (result.status, result.message, frames.polls) == (HealthStatus.CURRENT, "healthy (4 objects)", 0)


def test_a_stale_status_is_not_trusted_until_the_controller_observes_the_generation() -> None:
    """generation-behind still says "1/1 available" from before the change: the follower waits."""
    key = ObjectKey.of(live("deployment-generation-behind"))
    behind = live("deployment-generation-behind")
    observed = copy.deepcopy(behind)  # what the controller writes once it has seen generation 2
    observed["status"].update(observedGeneration=2, replicas=2, updatedReplicas=2, readyReplicas=2, availableReplicas=2)
    frames = Frames({key: behind}, {key: behind}, {key: observed})
    result = run(frames, [key])
    assert (result.status, frames.polls) == (HealthStatus.CURRENT, 2)


def test_a_generation_never_observed_times_out_saying_so() -> None:
    key = ObjectKey.of(live("deployment-generation-behind"))
    result = run(Frames({key: live("deployment-generation-behind")}), [key], timeout=3)
    assert result.status is HealthStatus.FAILED
    assert result.message.startswith("timed out after 3s: Deployment/live/unobserved: unobserved: 1/2 ready")
    assert "has not observed generation 2 yet" in result.message


def test_in_progress_then_current() -> None:
    frames = Frames({WEB: live("deployment-rolling")}, {WEB: live("deployment-available")})
    result = run(frames, [WEB])
    assert (result.status, frames.polls) == (HealthStatus.CURRENT, 1)
    assert result.message == "healthy (1 object)"


def test_a_failure_ends_the_wait_early_and_names_the_pod_reason() -> None:
    frames = Frames({WEB: live("deployment-rolling"), CRASH: live("deployment-deadline-exceeded")})
    result = run(frames, [WEB, CRASH])
    assert result.status is HealthStatus.FAILED and frames.polls == 0
    assert "crash: 0/2 ready, CrashLoopBackOff in container app" in result.message


def test_a_timeout_names_what_is_still_in_progress() -> None:
    frames = Frames({WEB: live("deployment-available"), CRASH: live("deployment-progressing")})
    result = run(frames, [WEB, CRASH], timeout=5)
    assert result.status is HealthStatus.FAILED
    assert result.message.startswith("timed out after 5s: Deployment/capture/crash: crash: 0/2 ready")
    assert "Deployment/capture/web" not in result.message


def test_a_missing_object_is_unknown_until_the_timeout() -> None:
    result = run(Frames({}), [WEB], timeout=2)
    assert result.status is HealthStatus.FAILED and "not found" in result.message


def test_default_timeout_follows_the_longest_progress_deadline() -> None:
    slow = {"kind": "Deployment", "spec": {"progressDeadlineSeconds": 900}}
    assert default_timeout([{"kind": "Deployment", "spec": {}}, slow, {"kind": "ConfigMap"}]) == 930
    assert default_timeout([]) == 630


def test_a_stop_request_ends_the_wait() -> None:
    stop = threading.Event()
    stop.set()
    frames = Frames({WEB: live("deployment-rolling")})
    result = follow([WEB], frames, timeout_s=60, poll_s=1, clock=lambda: frames.now, sleep=frames.sleep, stop=stop)
    assert (result.status, frames.polls) == (HealthStatus.IN_PROGRESS, 0)
    assert result.message == "stopped following: the agent is shutting down"


def test_a_live_view_answers_from_objects_already_read_and_reads_pods_for_a_failure() -> None:
    frames = Frames({})  # serves no object: the view must not ask it for any
    view = LiveView({CRASH: live("deployment-deadline-exceeded"), WEB: live("deployment-available")}, frames)
    crash, web = health_of([CRASH, WEB], view)
    assert crash.message.startswith("crash: 0/2 ready, CrashLoopBackOff in container app, exit code 1 (Error) (")
    assert web.message == "2/2 replicas available"


class Counting(Frames):
    def __init__(self, *frames: dict[ObjectKey, KubeObject]) -> None:
        super().__init__(*frames)
        self.asked: list[list[ObjectKey]] = []

    def get_many(self, keys: Sequence[ObjectKey]) -> dict[ObjectKey, KubeObject]:
        self.asked.append(list(keys))
        return super().get_many(keys)


def test_an_object_nothing_rolls_out_is_read_until_current_and_a_workload_every_look() -> None:
    settings = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "capture"}}
    cm = ObjectKey.of(settings)
    frames = Counting(
        {WEB: live("deployment-rolling"), cm: settings},
        {WEB: live("deployment-rolling"), cm: settings},
        {WEB: live("deployment-available"), cm: settings},
    )
    result = run(frames, [cm, WEB])
    assert result.status is HealthStatus.CURRENT and [o.key for o in result.objects] == [cm, WEB]
    assert frames.asked == [[cm, WEB], [WEB], [WEB]]
