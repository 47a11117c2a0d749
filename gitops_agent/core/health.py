"""Is an object healthy? A pure function over a live object, with kstatus' four words.

``assess(obj)`` decides in layers, first answer wins:

1. generic: being deleted -> InProgress; ``metadata.generation`` ahead of
   ``status.observedGeneration`` -> InProgress (the controller has not seen the change yet);
   ``Stalled=True`` -> Failed; ``Reconciling=True`` -> InProgress;
2. the kind's own rule (a table from (group, kind) to a small function);
3. standard conditions, for everything else (custom resources): ``Ready``, ``Available`` or
   ``Succeeded`` True -> Current, False -> InProgress (Failed when the reason says so);
4. no status to judge -> Current: it exists, which is all such an object promises.

Aggregation (``aggregate``): an environment is as healthy as its worst object, in this order of
badness: Failed > InProgress > Unknown > Current.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gitops_agent.model import Health, HealthStatus, KubeObject, api_group

CURRENT, IN_PROGRESS, FAILED, UNKNOWN = (
    HealthStatus.CURRENT,
    HealthStatus.IN_PROGRESS,
    HealthStatus.FAILED,
    HealthStatus.UNKNOWN,
)
_BADNESS = {CURRENT: 0, UNKNOWN: 1, IN_PROGRESS: 2, FAILED: 3}
#: container waiting reasons that will not fix themselves
FAILING_WAIT_REASONS = frozenset(
    {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "InvalidImageName",
     "CreateContainerError", "RunContainerError"}
)  # fmt: skip
_FAILED_CONDITION_REASONS = ("Failed", "Error", "Invalid", "Degraded", "Stalled")

Rule = Callable[[KubeObject], Health]


def assess(obj: KubeObject) -> Health:
    generic = _generic(obj)
    if generic is not None:
        return generic
    rule = RULES.get((api_group(str(obj.get("apiVersion", ""))), str(obj.get("kind", ""))))
    if rule is not None:
        return rule(obj)
    return _by_conditions(obj) or Health(CURRENT, "exists")


def aggregate(statuses: Iterable[HealthStatus]) -> HealthStatus:
    """The worst of them (Current when there are none)."""
    return max(statuses, key=lambda s: _BADNESS[s], default=CURRENT)


# --- layer 1: what holds for every kind --------------------------------------------------------


def _generic(obj: KubeObject) -> Health | None:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return Health(IN_PROGRESS, "being deleted")
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if isinstance(generation, int) and isinstance(observed, int) and observed < generation:
        return Health(IN_PROGRESS, f"the controller has not observed generation {generation} yet (at {observed})")
    stalled = condition(obj, "Stalled")
    if stalled and stalled.get("status") == "True":
        return Health(FAILED, _says("stalled", stalled))
    reconciling = condition(obj, "Reconciling")
    if reconciling and reconciling.get("status") == "True":
        return Health(IN_PROGRESS, _says("reconciling", reconciling))
    return None


def condition(obj: KubeObject, kind: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == kind:
            return c
    return None


def _says(what: str, c: Mapping[str, Any]) -> str:
    detail = c.get("message") or c.get("reason") or ""
    return f"{what}: {detail}" if detail else what


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


# --- layer 2: kinds ----------------------------------------------------------------------------


def _deployment(obj: KubeObject) -> Health:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    want = _int(spec.get("replicas", 1))
    progressing = condition(obj, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return Health(FAILED, _says("progress deadline exceeded", progressing))
    if spec.get("paused"):
        return Health(IN_PROGRESS, "rollout paused")
    updated, ready = _int(status.get("updatedReplicas")), _int(status.get("readyReplicas"))
    available, total = _int(status.get("availableReplicas")), _int(status.get("replicas"))
    if updated < want:
        return Health(IN_PROGRESS, f"{updated}/{want} replicas updated")
    if total > updated:
        return Health(IN_PROGRESS, f"{total - updated} old replicas still running")
    if available < want:
        return Health(IN_PROGRESS, f"{available}/{want} replicas available ({ready} ready)")
    return Health(CURRENT, f"{available}/{want} replicas available")


def _statefulset(obj: KubeObject) -> Health:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    want = _int(spec.get("replicas", 1))
    ready = _int(status.get("readyReplicas"))
    strategy = spec.get("updateStrategy") or {}
    if ready < want:
        return Health(IN_PROGRESS, f"{ready}/{want} replicas ready")
    if strategy.get("type", "RollingUpdate") == "OnDelete":
        return Health(CURRENT, f"{ready}/{want} replicas ready (OnDelete: pods update when deleted)")
    partition = _int((strategy.get("rollingUpdate") or {}).get("partition"))
    if partition:
        updated = _int(status.get("updatedReplicas"))
        if updated < want - partition:
            return Health(IN_PROGRESS, f"{updated}/{want - partition} replicas above partition {partition} updated")
        return Health(CURRENT, f"{ready}/{want} replicas ready, partition {partition}")
    if status.get("updateRevision") and status.get("currentRevision") != status.get("updateRevision"):
        return Health(IN_PROGRESS, f"{_int(status.get('updatedReplicas'))}/{want} replicas at the new revision")
    return Health(CURRENT, f"{ready}/{want} replicas ready")


def _daemonset(obj: KubeObject) -> Health:
    status = obj.get("status") or {}
    desired = _int(status.get("desiredNumberScheduled"))
    updated = _int(status.get("updatedNumberScheduled"))
    available = _int(status.get("numberAvailable"))
    if updated < desired:
        return Health(IN_PROGRESS, f"{updated}/{desired} pods updated")
    if available < desired:
        return Health(IN_PROGRESS, f"{available}/{desired} pods available")
    return Health(CURRENT, f"{available}/{desired} pods available")


def _replicaset(obj: KubeObject) -> Health:
    want = _int((obj.get("spec") or {}).get("replicas", 1))
    status = obj.get("status") or {}
    failure = condition(obj, "ReplicaFailure")
    if failure and failure.get("status") == "True":
        return Health(FAILED, _says("replica failure", failure))
    available = _int(status.get("availableReplicas"))
    if available < want:
        return Health(IN_PROGRESS, f"{available}/{want} replicas available")
    return Health(CURRENT, f"{available}/{want} replicas available")


def _pod(obj: KubeObject) -> Health:
    status = obj.get("status") or {}
    phase = status.get("phase", "Pending")
    if phase == "Succeeded":
        return Health(CURRENT, "completed")
    if phase == "Failed":
        return Health(FAILED, f"failed: {status.get('reason') or _terminated(status) or 'pod failed'}")
    waiting = failing_container(obj)
    if waiting:
        return Health(FAILED, waiting)
    ready = condition(obj, "Ready")
    if phase == "Running" and ready and ready.get("status") == "True":
        return Health(CURRENT, "running and ready")
    return Health(IN_PROGRESS, f"{phase.lower()}, not ready")


def failing_container(pod: KubeObject) -> str:
    """``CrashLoopBackOff in container app`` for the first container stuck in a failing wait."""
    status = pod.get("status") or {}
    for field in ("initContainerStatuses", "containerStatuses"):
        for c in status.get(field) or []:
            reason = ((c.get("state") or {}).get("waiting") or {}).get("reason")
            if reason in FAILING_WAIT_REASONS:
                return f"{reason} in container {c.get('name')}"
    return ""


def _terminated(status: Mapping[str, Any]) -> str:
    for c in status.get("containerStatuses") or []:
        done = (c.get("state") or {}).get("terminated") or {}
        if done.get("exitCode"):
            return f"container {c.get('name')} exited {done['exitCode']} ({done.get('reason', '')})"
    return ""


def _job(obj: KubeObject) -> Health:
    for kind, health in (("Failed", FAILED), ("Complete", CURRENT)):
        c = condition(obj, kind)
        if c and c.get("status") == "True":
            return Health(health, _says("failed" if health is FAILED else "complete", c))
    if (obj.get("spec") or {}).get("suspend"):
        return Health(CURRENT, "suspended")
    status = obj.get("status") or {}
    return Health(
        IN_PROGRESS, f"running: {_int(status.get('succeeded'))} succeeded, {_int(status.get('failed'))} failed"
    )


def _pvc(obj: KubeObject) -> Health:
    phase = (obj.get("status") or {}).get("phase")
    if phase == "Bound":
        return Health(CURRENT, "bound")
    if phase == "Lost":
        return Health(FAILED, "lost its volume")
    return Health(IN_PROGRESS, f"{(phase or 'pending').lower()}, not bound yet")


def _service(obj: KubeObject) -> Health:
    if (obj.get("spec") or {}).get("type") != "LoadBalancer":
        return Health(CURRENT, "exists")
    return _load_balancer(obj)


def _load_balancer(obj: KubeObject) -> Health:
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    if ingress:
        first = ingress[0]
        return Health(CURRENT, f"load balancer at {first.get('ip') or first.get('hostname')}")
    return Health(IN_PROGRESS, "waiting for a load balancer address")


def _namespace(obj: KubeObject) -> Health:
    if (obj.get("status") or {}).get("phase") == "Terminating":
        return Health(IN_PROGRESS, "terminating")
    return Health(CURRENT, "active")


def _crd(obj: KubeObject) -> Health:
    names = condition(obj, "NamesAccepted")
    if names and names.get("status") == "False":
        return Health(FAILED, _says("names not accepted", names))
    established = condition(obj, "Established")
    if established and established.get("status") == "True":
        return Health(CURRENT, "established")
    return Health(IN_PROGRESS, "not established yet")


def _apiservice(obj: KubeObject) -> Health:
    available = condition(obj, "Available")
    if available and available.get("status") == "True":
        return Health(CURRENT, "available")
    return Health(IN_PROGRESS if available is None else FAILED, _says("not available", available or {}))


RULES: dict[tuple[str, str], Rule] = {
    ("apps", "Deployment"): _deployment,
    ("apps", "StatefulSet"): _statefulset,
    ("apps", "DaemonSet"): _daemonset,
    ("apps", "ReplicaSet"): _replicaset,
    ("", "Pod"): _pod,
    ("batch", "Job"): _job,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "Service"): _service,
    ("networking.k8s.io", "Ingress"): _load_balancer,
    ("", "Namespace"): _namespace,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _crd,
    ("apiregistration.k8s.io", "APIService"): _apiservice,
}


# --- layer 3: standard conditions --------------------------------------------------------------


def _by_conditions(obj: KubeObject) -> Health | None:
    for kind in ("Ready", "Available", "Succeeded"):
        c = condition(obj, kind)
        if c is None:
            continue
        if c.get("status") == "True":
            return Health(CURRENT, _says(kind.lower(), c))
        failed = any(word in str(c.get("reason", "")) for word in _FAILED_CONDITION_REASONS)
        return Health(FAILED if failed else IN_PROGRESS, _says(f"not {kind.lower()}", c))
    return None


# --- explaining a failing Deployment ------------------------------------------------------------


def explain_deployment(deployment: KubeObject, pods: Iterable[KubeObject]) -> str:
    """``api: 0/3 ready, CrashLoopBackOff in container app``: the Deployment's numbers and the
    first reason its pods give."""
    name = (deployment.get("metadata") or {}).get("name", "?")
    want = _int((deployment.get("spec") or {}).get("replicas", 1))
    ready = _int((deployment.get("status") or {}).get("readyReplicas"))
    reasons = [r for r in (failing_container(p) for p in pods) if r]
    detail = f", {reasons[0]}" if reasons else ""
    return f"{name}: {ready}/{want} ready{detail}"
