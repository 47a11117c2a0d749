"""Turning rendered objects into what gets applied, and in which order.

Pure: scope (namespaced or not) comes in as a lookup function built from API discovery, so this
module never talks to a cluster. What it adds to every object:

- the environment's default namespace where a namespaced object has none (cluster-scoped objects
  lose a stray namespace, as kubectl does);
- labels that answer "who manages this?" (``kubectl get -l gitops-agent.io/environment=prod``);
- the hash of the rendered manifest, so a later pass can tell "this object's intent did not change"
  without asking the server (see ``core.diff.covers``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from gitops_agent.core.hooks import HOOK_ANNOTATION, Hook, classify
from gitops_agent.core.secret_check import secret_problems
from gitops_agent.errors import ValidationError
from gitops_agent.model import DesiredObject, KubeObject, ObjectKey, api_group

ENV_LABEL = "gitops-agent.io/environment"
#: on the agent's own state (inventory, ledger): not ENV_LABEL, which marks what an environment manages
STATE_OF_LABEL = "gitops-agent.io/state-of"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "gitops-agent"
MANIFEST_HASH_ANNOTATION = "gitops-agent.io/manifest-hash"
#: ``gitops-agent.io/prune: disabled`` on a live object keeps it when the commit removes it
PRUNE_ANNOTATION = "gitops-agent.io/prune"

#: Install order, as Helm and kubectl users know it: what others depend on comes first.
KIND_ORDER = (
    "Namespace", "CustomResourceDefinition", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodDisruptionBudget", "ServiceAccount", "Secret", "ConfigMap", "StorageClass", "PersistentVolume",
    "PersistentVolumeClaim", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service",
    "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler",
    "StatefulSet", "Job", "CronJob", "PriorityClass", "IngressClass", "Ingress", "APIService",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
)  # fmt: skip
_RANK = {kind: i for i, kind in enumerate(KIND_ORDER)}
#: applied, and for CRDs waited on, before anything else can even be validated by the server
FIRST_STAGE_KINDS = frozenset({("", "Namespace"), ("apiextensions.k8s.io", "CustomResourceDefinition")})

#: (group, kind) -> namespaced? None when the API server does not know the kind
ScopeLookup = Callable[[str, str], bool | None]


@dataclass(frozen=True)
class PreparedObject:
    """A desired object ready to apply: namespace defaulted, labelled, hashed."""

    key: ObjectKey
    manifest: KubeObject
    source: str
    manifest_hash: str
    #: False for objects the agent adds itself (the environment's namespace) and for hooks: never
    #: inventoried, so never pruned
    inventoried: bool = True
    #: a sync hook (``core.hooks``): run in its phase, never applied with the rest
    hook: Hook | None = None

    @property
    def first_stage(self) -> bool:
        return (self.key.group, self.key.kind) in FIRST_STAGE_KINDS


def prepare(
    objects: Sequence[DesiredObject],
    *,
    environment: str,
    default_namespace: str,
    scope_of: ScopeLookup,
) -> tuple[PreparedObject, ...]:
    """Default namespaces, add labels and hashes, check for duplicates and Secret values that are
    not strings (the server's refusal would quote them), sort in apply order. Objects a hook
    annotation skips (Argo CD's Skip, Helm's tests…) are left out; hooks are marked."""
    _refuse_bad_secret_values(objects)
    objects = [o for o in objects if not classify(o.manifest, f"{o.source}: {o.key}").skipped]
    scopes = _with_snapshot_crds(objects, scope_of)
    prepared = [_prepare_one(o, environment, default_namespace, scopes) for o in objects]
    _refuse_duplicates(prepared)
    return tuple(sorted(prepared, key=lambda p: apply_order(p.key)))


def _with_snapshot_crds(objects: Iterable[DesiredObject], scope_of: ScopeLookup) -> ScopeLookup:
    """Kinds defined by a CRD in the same snapshot are known before the CRD exists."""
    defined: dict[tuple[str, str], bool] = {}
    for obj in objects:
        if (obj.key.group, obj.key.kind) == ("apiextensions.k8s.io", "CustomResourceDefinition"):
            spec = obj.manifest.get("spec") or {}
            names = spec.get("names") or {}
            if spec.get("group") and names.get("kind"):
                defined[(spec["group"], names["kind"])] = spec.get("scope", "Namespaced") == "Namespaced"

    def lookup(group: str, kind: str) -> bool | None:
        if (group, kind) in defined:
            return defined[(group, kind)]
        return scope_of(group, kind)

    return lookup


def _prepare_one(obj: DesiredObject, environment: str, default_namespace: str, scope_of: ScopeLookup) -> PreparedObject:
    manifest = json.loads(json.dumps(obj.manifest))  # a deep copy that is also plain JSON
    group = api_group(str(manifest.get("apiVersion", "")))
    namespaced = scope_of(group, obj.key.kind)
    if namespaced is None:
        raise ValidationError(
            f"{obj.source}: {obj.key}: unknown kind {manifest.get('kind')!r} in apiVersion "
            f"{manifest.get('apiVersion')!r}: the API server does not serve it and no "
            "CustomResourceDefinition in this snapshot defines it (check the apiVersion, or add the CRD)"
        )
    meta = manifest.setdefault("metadata", {})
    if namespaced:
        meta["namespace"] = meta.get("namespace") or default_namespace
    else:
        meta.pop("namespace", None)
    digest = manifest_hash(manifest)
    labels = meta.get("labels") or {}
    meta["labels"] = {**labels, ENV_LABEL: environment, MANAGED_BY_LABEL: MANAGED_BY}
    annotations = meta.get("annotations") or {}
    meta["annotations"] = {**annotations, MANIFEST_HASH_ANNOTATION: digest}
    hook = classify(manifest, f"{obj.source}: {obj.key}").hook
    if hook is not None:  # whatever dialect named it: the live object says it is a hook
        meta["annotations"][HOOK_ANNOTATION] = hook.phase.value
        return PreparedObject(ObjectKey.of(manifest), manifest, obj.source, digest, inventoried=False, hook=hook)
    return PreparedObject(ObjectKey.of(manifest), manifest, obj.source, digest)


def manifest_hash(manifest: KubeObject) -> str:
    """A stable digest of a rendered manifest (key order does not matter)."""
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def _refuse_bad_secret_values(objects: Iterable[DesiredObject]) -> None:
    for obj in objects:
        problems = secret_problems(obj.manifest)
        if problems:
            raise ValidationError(f"{obj.source}: {obj.key}: " + "; ".join(problems))


def _refuse_duplicates(prepared: Iterable[PreparedObject]) -> None:
    seen: dict[ObjectKey, PreparedObject] = {}
    for p in prepared:
        if p.key in seen:
            raise ValidationError(
                f"{p.key} is defined twice: in {seen[p.key].source} and in {p.source} "
                "(after namespace defaulting); keep one"
            )
        seen[p.key] = p


def apply_order(key: ObjectKey) -> tuple[int, int, int, str, str, str]:
    """Namespaces and CRDs, then cluster-scoped, then namespaced; by kind rank; then by name."""
    stage = 0 if (key.group, key.kind) in FIRST_STAGE_KINDS else 1
    rank = _RANK.get(key.kind, len(KIND_ORDER))
    return (stage, 1 if key.namespace else 0, rank, key.kind, key.namespace, key.name)


def prune_order(keys: Iterable[ObjectKey]) -> list[ObjectKey]:
    """The reverse of the apply order: dependents go before what they depend on."""
    return sorted(keys, key=apply_order, reverse=True)


def namespace_manifest(name: str, environment: str) -> KubeObject:
    """The environment's default namespace, created when missing (Argo CD's CreateNamespace=true)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {ENV_LABEL: environment, MANAGED_BY_LABEL: MANAGED_BY}},
    }
