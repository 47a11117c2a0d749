"""One cluster's API as the verbs use it: the client, its discovery (read once, refreshed on
demand) and lookups that turn an ``ObjectKey`` into the resource to call."""

from __future__ import annotations

from collections.abc import Callable

from gitops_agent.adapters.kube import Discovery, KubeClient, ResourceInfo
from gitops_agent.core.prepare import PreparedObject
from gitops_agent.errors import ClusterError, ValidationError
from gitops_agent.model import KubeObject, ObjectKey


class ClusterApi:
    def __init__(
        self,
        kube: KubeClient,
        discovery: Discovery | None = None,
        on_discover: Callable[[Discovery], None] | None = None,
        *,
        discover: Callable[[], Discovery] | None = None,
    ) -> None:
        """``discovery``: one read before (``clients.Clusters`` keeps it), used until a kind or
        version is missing from it, then read again once (a CRD added since); ``on_discover`` is
        told every discovery read; ``discover`` reads it (default: the client; ``Clusters`` shares
        one read between the passes that need it at once)."""
        self.kube = kube
        self._discovery = discovery
        self._fresh = discovery is None  # read by this view: a miss is a real miss
        self._on_discover = on_discover
        self._discover = discover or kube.discover

    def discovery(self, refresh: bool = False) -> Discovery:
        if self._discovery is None or refresh:
            self._discovery, self._fresh = self._discover(), True
            if self._on_discover is not None:
                self._on_discover(self._discovery)
        return self._discovery

    def lookup(self, group: str, kind: str) -> ResourceInfo | None:
        info = self.discovery().lookup(group, kind)
        if info is None and not self._fresh:
            info = self.discovery(refresh=True).lookup(group, kind)
        return info

    def resource(self, group: str, kind: str) -> ResourceInfo:
        """The resource serving a kind the agent needs (ConfigMap, Namespace…); ClusterError if none."""
        info = self.lookup(group, kind)
        if info is None:
            raise ClusterError(f"the API server does not serve {kind} in group {group or 'core'!r}")
        return info

    def resource_for(self, p: PreparedObject) -> ResourceInfo:
        """The resource serving a snapshot's object at its apiVersion; ValidationError if none."""
        info = self.discovery().for_object(p.manifest)
        if info is None and not self._fresh:
            info = self.discovery(refresh=True).for_object(p.manifest)
        if info is None:
            raise ValidationError(f"{p.source}: {p.key}: the API server does not serve {p.manifest.get('apiVersion')}")
        return info

    def get(self, key: ObjectKey) -> KubeObject | None:
        info = self.lookup(key.group, key.kind)
        if info is None:
            return None  # its kind is gone (CRD deleted): nothing of it is left
        return self.kube.get(info, key.namespace, key.name)
