"""Live reads, as few as can answer: one list per kind and namespace for a sync, one labelled list
per kind for drift, GETs where only a few objects of a kind are wanted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from gitops_agent.adapters.kube import KubeClient, ResourceInfo
from gitops_agent.cluster.api import ClusterApi
from gitops_agent.core.hooks import is_hook
from gitops_agent.core.prepare import ENV_LABEL, PreparedObject
from gitops_agent.model import KubeObject, ObjectKey

#: up to this many objects of one kind and namespace are read with GETs rather than a list
GET_RATHER_THAN_LIST = 3


def read_live(api: ClusterApi, prepared: Iterable[PreparedObject]) -> dict[ObjectKey, KubeObject]:
    """The live objects of a snapshot's kinds in its namespaces, by key: a list per namespaced kind
    and namespace; cluster-scoped objects by name when few (a Namespace is read, not every
    Namespace: an environment bounded by a namespaced Role may read its own only)."""
    groups: dict[tuple[ResourceInfo, str], list[ObjectKey]] = {}
    for p in prepared:
        info = api.lookup(p.key.group, p.key.kind)
        if info is not None:  # a kind its CRD has yet to define has nothing live
            groups.setdefault((info, p.key.namespace), []).append(p.key)
    live: dict[ObjectKey, KubeObject] = {}
    for (info, namespace), keys in groups.items():
        if not namespace and len(keys) <= GET_RATHER_THAN_LIST:
            live.update((k, obj) for k in keys if (obj := api.kube.get(info, "", k.name)) is not None)
            continue
        for obj in api.kube.list(info, namespace=namespace or None):
            live[ObjectKey.of(obj)] = obj
    return live


class LabelledLists(Protocol):
    """Where labelled lists may come from instead of the API server (``watch.WatchCache``)."""

    def lists(
        self, env: str, kube: KubeClient, groups: Sequence[tuple[ResourceInfo, str]]
    ) -> dict[tuple[ResourceInfo, str], list[KubeObject]] | None: ...


def read_labelled(
    api: ClusterApi, wanted: Iterable[ObjectKey], environment: str, cache: LabelledLists | None = None
) -> tuple[dict[ObjectKey, KubeObject], list[KubeObject]]:
    """Live objects carrying the environment's label, one list per kind and namespace of the
    snapshot (per kind for cluster-scoped ones), and those of them the snapshot does not have
    (``extra``). Objects whose label was removed by hand are fetched one by one (rare), so they read
    as drift, not as missing. With a ``cache`` whose watches of those lists are synced, the lists
    come from it (no request)."""
    wanted = set(wanted)
    selector = f"{ENV_LABEL}={environment}"
    groups: dict[tuple[ResourceInfo, str], None] = {}
    for key in sorted(wanted):
        info = api.lookup(key.group, key.kind)
        if info is not None:
            groups[(info, key.namespace)] = None
    live: dict[ObjectKey, KubeObject] = {}
    extra: list[KubeObject] = []
    cached = cache.lists(environment, api.kube, list(groups)) if cache is not None else None
    for info, namespace in groups:
        listed = cached[(info, namespace)] if cached is not None else None
        if listed is None:
            listed = api.kube.list(info, namespace=namespace or None, label_selector=selector)
        for obj in listed:
            key = ObjectKey.of(obj)
            if key in wanted:
                live[key] = obj
            # another agent's environment may share the name elsewhere; a hook's run is no drift
            elif key.namespace == namespace and not is_hook(obj):
                extra.append(obj)
    for key in sorted(wanted - set(live)):
        found = api.get(key)
        if found is not None:
            live[key] = found
    return live, extra


class WatchedObjects(Protocol):
    """Where a synced watch's objects may be read instead of the API server (``watch.WatchCache``)."""

    def watched(self, env: str, info: ResourceInfo, namespace: str) -> list[KubeObject] | None: ...


class LiveReads:
    """The rollout follower's reads (``rollout.LiveReader``) over one cluster; with ``watched`` and
    ``environment``, the environment's objects come from its synced watches (no request), the rest
    from the API server."""

    def __init__(self, api: ClusterApi, watched: WatchedObjects | None = None, environment: str = "") -> None:
        self.api = api
        self._watched, self._environment = watched, environment
        #: per object, the generation the API server last answered: a watch copy older than that
        #: has not seen the apply yet (its old spec, long rolled out, would look Current)
        self._floor: dict[ObjectKey, int] = {}

    def get_many(self, keys: Sequence[ObjectKey]) -> dict[ObjectKey, KubeObject]:
        """Existing objects by key: a list per kind and namespace where several are wanted, a GET
        where only a few are (a list would read the whole namespace for one object)."""
        groups: dict[tuple[str, str, str], list[ObjectKey]] = {}
        for key in keys:
            groups.setdefault((key.group, key.kind, key.namespace), []).append(key)
        found: dict[ObjectKey, KubeObject] = {}
        for (group, kind, namespace), wanted in groups.items():
            info = self.api.lookup(group, kind)
            if info is None:
                continue
            cached = self._cached(info, namespace, wanted)
            if cached is not None:
                found.update(cached)
                continue
            read = self._read(info, namespace, wanted)
            self._floor.update((key, _generation(obj)) for key, obj in read.items())
            found.update(read)
        return found

    def _cached(
        self, info: ResourceInfo, namespace: str, wanted: list[ObjectKey]
    ) -> dict[ObjectKey, KubeObject] | None:
        """The watch's copies (labelled as the environment's, as all it applied is), once the API
        server has answered for each and none is older than that answer; else None (read them)."""
        if self._watched is None or any(key not in self._floor for key in wanted):
            return None
        objects = self._watched.watched(self._environment, info, namespace)
        if objects is None:
            return None
        want = set(wanted)
        copies = {key: obj for obj in objects if (key := ObjectKey.of(obj)) in want}
        if len(copies) < len(want) or any(_generation(obj) < self._floor[key] for key, obj in copies.items()):
            return None
        return copies

    def _read(self, info: ResourceInfo, namespace: str, wanted: list[ObjectKey]) -> dict[ObjectKey, KubeObject]:
        kube = self.api.kube
        if len(wanted) <= GET_RATHER_THAN_LIST:
            return {k: obj for k in wanted if (obj := kube.get(info, namespace, k.name)) is not None}
        want = set(wanted)
        return {key: obj for obj in kube.list(info, namespace=namespace or None) if (key := ObjectKey.of(obj)) in want}

    def list_pods(self, namespace: str, selector: dict[str, str]) -> list[KubeObject]:
        label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        pods = self.api.resource("", "Pod")
        return self.api.kube.list(pods, namespace=namespace, label_selector=label_selector or None)


def _generation(obj: KubeObject) -> int:
    return int((obj.get("metadata") or {}).get("generation") or 0)
