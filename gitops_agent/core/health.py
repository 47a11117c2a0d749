"""Is an object healthy? A pure function over a live object, with kstatus' four words.

``assess(obj)`` decides in layers, first answer wins (as kstatus' ``Compute`` does):

1. generic: being deleted -> InProgress; ``metadata.generation`` ahead of
   ``status.observedGeneration`` -> InProgress (the controller has not seen the change yet, so
   the rest of ``status`` describes the old spec); ``Stalled=True`` -> Failed;
   ``Reconciling=True`` -> InProgress;
2. the kind's own rule: a user-defined one from the config (``core.health_custom``, CEL), else
   ``RULES``, a table from (group, kind) to a small function (``core.health_rules``);
3. standard conditions, for everything else (custom resources): ``Ready``, ``Available`` or
   ``Succeeded`` True -> Current, Unknown -> InProgress, False -> Failed when the reason says so
   (``...Failed``, ``Error``...) or the condition is ``Succeeded``, else InProgress;
4. a ``status.phase`` word that means the same everywhere (``health_rules.PHASES``);
5. no status to judge -> Current: it exists, which is all such an object promises.

Aggregation (``aggregate``): an environment is as healthy as its worst object, in this order of
badness: Failed > InProgress > Unknown > Current. Unknown (an object not found, a node not
reporting) ranks below InProgress because something is still moving when an object is
InProgress, and a rollout still moving is what a person should hear about first.

``explain_failure`` turns a failing workload (Deployment, StatefulSet, DaemonSet, Job, Pod) and
its Pods into the line a person needs: ``api: 0/3 ready, CrashLoopBackOff in container app, exit
code 1 (Error)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gitops_agent.core import health_rules as r
from gitops_agent.core.health_rules import condition, says
from gitops_agent.model import Health, HealthStatus, KubeObject, api_group

CURRENT, IN_PROGRESS, FAILED, UNKNOWN = r.CURRENT, r.IN_PROGRESS, r.FAILED, r.UNKNOWN
_BADNESS = {CURRENT: 0, UNKNOWN: 1, IN_PROGRESS: 2, FAILED: 3}
#: words in a False condition's reason that mean "this will not fix itself"
_FAILED_CONDITION_REASONS = ("Failed", "Failure", "Error", "Invalid", "Degraded", "Stalled")

RULES: dict[tuple[str, str], r.Rule] = {
    ("apps", "Deployment"): r.deployment,
    ("apps", "StatefulSet"): r.statefulset,
    ("apps", "DaemonSet"): r.daemonset,
    ("apps", "ReplicaSet"): r.replicaset,
    ("", "Pod"): r.pod,
    ("batch", "Job"): r.job,
    ("autoscaling", "HorizontalPodAutoscaler"): r.horizontalpodautoscaler,
    ("", "PersistentVolumeClaim"): r.persistentvolumeclaim,
    ("", "Service"): r.service,
    ("networking.k8s.io", "Ingress"): r.ingress,
    ("", "Namespace"): r.namespace,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): r.customresourcedefinition,
    ("apiregistration.k8s.io", "APIService"): r.apiservice,
}


def assess(obj: KubeObject, custom: Mapping[tuple[str, str], r.Rule] | None = None) -> Health:
    """The object's health now, with a one-line message; pure (no clock, no reads). ``custom``:
    the user's rules by (group, kind) (``core.health_custom``), which take the place of ours."""
    generic = _generic(obj)
    if generic is not None:
        return generic
    key = (api_group(str(obj.get("apiVersion", ""))), str(obj.get("kind", "")))
    rule = (custom or {}).get(key) or RULES.get(key)
    if rule is not None:
        return rule(obj)
    return _by_conditions(obj) or r.by_phase(obj) or _exists(obj)


def aggregate(statuses: Iterable[HealthStatus]) -> HealthStatus:
    """The worst of them: Failed > InProgress > Unknown > Current (Current when there are none)."""
    return max(statuses, key=lambda s: _BADNESS[s], default=CURRENT)


def _exists(obj: KubeObject) -> Health:
    phase = (obj.get("status") or {}).get("phase")
    return Health(CURRENT, f"exists (phase {phase})" if isinstance(phase, str) and phase else "exists")


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
    if r.is_true(stalled):
        return Health(FAILED, says("stalled", stalled))
    reconciling = condition(obj, "Reconciling")
    if r.is_true(reconciling):
        return Health(IN_PROGRESS, says("reconciling", reconciling))
    return None


# --- layer 3: standard conditions --------------------------------------------------------------


def _by_conditions(obj: KubeObject) -> Health | None:
    for kind in ("Ready", "Available", "Succeeded"):
        c = condition(obj, kind)
        if c is not None:
            return _from_condition(obj, kind, c)
    return None


def _from_condition(obj: KubeObject, kind: str, c: Mapping[str, Any]) -> Health:
    """A condition written for an older generation says nothing about the current spec (controllers
    that stamp ``observedGeneration`` per condition rather than in ``status``)."""
    generation, seen = (obj.get("metadata") or {}).get("generation"), c.get("observedGeneration")
    if isinstance(generation, int) and isinstance(seen, int) and seen < generation:
        return Health(IN_PROGRESS, f"{kind} is for generation {seen}, not {generation} yet")
    if c.get("status") == "True":
        return Health(CURRENT, says(kind.lower(), c))
    if c.get("status") != "False":
        return Health(IN_PROGRESS, says(f"{kind.lower()} unknown", c))
    # Succeeded=False is a finished, failed run (Knative, Tekton); Ready=False may be on its way
    reason = str(c.get("reason", ""))
    failed = kind == "Succeeded" or any(word in reason for word in _FAILED_CONDITION_REASONS)
    return Health(FAILED if failed else IN_PROGRESS, says(f"not {kind.lower()} ({reason or 'no reason'})", c))


# --- explaining a failing workload by its pods ---------------------------------------------------

#: the workloads whose pods we can select, by (group, kind): their failures are explained by pods
EXPLAINED: frozenset[tuple[str, str]] = frozenset(
    {("apps", "Deployment"), ("apps", "StatefulSet"), ("apps", "DaemonSet"), ("batch", "Job"), ("", "Pod")}
)


def explains(group: str, kind: str) -> bool:
    return (group, kind) in EXPLAINED


def explain_failure(workload: KubeObject, pods: Iterable[KubeObject]) -> str:
    """``api: 0/3 ready, CrashLoopBackOff in container app, exit code 1 (Error)``: the workload's
    numbers and the first reason its own pods give. ``pods`` may be any pods of the namespace: only
    those it selects and owns count (selectors of two workloads may overlap). A bare Pod is
    explained by itself."""
    name = (workload.get("metadata") or {}).get("name", "?")
    if workload.get("kind") == "Pod":
        return f"{name}: {pods_reason([workload]) or 'no reason given by its containers'}"
    # a pod being deleted (an old one stopped by a rollout exits 143) explains nothing
    own = [p for p in pods if owned_by(workload, p) and not (p.get("metadata") or {}).get("deletionTimestamp")]
    reason = pods_reason(own) if own else (_replica_failure(workload) or "no pods")
    return f"{name}: {_counts(workload)}" + (f", {reason}" if reason else "")


def _counts(workload: KubeObject) -> str:
    status, kind = workload.get("status") or {}, workload.get("kind")
    if kind == "DaemonSet":
        return f"{status.get('numberReady') or 0}/{status.get('desiredNumberScheduled') or 0} ready"
    if kind == "Job":
        completions = (workload.get("spec") or {}).get("completions")
        done = f"{status.get('succeeded') or 0}/{completions}" if completions else f"{status.get('succeeded') or 0}"
        return f"{done} succeeded, {status.get('failed') or 0} failed"
    return f"{status.get('readyReplicas') or 0}/{r.desired_replicas(workload)} ready"


def pods_reason(pods: list[KubeObject]) -> str:
    """The most telling reason among the pods: a container stuck in a failing wait (with its last
    exit), one that exited with an error, a pod the scheduler cannot place (its message), then how
    many running pods are not ready."""
    for find in (r.failing_container, r.terminated_container, _unschedulable):
        for p in pods:
            reason = find(p)
            if reason:
                return reason
    running = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    waiting = sum(1 for p in running if not r.is_true(condition(p, "Ready")))
    return f"{waiting} pod{'s' if waiting != 1 else ''} not ready" if waiting else ""


def _unschedulable(pod: KubeObject) -> str:
    scheduled = condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") == "False":
        return says("unschedulable", scheduled)
    return ""


def _replica_failure(workload: KubeObject) -> str:
    failure = condition(workload, "ReplicaFailure")
    return says("replica failure", failure) if r.is_true(failure) else ""


def owned_by(workload: KubeObject, pod: KubeObject) -> bool:
    """Same namespace, labels matched by the workload's selector, and (when the pod has a
    controller) controlled by it: directly for a StatefulSet, DaemonSet or Job, through one of its
    ReplicaSets for a Deployment. A pod with no controller yet is counted: its owner adopts it."""
    meta, pod_meta = workload.get("metadata") or {}, pod.get("metadata") or {}
    if meta.get("namespace") and pod_meta.get("namespace") and meta["namespace"] != pod_meta["namespace"]:
        return False
    labels = pod_meta.get("labels") or {}
    if not selects((workload.get("spec") or {}).get("selector") or {}, labels):
        return False
    owner = next((o for o in pod_meta.get("ownerReferences") or [] if o.get("controller")), None)
    if owner is None:
        return True
    if workload.get("kind") == "Deployment":
        # a ReplicaSet of a Deployment is named ``<deployment>-<the pod's pod-template-hash>``
        replicaset = f"{meta.get('name')}-{labels.get('pod-template-hash', '')}"
        return bool(owner.get("kind") == "ReplicaSet" and owner.get("name") == replicaset)
    if owner.get("kind") != workload.get("kind"):
        return False
    # the uid tells a recreated workload of the same name from the one that made the pod
    if meta.get("uid") and owner.get("uid"):
        return bool(owner["uid"] == meta["uid"])
    return bool(owner.get("name") == meta.get("name"))


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A ``LabelSelector`` (matchLabels and matchExpressions) against labels; an empty selector
    selects nothing, as for workloads (the API refuses one there)."""
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return False
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    return all(_expression_holds(e, labels) for e in expressions)


def _expression_holds(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op, values = expression.get("key", ""), expression.get("operator"), expression.get("values") or []
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return False  # an operator the API would have refused
