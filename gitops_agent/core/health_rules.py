"""The per-kind health rules ``core.health`` looks up by (group, kind): one small pure function
each, reading only what the kind's controller writes in ``status``.

Each rule answers after the generic layer has passed, so it may assume the controller has observed
the current generation and the object is not being deleted. The checks follow kstatus
(kubernetes-sigs/cli-utils ``pkg/kstatus/status/core.go``) where it has a rule, with our own
messages; where we differ, the function says why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

from gitops_agent.model import Health, HealthStatus, KubeObject

CURRENT, IN_PROGRESS, FAILED, UNKNOWN = (
    HealthStatus.CURRENT,
    HealthStatus.IN_PROGRESS,
    HealthStatus.FAILED,
    HealthStatus.UNKNOWN,
)
#: container waiting reasons that do not fix themselves: someone has to change the image, the
#: config or the code
FAILING_WAIT_REASONS = frozenset(
    {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError", "InvalidImageName",
     "CreateContainerError", "RunContainerError"}
)  # fmt: skip

Rule = Callable[[KubeObject], Health]


# --- reading status ----------------------------------------------------------------------------


def condition(obj: KubeObject, kind: str) -> dict[str, Any] | None:
    """The ``status.conditions`` entry of type ``kind``, or None."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == kind:
            return c
    return None


def is_true(c: Mapping[str, Any] | None) -> TypeGuard[Mapping[str, Any]]:
    """The condition exists and holds (``status: "True"``)."""
    return c is not None and c.get("status") == "True"


def says(what: str, c: Mapping[str, Any]) -> str:
    """``what: <the condition's message or reason>`` (just ``what`` when it has neither)."""
    detail = c.get("message") or c.get("reason") or ""
    return f"{what}: {detail}" if detail else what


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _spec(obj: KubeObject) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _status(obj: KubeObject) -> dict[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def _count(n: int, noun: str) -> str:
    """``1 old replica``, ``2 old replicas``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def desired_replicas(obj: KubeObject) -> int:
    """``spec.replicas``, 1 when unset (what the controllers assume)."""
    return _int(_spec(obj).get("replicas", 1))


# --- apps ----------------------------------------------------------------------------------------


def deployment(obj: KubeObject) -> Health:
    """Failed only when Kubernetes itself gave up (``ProgressDeadlineExceeded``); a paused rollout
    stays InProgress while its template is not rolled out (nothing will move until someone resumes
    it) and is Current when it is."""
    progressing = condition(obj, "Progressing")
    if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
        return Health(FAILED, says("progress deadline exceeded", progressing))
    # Progressing=False for any other reason is still the controller giving up (Argo CD: Degraded)
    if progressing and progressing.get("status") == "False":
        return Health(FAILED, says(f"not progressing ({progressing.get('reason') or 'no reason'})", progressing))
    health = _deployment_replicas(obj)
    available = condition(obj, "Available")
    # counts can look complete while the controller says too few pods stay up (minReadySeconds,
    # a crash just after Ready): InProgress, as it may recover and the deadline gives the verdict
    if health.status is CURRENT and available and available.get("status") == "False":
        health = Health(IN_PROGRESS, says(f"not available ({available.get('reason') or 'no reason'})", available))
    if _spec(obj).get("paused"):
        if health.status is CURRENT:
            return Health(CURRENT, f"{health.message} (paused)")
        return Health(IN_PROGRESS, f"rollout paused: {health.message}")
    return health


def _deployment_replicas(obj: KubeObject) -> Health:
    status, want = _status(obj), desired_replicas(obj)
    updated, ready = _int(status.get("updatedReplicas")), _int(status.get("readyReplicas"))
    available, total = _int(status.get("availableReplicas")), _int(status.get("replicas"))
    # quota or admission refusing pods: worth saying, but it can clear, and the progress deadline
    # turns it into a verdict
    failure = condition(obj, "ReplicaFailure")
    why = f" ({says('replica failure', failure)})" if is_true(failure) else ""
    if updated < want:
        return Health(IN_PROGRESS, f"{updated}/{want} replicas updated{why}")
    if total > updated:
        return Health(IN_PROGRESS, f"{_count(total - updated, 'old replica')} still running")
    if available < want:
        return Health(IN_PROGRESS, f"{available}/{want} replicas available ({ready} ready){why}")
    return Health(CURRENT, f"{available}/{want} replicas available")


def statefulset(obj: KubeObject) -> Health:
    """Unlike kstatus, OnDelete is Current only once its pods are ready: the strategy excuses old
    pods, not unready ones."""
    spec, status, want = _spec(obj), _status(obj), desired_replicas(obj)
    ready, total = _int(status.get("readyReplicas")), _int(status.get("replicas"))
    strategy = spec.get("updateStrategy") or {}
    if ready < want:
        return Health(IN_PROGRESS, f"{ready}/{want} replicas ready")
    if total > want:
        return Health(IN_PROGRESS, f"{_count(total - want, 'replica')} pending termination")
    if strategy.get("type", "RollingUpdate") == "OnDelete":
        return Health(CURRENT, f"{ready}/{want} replicas ready (OnDelete: pods update when deleted)")
    partition = _int((strategy.get("rollingUpdate") or {}).get("partition"))
    updated = _int(status.get("updatedReplicas"))
    if partition:
        if updated < want - partition:
            return Health(IN_PROGRESS, f"{updated}/{want - partition} replicas above partition {partition} updated")
        return Health(CURRENT, f"{ready}/{want} replicas ready, partition {partition}")
    current, update = status.get("currentRevision"), status.get("updateRevision")
    # as kstatus: until the controller has recorded both revisions, "same revision" proves nothing
    if not current or not update:
        return Health(IN_PROGRESS, "revisions not recorded by the controller yet")
    if updated < want or current != update:
        return Health(IN_PROGRESS, f"{updated}/{want} replicas at the new revision")
    return Health(CURRENT, f"{ready}/{want} replicas ready")


def daemonset(obj: KubeObject) -> Health:
    """With OnDelete, pods on the old template are expected: only availability counts."""
    status = _status(obj)
    if "observedGeneration" not in status or "desiredNumberScheduled" not in status:
        return Health(IN_PROGRESS, "not scheduled by the controller yet")
    desired = _int(status.get("desiredNumberScheduled"))
    scheduled, updated = _int(status.get("currentNumberScheduled")), _int(status.get("updatedNumberScheduled"))
    available, ready = _int(status.get("numberAvailable")), _int(status.get("numberReady"))
    on_delete = (_spec(obj).get("updateStrategy") or {}).get("type") == "OnDelete"
    if scheduled < desired:
        return Health(IN_PROGRESS, f"{scheduled}/{desired} pods scheduled")
    if updated < desired and not on_delete:
        return Health(IN_PROGRESS, f"{updated}/{desired} pods updated")
    if available < desired:
        return Health(IN_PROGRESS, f"{available}/{desired} pods available ({ready} ready)")
    # as kstatus: a pod that stopped being ready still counts as available until the controller's
    # next sync, so both must reach the desired count
    if ready < desired:
        return Health(IN_PROGRESS, f"{ready}/{desired} pods ready")
    return Health(CURRENT, f"{available}/{desired} pods available")


def replicaset(obj: KubeObject) -> Health:
    """``ReplicaFailure`` (quota, admission) is InProgress as in kstatus: it clears by itself once
    the cause goes, and the message says what it is."""
    status, want = _status(obj), desired_replicas(obj)
    available, ready, total = (_int(status.get(f)) for f in ("availableReplicas", "readyReplicas", "replicas"))
    failure = condition(obj, "ReplicaFailure")
    if is_true(failure):
        return Health(IN_PROGRESS, f"{available}/{want} replicas available, {says('replica failure', failure)}")
    if available < want:
        return Health(IN_PROGRESS, f"{available}/{want} replicas available ({ready} ready)")
    if ready < want:  # as kstatus, and as for DaemonSets: available lags a pod turning unready
        return Health(IN_PROGRESS, f"{ready}/{want} replicas ready")
    if total > want:
        return Health(IN_PROGRESS, f"{_count(total - want, 'replica')} pending termination")
    return Health(CURRENT, f"{available}/{want} replicas available")


# --- core ----------------------------------------------------------------------------------------


def pod(obj: KubeObject) -> Health:
    """A container stuck in a failing wait is Failed at once (kstatus: CrashLoopBackOff only; we
    add the image and config errors, which need a person just as much). A Failed phase is Failed
    (kstatus calls it Current: "completed, not successfully"), since we follow what we applied."""
    status = _status(obj)
    phase = status.get("phase") or "Pending"
    if phase == "Succeeded":
        return Health(CURRENT, "completed")
    if phase == "Failed":
        return Health(FAILED, f"failed: {status.get('reason') or terminated_container(obj) or 'pod failed'}")
    # a container that just exited with an error is the crash CrashLoopBackOff will report a moment
    # later (Argo CD and kstatus wait for that word); with restartPolicy Never it is the end
    stuck = failing_container(obj) or terminated_container(obj)
    if stuck:
        return Health(FAILED, stuck)
    if not _runs_forever(obj):
        # unlike kstatus (Current once ready): a run-to-completion pod is done only when it Succeeds
        return Health(IN_PROGRESS, f"{phase.lower()}, not completed yet")
    if phase == "Running" and is_true(condition(obj, "Ready")):
        return Health(CURRENT, "running and ready")
    scheduled = condition(obj, "PodScheduled")
    if scheduled and scheduled.get("status") == "False":
        # the scheduler retries as the cluster changes (a node joins): InProgress, with its reason
        unschedulable = scheduled.get("reason") == "Unschedulable"
        return Health(IN_PROGRESS, says("unschedulable" if unschedulable else "not scheduled", scheduled))
    return Health(IN_PROGRESS, f"{phase.lower()}, not ready")


def _runs_forever(pod: KubeObject) -> bool:
    return bool(_spec(pod).get("restartPolicy", "Always") == "Always")


def _container_statuses(pod: KubeObject) -> list[dict[str, Any]]:
    status = _status(pod)
    return [
        c for f in ("initContainerStatuses", "containerStatuses") for c in status.get(f) or [] if isinstance(c, dict)
    ]


def failing_container(pod: KubeObject) -> str:
    """``CrashLoopBackOff in container app, last exit 1 (Error): <its message>`` for the first
    container stuck in a failing wait; the image pull's own message for image errors."""
    for c in _container_statuses(pod):
        waiting = (c.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in FAILING_WAIT_REASONS:
            last = _exit(((c.get("lastState") or {}).get("terminated")) or {}) or _short(waiting.get("message"))
            return f"{reason} in container {c.get('name')}" + (f", {last}" if last else "")
    return ""


def terminated_container(pod: KubeObject) -> str:
    """``container task exited 1 (Error): <its message>`` for the first container that ended with a
    non-zero code."""
    for c in _container_statuses(pod):
        done = (c.get("state") or {}).get("terminated") or {}
        if done.get("exitCode"):
            return f"container {c.get('name')} {_exit(done, 'exited ')}"
    return ""


def _exit(terminated: Mapping[str, Any], lead: str = "exit code ") -> str:
    """``exit code 1 (Error): <the termination message>``, empty for a clean or absent exit."""
    if not terminated.get("exitCode"):
        return ""
    message = _short(terminated.get("message"))
    return f"{lead}{terminated['exitCode']} ({terminated.get('reason', '')})" + (f": {message}" if message else "")


def _short(text: Any, limit: int = 160) -> str:
    """The last line of a message (a termination log ends with the error), cut to ``limit``."""
    lines = [line for line in str(text or "").strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else ""
    return last if len(last) <= limit else last[: limit - 1] + "…"


def persistentvolumeclaim(obj: KubeObject) -> Health:
    phase = _status(obj).get("phase")
    if phase == "Bound":
        return Health(CURRENT, "bound")
    if phase == "Lost":
        return Health(FAILED, "lost its volume")
    return Health(IN_PROGRESS, f"{(phase or 'pending').lower()}, not bound yet")


def service(obj: KubeObject) -> Health:
    if _spec(obj).get("type") != "LoadBalancer":
        return Health(CURRENT, "exists")
    return load_balancer(obj)


def load_balancer(obj: KubeObject) -> Health:
    """A LoadBalancer Service is useful once it has an address."""
    address = _load_balancer_address(obj)
    if address:
        return Health(CURRENT, f"load balancer at {address}")
    return Health(IN_PROGRESS, "waiting for a load balancer address")


def ingress(obj: KubeObject) -> Health:
    """Current once it exists, as in kstatus (which has no Ingress rule): an address is published
    only by an ingress controller, and a cluster may have none (Argo CD's sock-shop example), so
    waiting for one would hold a rollout until its timeout. The address is said when there is one."""
    address = _load_balancer_address(obj)
    if address:
        return Health(CURRENT, f"load balancer at {address}")
    return Health(CURRENT, "exists (no load balancer address published; not waited for)")


def _load_balancer_address(obj: KubeObject) -> str:
    ingress = (_status(obj).get("loadBalancer") or {}).get("ingress") or []
    first = ingress[0] if ingress and isinstance(ingress[0], dict) else {}
    return str(first.get("ip") or first.get("hostname") or "")


def namespace(obj: KubeObject) -> Health:
    """Terminating is the generic layer's "being deleted": a Namespace is Terminating only once it
    has a ``deletionTimestamp``."""
    phase = _status(obj).get("phase") or "Active"
    return Health(CURRENT if phase == "Active" else IN_PROGRESS, phase.lower())


# --- batch ---------------------------------------------------------------------------------------


def job(obj: KubeObject) -> Health:
    """Unlike kstatus (a started Job is Current there), a running Job is InProgress: a migration
    that has not finished is not a healthy rollout. ``FailureTarget`` (newer API servers set it
    before ``Failed``, while the pods stop) is already the verdict."""
    for kind in ("Failed", "FailureTarget"):
        failed = condition(obj, kind)
        if is_true(failed):
            return Health(FAILED, says(f"failed ({failed.get('reason') or kind})", failed))
    complete = condition(obj, "Complete")
    if is_true(complete):
        return Health(CURRENT, says("complete", complete))
    suspended, suspend = condition(obj, "Suspended"), bool(_spec(obj).get("suspend"))
    # the controller's Suspended condition says the pods are gone; spec.suspend only that they will be
    if suspend and is_true(suspended):
        return Health(CURRENT, says("suspended", suspended))
    if suspend:
        return Health(IN_PROGRESS, "suspending: the controller has not stopped its pods yet")
    if is_true(suspended):
        return Health(IN_PROGRESS, "resuming: the controller has not restarted it yet")
    status = _status(obj)
    counts = ", ".join(f"{_int(status.get(f))} {f}" for f in ("active", "succeeded", "failed"))
    return Health(IN_PROGRESS, f"running: {counts}")


# --- API extensions --------------------------------------------------------------------------------


def customresourcedefinition(obj: KubeObject) -> Health:
    names = condition(obj, "NamesAccepted")
    if names and names.get("status") == "False":
        return Health(FAILED, says("names not accepted", names))
    established = condition(obj, "Established")
    if is_true(established):
        return Health(CURRENT, "established")
    if established and established.get("status") == "False" and established.get("reason") != "Installing":
        return Health(FAILED, says("not established", established))
    return Health(IN_PROGRESS, "not established yet")


def apiservice(obj: KubeObject) -> Health:
    """Not available is InProgress, not Failed: the Service behind it usually starts in the same
    rollout (``MissingEndpoints``, ``FailedDiscoveryCheck`` until it does); the timeout names it."""
    available = condition(obj, "Available")
    if is_true(available):
        return Health(CURRENT, "available")
    return Health(IN_PROGRESS, says("not available", available or {}))


# --- autoscaling ---------------------------------------------------------------------------------


def horizontalpodautoscaler(obj: KubeObject) -> Health:
    """Cannot scale (``AbleToScale=False``: FailedGetScale...) or cannot compute (``ScalingActive=False``:
    FailedGetResourceMetric...) is InProgress, not Argo CD's Degraded: the target or the metrics
    server usually arrives in the same rollout, and the rollout's timeout names the reason if not.
    ``ScalingDisabled`` (the target scaled to zero) is a choice someone made: Current; an invalid or
    ambiguous selector is Failed."""
    able, active = condition(obj, "AbleToScale"), condition(obj, "ScalingActive")
    # a selector the target's pods cannot be matched by does not fix itself: as Argo CD, Failed
    if active and active.get("status") == "False" and active.get("reason") in ("InvalidSelector", "AmbiguousSelector"):
        return Health(FAILED, says(f"scaling not active ({active['reason']})", active))
    if able and able.get("status") == "False":
        return Health(IN_PROGRESS, says(f"cannot scale ({able.get('reason') or 'no reason'})", able))
    if active and active.get("status") == "False" and active.get("reason") != "ScalingDisabled":
        return Health(IN_PROGRESS, says(f"scaling not active ({active.get('reason') or 'no reason'})", active))
    status = _status(obj)
    if able is None and active is None:
        return Health(CURRENT, "exists (not assessed by the autoscaler yet)")
    if active and active.get("reason") == "ScalingDisabled":
        return Health(CURRENT, says("scaling disabled", active))
    return Health(CURRENT, f"{_int(status.get('currentReplicas'))}/{_int(status.get('desiredReplicas'))} replicas")


# --- custom resources without conditions ---------------------------------------------------------

#: ``status.phase`` words that mean the same for every resource seen using them. "Running" is
#: left out on purpose: an Argo Workflow running is not done, a database "Running" is healthy;
#: a custom rule says which (README)
PHASES: dict[str, HealthStatus] = {
    "Failed": FAILED, "Error": FAILED, "Failure": FAILED,
    "Pending": IN_PROGRESS,
    "Succeeded": CURRENT, "Completed": CURRENT, "Ready": CURRENT, "Healthy": CURRENT, "Available": CURRENT,
}  # fmt: skip


def by_phase(obj: KubeObject) -> Health | None:
    """A custom resource judged by a ``status.phase`` word from ``PHASES``, else None."""
    status = _status(obj)
    phase = status.get("phase")
    verdict = PHASES.get(phase) if isinstance(phase, str) else None
    if verdict is None:
        return None
    detail = status.get("message") or status.get("reason") or ""
    return Health(verdict, f"phase {phase}" + (f": {_short(detail)}" if detail else ""))
