"""What an environment may write: its boundary, checked before anything is written.

An environment writes namespaced objects only in its namespaces (globs), cluster-scoped objects
only of the kinds it lists (a Namespace only when its name is one of its namespaces), and never a
kind it denies. Whatever the config says, no environment writes into the agent's own namespace
(its inventories, ledgers and Leases live there, and it runs as the agent's ServiceAccount) or
that Namespace itself. Argo CD's AppProject says the same with destinations and allow/deny lists;
this is the same rule, stated per environment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from gitops_agent.errors import ValidationError
from gitops_agent.model import ObjectKey

#: kinds that are cluster-scoped on every Kubernetes cluster: what ``validate`` can judge offline
WELL_KNOWN_CLUSTER_KINDS = frozenset(
    {
        ("", "Namespace"), ("", "Node"), ("", "PersistentVolume"),
        ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"), ("storage.k8s.io", "StorageClass"),
        ("scheduling.k8s.io", "PriorityClass"), ("networking.k8s.io", "IngressClass"),
        ("apiregistration.k8s.io", "APIService"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
    }
)  # fmt: skip


@dataclass(frozen=True)
class Scope:
    #: namespaces the environment may write (globs: ``shop-*``)
    namespaces: tuple[str, ...]
    #: cluster-scoped kinds it may write, as ``Kind`` or ``Kind.group``; a Namespace needs none of
    #: this, only its name in ``namespaces``
    cluster_kinds: tuple[str, ...] = ()
    #: kinds it may never write, namespaced or not, as ``Kind`` or ``Kind.group``
    deny_kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScopedObject:
    key: ObjectKey
    source: str
    #: None when unknown (offline, a kind the server has not told us about)
    namespaced: bool | None


def check_scope(objects: Iterable[ScopedObject], scope: Scope, *, environment: str, agent_namespace: str) -> None:
    """Raise ValidationError for the first object outside the environment's scope, naming the
    file, the object and the rule; the whole snapshot fails, before any write."""
    for obj in objects:
        rule = violation(obj, scope, agent_namespace=agent_namespace)
        if rule:
            raise ValidationError(f"{obj.source}: {obj.key}: outside environment {environment!r}'s scope: {rule}")


def violation(obj: ScopedObject, scope: Scope, *, agent_namespace: str) -> str:
    """Why ``obj`` may not be written, or "" when it may (or cannot be judged yet)."""
    key = obj.key
    if _matches_kind(key, scope.deny_kinds):
        return f"kind {key.group_kind} is in scope.deny_kinds"
    if key.namespace == agent_namespace or (key.group, key.kind, key.name) == ("", "Namespace", agent_namespace):
        return f"namespace {agent_namespace!r} is the agent's own (its state and identity); no environment writes there"
    if key.kind == "Namespace" and key.group == "":
        if not _in_namespaces(key.name, scope):
            return f"Namespace {key.name!r} is not one of scope.namespaces {list(scope.namespaces)}"
        return ""
    namespaced = obj.namespaced if obj.namespaced is not None else _guess_namespaced(key)
    if namespaced is None:
        return ""
    if namespaced:
        if not _in_namespaces(key.namespace, scope):
            return f"namespace {key.namespace!r} is not one of scope.namespaces {list(scope.namespaces)}"
        return ""
    if not _matches_kind(key, scope.cluster_kinds):
        return f"cluster-scoped kind {key.group_kind} is not in scope.cluster_kinds {list(scope.cluster_kinds)}"
    return ""


def _guess_namespaced(key: ObjectKey) -> bool | None:
    """Offline: a namespace set means namespaced; a well-known cluster kind is cluster-scoped."""
    if (key.group, key.kind) in WELL_KNOWN_CLUSTER_KINDS:
        return False
    return True if key.namespace else None


def _in_namespaces(namespace: str, scope: Scope) -> bool:
    return any(fnmatchcase(namespace, pattern) for pattern in scope.namespaces)


def _matches_kind(key: ObjectKey, kinds: Iterable[str]) -> bool:
    return any(k in (key.kind, key.group_kind) for k in kinds)
