"""Following a rollout: after an apply, watch the changed objects until they are all Current, one
is Failed, or time runs out. "Applied" is not "working".

The loop is the imperative shell around ``core.health.assess``; reading the cluster goes through
``LiveReader`` (the engine implements it), the clock and sleep are injected so the loop is tested
without waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gitops_agent.core.health import aggregate, assess, explain_failure, explains
from gitops_agent.model import Health, HealthStatus, KubeObject, ObjectHealth, ObjectKey

FAILED = HealthStatus.FAILED
#: the config's health rules, by (group, kind) (``core.health_custom.by_kind``)
CustomRules = Mapping[tuple[str, str], Callable[[KubeObject], Health]]

DEFAULT_PROGRESS_DEADLINE_S = 600.0
#: after the longest progress deadline, the controller needs a moment to set the condition
DEADLINE_MARGIN_S = 30.0


class LiveReader(Protocol):
    def get_many(self, keys: Sequence[ObjectKey]) -> Mapping[ObjectKey, KubeObject]:
        """The objects that exist, by key (a list per kind and namespace rather than a GET each)."""
        ...

    def list_pods(self, namespace: str, selector: dict[str, str]) -> list[KubeObject]: ...


class LiveView:
    """A LiveReader over objects already read (one list per kind), so health for ``status`` costs
    no request per object; pods are still read on demand, for a workload to explain only."""

    def __init__(self, live: Mapping[ObjectKey, KubeObject], reader: LiveReader) -> None:
        self._live, self._reader = live, reader

    def get_many(self, keys: Sequence[ObjectKey]) -> Mapping[ObjectKey, KubeObject]:
        return {k: self._live[k] for k in keys if k in self._live}

    def list_pods(self, namespace: str, selector: dict[str, str]) -> list[KubeObject]:
        return self._reader.list_pods(namespace, selector)


@dataclass(frozen=True)
class RolloutProgress:
    """One look at a rollout still being followed: each object's health, and how long it has been."""

    objects: tuple[ObjectHealth, ...]
    elapsed_s: float
    timeout_s: float


@dataclass(frozen=True)
class RolloutResult:
    status: HealthStatus
    objects: tuple[ObjectHealth, ...]
    message: str
    elapsed_s: float

    @property
    def health(self) -> Health:
        return Health(self.status, self.message)


def default_timeout(manifests: Iterable[KubeObject]) -> float:
    """The longest ``progressDeadlineSeconds`` among the Deployments (600 s when unset), plus a
    margin: by then Kubernetes itself has said whether the rollout failed."""
    deadlines = [
        float((m.get("spec") or {}).get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE_S))
        for m in manifests
        if m.get("kind") == "Deployment"
    ]
    return max(deadlines, default=DEFAULT_PROGRESS_DEADLINE_S) + DEADLINE_MARGIN_S


def health_of(
    keys: Sequence[ObjectKey],
    reader: LiveReader,
    *,
    explain: frozenset[HealthStatus] = frozenset({FAILED}),
    rules: CustomRules | None = None,
) -> tuple[ObjectHealth, ...]:
    """Each object's health now. A workload (Deployment, StatefulSet, DaemonSet, Job, Pod) whose
    status is in ``explain`` gets its pods' reason ("api: 0/3 ready, CrashLoopBackOff in container
    app, exit code 1 (Error)"): pods are read for those only. ``rules``: the config's health rules."""
    live = reader.get_many(keys)
    out = []
    for key in keys:
        obj = live.get(key)
        if obj is None:
            out.append(ObjectHealth(key, HealthStatus.UNKNOWN, "not found"))
            continue
        health = assess(obj, rules)
        message = health.message
        if explains(key.group, key.kind) and health.status in explain:
            message = f"{explain_failure(obj, _pods_of(obj, key, reader))} ({health.message})"
        out.append(ObjectHealth(key, health.status, message))
    return tuple(out)


def _pods_of(workload: KubeObject, key: ObjectKey, reader: LiveReader) -> list[KubeObject]:
    """Pods by the selector's ``matchLabels`` (the server filters); ``explain_failure`` applies the
    whole selector and the owner chain to what comes back. A Pod is its own evidence."""
    if key.kind == "Pod":
        return [workload]
    selector = (workload.get("spec") or {}).get("selector") or {}
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        return []
    return reader.list_pods(key.namespace, dict(selector.get("matchLabels") or {}))


def follow(
    keys: Sequence[ObjectKey],
    reader: LiveReader,
    *,
    timeout_s: float,
    poll_s: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
    progress: Callable[[RolloutProgress], None] | None = None,
    elapsed_before_s: float = 0.0,
    rules: CustomRules | None = None,
) -> RolloutResult:
    """Poll until every object is Current, one is Failed, or ``timeout_s`` passes. ``stop`` (the
    agent shutting down) ends the wait early: following is only watching, safe to abandon.
    ``elapsed_before_s``: how long the rollout ran before this follow began (an agent picking up a
    rollout it stopped following counts the time since the apply). An object that nothing rolls
    out (not a workload, no custom rule: a ConfigMap, a Service) is read until it is Current, not
    after: each look reads only what can still change, so N environments' follows poll their
    workloads, not every object they hold."""
    started = clock() - elapsed_before_s
    settled: dict[ObjectKey, ObjectHealth] = {}
    while True:
        looked = health_of([k for k in keys if k not in settled], reader, rules=rules)
        settled.update((o.key, o) for o in looked if _settles(o, rules))
        seen = {o.key: o for o in looked}
        objects = tuple(seen.get(k) or settled[k] for k in keys)
        status = aggregate(o.status for o in objects)
        elapsed = clock() - started
        if status in (HealthStatus.CURRENT, HealthStatus.FAILED):
            return RolloutResult(status, objects, summarize(objects, status), elapsed)
        if stop is not None and stop.is_set():
            return RolloutResult(status, objects, "stopped following: the agent is shutting down", elapsed)
        if elapsed >= timeout_s:
            stuck_keys = [o.key for o in objects if o.status is not HealthStatus.CURRENT]
            explain = frozenset(HealthStatus) - {HealthStatus.CURRENT}
            stuck = health_of(stuck_keys, reader, explain=explain, rules=rules)
            message = f"timed out after {timeout_s:.0f}s: " + "; ".join(f"{o.key}: {o.message}" for o in stuck)
            return RolloutResult(HealthStatus.FAILED, objects, message, elapsed)
        if progress is not None:
            progress(RolloutProgress(objects, elapsed, timeout_s))
        sleep(poll_s)


def _settles(o: ObjectHealth, rules: CustomRules | None) -> bool:
    """Current, and of a kind no controller rolls out: it stays Current for this follow."""
    key = o.key
    custom = rules is not None and (key.group, key.kind) in rules
    return o.status is HealthStatus.CURRENT and not explains(key.group, key.kind) and not custom


def summarize(objects: Sequence[ObjectHealth], status: HealthStatus) -> str:
    """One line: "healthy (5 objects)", or what the worst objects say."""
    if status is HealthStatus.CURRENT:
        return f"healthy ({len(objects)} object{'s' if len(objects) != 1 else ''})"
    worst = [o for o in objects if o.status is status]
    return "; ".join(_line(o) for o in worst[:3])


def _line(o: ObjectHealth) -> str:
    """An explained workload's message begins with its name already: ``Job/doomed: 0/1 succeeded, ...``;
    a Deployment's is said without its kind, as it always was (``api: 0/3 ready, ...``)."""
    if not explains(o.key.group, o.key.kind):
        return f"{o.key}: {o.message}"
    return o.message if o.key.kind == "Deployment" else f"{o.key.kind}/{o.message}"
