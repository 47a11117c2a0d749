"""A snapshot as it is applied: scopes from discovery, plus the environment's own namespace."""

from __future__ import annotations

from collections.abc import Iterable

from gitops_agent.cluster.api import ClusterApi
from gitops_agent.cluster.model import SyncOptions
from gitops_agent.core.prepare import PreparedObject, namespace_manifest, prepare
from gitops_agent.model import DesiredObject, ObjectKey


def prepare_snapshot(api: ClusterApi, objects: Iterable[DesiredObject], o: SyncOptions) -> tuple[PreparedObject, ...]:
    """Every object to apply, in apply order; with ``create_namespace`` the environment's namespace
    first, never inventoried (pruning an environment must never delete its namespace)."""

    def scope_of(group: str, kind: str) -> bool | None:
        info = api.lookup(group, kind)
        return None if info is None else info.namespaced

    prepared = prepare(tuple(objects), environment=o.environment, default_namespace=o.namespace, scope_of=scope_of)
    if o.create_namespace and not any(p.key == namespace_key(o.namespace) for p in prepared):
        ns = namespace_manifest(o.namespace, o.environment)
        extra = PreparedObject(namespace_key(o.namespace), ns, "(environment namespace)", "", inventoried=False)
        prepared = (extra, *prepared)
    return prepared


def inventoried(api: ClusterApi, objects: Iterable[DesiredObject], o: SyncOptions) -> tuple[PreparedObject, ...]:
    """The snapshot as applied, without the objects the agent adds on its own."""
    return tuple(p for p in prepare_snapshot(api, objects, o) if p.inventoried)


def namespace_key(name: str) -> ObjectKey:
    return ObjectKey("", "Namespace", "", name)
