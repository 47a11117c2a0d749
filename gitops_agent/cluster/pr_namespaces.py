"""PR environments in the cluster: their namespaces (found by the agent's labels), created with the
optional ResourceQuota and LimitRange, and removed with the agent's records of them.

The namespaces are the record: ``live`` reads them back, so what exists survives a restart. Removal
deletes only what carries the agent's labels: the environment's state ConfigMaps (``state-of``
label), its lock Lease, then the namespace itself, last, so that a removal cut short is found again
by the next sweep.
"""

from __future__ import annotations

import logging

from gitops_agent.cluster.api import ClusterApi
from gitops_agent.core.env_lock import lock_name
from gitops_agent.core.pr_env import (
    AGENT_LABEL,
    LivePrEnvironment,
    PrNamespace,
    guard_manifests,
    namespace_manifest,
    parse_namespace,
    selector,
)
from gitops_agent.core.prepare import MANAGED_BY, MANAGED_BY_LABEL, STATE_OF_LABEL
from gitops_agent.errors import ConflictError

log = logging.getLogger(__name__)


def live(api: ClusterApi, agent_namespace: str) -> list[LivePrEnvironment]:
    """This agent's PR environments, as their namespaces say (being deleted: not counted)."""
    found = api.kube.list(api.resource("", "Namespace"), label_selector=selector(agent_namespace))
    return sorted((e for e in map(parse_namespace, found) if e is not None), key=lambda e: (e.base, e.number))


def ensure(
    api: ClusterApi,
    ns: PrNamespace,
    *,
    agent_namespace: str,
    field_manager: str,
    quota: dict[str, object] | None,
    limit_range: dict[str, object] | None,
) -> None:
    """The namespace with its labels (a new expiry and head on every deploy), then its guards."""
    api.kube.apply(namespace_manifest(ns, agent_namespace), api.resource("", "Namespace"), field_manager=field_manager)
    for guard in guard_manifests(ns.name, quota, limit_range):
        api.kube.apply(guard, api.resource("", guard["kind"]), field_manager=field_manager)


def remove(api: ClusterApi, env: LivePrEnvironment, *, agent_namespace: str, keep_lock: bool = False) -> None:
    """The environment's state (ConfigMaps labelled as its state, by the agent), its lock, then its
    namespace: only this very namespace (by uid), still labelled as this agent's. ``keep_lock``:
    the caller holds the lock while it removes, and deletes it after (``remove_lock``)."""
    configmaps = api.resource("", "ConfigMap")
    mine = f"{STATE_OF_LABEL}={env.environment},{MANAGED_BY_LABEL}={MANAGED_BY}"
    for cm in api.kube.list(configmaps, namespace=agent_namespace, label_selector=mine):
        api.kube.delete(configmaps, agent_namespace, cm["metadata"]["name"])
    if not keep_lock:
        remove_lock(api, env, agent_namespace=agent_namespace)
    namespaces = api.resource("", "Namespace")
    now = api.kube.get(namespaces, "", env.namespace)
    if now is None:
        return
    if ((now.get("metadata") or {}).get("labels") or {}).get(AGENT_LABEL) != agent_namespace:
        log.warning("namespace %s is no longer labelled as this agent's PR environment: left alone", env.namespace)
        return
    try:
        api.kube.delete(namespaces, "", env.namespace, uid=env.uid or str(now["metadata"].get("uid", "")))
    except ConflictError:
        log.warning("namespace %s was recreated meanwhile: left alone", env.namespace)


def remove_lock(api: ClusterApi, env: LivePrEnvironment, *, agent_namespace: str) -> None:
    """The environment's lock Lease."""
    api.kube.delete(api.resource("coordination.k8s.io", "Lease"), agent_namespace, lock_name(env.environment))
