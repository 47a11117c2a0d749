"""The Kubernetes API, as the agent needs it: discovery, list, get, server-side apply, delete.

A thin adapter over the ``kubernetes`` client's HTTP layer rather than its typed models: the agent
handles arbitrary kinds (custom resources included) as plain dicts, and server-side apply needs the
``application/apply-patch+yaml`` content type that the typed APIs don't expose. Every request is
counted by verb (tests and metrics read the counts), and every library exception becomes an error
of our own tree, with a message that names the object.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import quote

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from gitops_agent.core.secret_scrub import scrub_secret_values
from gitops_agent.errors import (
    ClusterError,
    ConfigError,
    ConflictError,
    ForbiddenError,
    GitOpsError,
    ValidationError,
)
from gitops_agent.model import KubeObject, ObjectKey, api_group

_AGGREGATED_DISCOVERY = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json"
)
_TIMEOUT = (5.0, 60.0)  # connect, read
#: connections kept open per client (watches hold one each on top, for their lifetime), and the
#: most requests one client has in flight: passes of many environments at once (each with its
#: dry-runs side by side) queue here rather than swamp the API server until requests time out
POOL_SIZE = 64


@dataclass(frozen=True)
class ResourceInfo:
    """Where a kind lives in the API: its preferred version, plural and scope."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str] = frozenset()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        return base


class Discovery:
    """The kinds the API server serves, by (group, kind)."""

    def __init__(self, resources: Iterable[ResourceInfo]) -> None:
        self._by_group_kind: dict[tuple[str, str], ResourceInfo] = {}
        self._served: set[tuple[str, str, str]] = set()
        for info in resources:
            # the first version listed for a group is the server's preferred one
            self._by_group_kind.setdefault((info.group, info.kind), info)
            self._served.add((info.group, info.version, info.kind))

    def lookup(self, group: str, kind: str) -> ResourceInfo | None:
        return self._by_group_kind.get((group, kind))

    def for_object(self, obj: KubeObject) -> ResourceInfo | None:
        """The resource for an object, at the object's own apiVersion when served."""
        info = self.lookup(api_group(str(obj.get("apiVersion", ""))), str(obj.get("kind", "")))
        version = str(obj.get("apiVersion", "")).rsplit("/", 1)[-1]
        if info is None or (info.group, version, info.kind) not in self._served:
            return None
        if info.version != version:
            return ResourceInfo(info.group, version, info.kind, info.plural, info.namespaced, info.verbs)
        return info

    def __len__(self) -> int:
        return len(self._by_group_kind)

    def served(self) -> frozenset[tuple[str, str, str]]:
        """Every (group, version, kind) served: what helm's ``.Capabilities.APIVersions`` lists."""
        return frozenset(self._served)


class KubeClient:
    """One cluster; safe to share between threads (urllib3's pool is, and the counters are locked)."""

    def __init__(self, api_client: k8s_client.ApiClient, *, environment_identity: str | None = None) -> None:
        self._api = api_client
        #: the environment's ServiceAccount this client acts as, named in permission errors
        self.environment_identity = environment_identity
        self._lock = threading.Lock()
        self._in_flight = threading.BoundedSemaphore(POOL_SIZE)
        self.requests: Counter[str] = Counter()
        #: the latest writes, (verb, object): for tests, and for "what did that pass do?"
        self.writes: deque[tuple[str, ObjectKey]] = deque(maxlen=1000)

    @classmethod
    def connect(
        cls,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        impersonate: str | None = None,
        for_environment: bool = False,
    ) -> KubeClient:
        """``--kubeconfig``/``$KUBECONFIG``, else the in-cluster service account, else ~/.kube/config.
        ``impersonate``: act as this user (``Impersonate-User``), e.g. the agent's ServiceAccount, so
        tests prove the shipped RBAC is enough."""
        configuration = k8s_client.Configuration()
        explicit = kubeconfig or os.environ.get("KUBECONFIG")
        try:
            if explicit:
                k8s_config.load_kube_config(config_file=explicit, context=context, client_configuration=configuration)
            elif os.environ.get("KUBERNETES_SERVICE_HOST") and context is None:
                k8s_config.load_incluster_config(client_configuration=configuration)
            else:
                k8s_config.load_kube_config(context=context, client_configuration=configuration)
        except (ConfigException, OSError, TypeError) as exc:
            where = explicit or "~/.kube/config"
            ctx = f" (context {context!r})" if context else ""
            raise ConfigError(f"{where}{ctx}: cannot load cluster credentials: {exc}") from exc
        configuration.retries = 0  # the agent retries whole passes; don't hide an outage for minutes
        # the client's default keeps cpu_count * 5 connections: a pass's 32 dry-runs or applies in
        # flight, and passes of several environments at once, would open a TLS connection per
        # request beyond that and throw it away
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, POOL_SIZE)
        api = k8s_client.ApiClient(configuration)
        if impersonate:
            api.set_default_header("Impersonate-User", impersonate)
        return cls(api, environment_identity=impersonate if for_environment else None)

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    def close(self) -> None:
        self._api.close()

    # --- discovery ------------------------------------------------------------------------

    def discover(self) -> Discovery:
        """All served kinds in two requests (aggregated discovery), or one per group on old servers."""
        core = self._request("GET", "/api", accept=_AGGREGATED_DISCOVERY, verb="discovery")
        groups = self._request("GET", "/apis", accept=_AGGREGATED_DISCOVERY, verb="discovery")
        if core.get("kind") == "APIGroupDiscoveryList" and groups.get("kind") == "APIGroupDiscoveryList":
            return Discovery([*_aggregated_resources(core), *_aggregated_resources(groups)])
        return Discovery(self._legacy_discovery(groups))

    def server_version(self) -> str:
        """The API server's ``gitVersion`` (``v1.36.3``): what helm's ``.Capabilities.KubeVersion`` says."""
        return str(self._request("GET", "/version", verb="discovery").get("gitVersion", ""))

    def _legacy_discovery(self, groups: KubeObject) -> list[ResourceInfo]:
        found = self._legacy_group("", "v1", "/api/v1")
        for group in groups.get("groups", []):
            preferred = group.get("preferredVersion", {}).get("version")
            for version in [v["version"] for v in group.get("versions", [])]:
                if version == preferred:
                    found += self._legacy_group(group["name"], version, f"/apis/{group['name']}/{version}")
        return found

    def _legacy_group(self, group: str, version: str, path: str) -> list[ResourceInfo]:
        body = self._request("GET", path, verb="discovery")
        return [
            ResourceInfo(group, version, r["kind"], r["name"], bool(r.get("namespaced")), frozenset(r.get("verbs", [])))
            for r in body.get("resources", [])
            if "/" not in r["name"]
        ]

    # --- reads ----------------------------------------------------------------------------

    def get(self, info: ResourceInfo, namespace: str, name: str) -> KubeObject | None:
        path = info.path(namespace or None, name)
        try:
            return self._request("GET", path, verb="get")
        except _NotFound:
            return None

    def list(
        self, info: ResourceInfo, *, namespace: str | None = None, label_selector: str | None = None
    ) -> list[KubeObject]:
        """Every object of a kind (in a namespace), with apiVersion/kind filled in on each item."""
        query = {"labelSelector": label_selector} if label_selector else {}
        items: list[KubeObject] = []
        cont: str | None = None
        while True:
            page = dict(query, limit="500", **({"continue": cont} if cont else {}))
            try:
                body = self._request("GET", info.path(namespace), query=page, verb="list")
            except _NotFound:
                return []
            for item in body.get("items", []):
                item.setdefault("apiVersion", info.api_version)
                item.setdefault("kind", info.kind)
                items.append(item)
            cont = (body.get("metadata") or {}).get("continue")
            if not cont:
                return items

    def list_versioned(
        self,
        info: ResourceInfo,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[builtins.list[KubeObject], str]:
        """A list and the collection's resourceVersion, to watch from (the watch cache's list)."""
        query = _selectors(label_selector, field_selector)
        body = self._request("GET", info.path(namespace), query=query, verb="list-watch")
        items = body.get("items", [])
        for item in items:
            item.setdefault("apiVersion", info.api_version)
            item.setdefault("kind", info.kind)
        return items, str((body.get("metadata") or {}).get("resourceVersion", ""))

    def watch(
        self,
        info: ResourceInfo,
        *,
        namespace: str | None,
        label_selector: str | None,
        resource_version: str,
        timeout_s: int,
        opened: Callable[[Callable[[], None]], None] | None = None,
        field_selector: str | None = None,
    ) -> Iterator[tuple[str, KubeObject]]:
        """Watch events (type, object) from ``resource_version`` with bookmarks, until the server
        ends the watch (``timeout_s``) or the connection drops (ClusterError). ``opened`` is given a
        function that ends the watch from another thread (a watch no longer wanted)."""
        query = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_s),
            **_selectors(label_selector, field_selector),
        }
        _, url, headers, _, _ = self._api.param_serialize(
            "GET", info.path(namespace), query_params=list(query.items()),
            header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
        )  # fmt: skip
        with self._lock:
            self.requests["watch"] += 1
        try:
            response = self._api.call_api("GET", url, header_params=headers, _request_timeout=(5.0, timeout_s + 10.0))
            if response.status >= 400:
                raise _api_error(response.status, response.read(), info.path(namespace), self.environment_identity)
            if opened is not None:
                opened(_cutter(response.response))
            yield from _events(response.response, info)
        except urllib3.exceptions.HTTPError as exc:
            raise ClusterError(f"watch of {info.plural} at {self.host} ended: {_root_cause(exc)}") from exc

    # --- writes ---------------------------------------------------------------------------

    def apply(
        self,
        obj: KubeObject,
        info: ResourceInfo,
        *,
        field_manager: str,
        dry_run: bool = False,
        force: bool = True,
    ) -> KubeObject:
        """Server-side apply; ``dry_run`` asks the server what it would store without storing it."""
        meta = obj.get("metadata") or {}
        query = {"fieldManager": field_manager, "force": "true" if force else "false"}
        if dry_run:
            query["dryRun"] = "All"
        try:
            return self._apply_request(obj, info, query, dry_run)
        except _NotFound as exc:
            raise ValidationError(
                f"{ObjectKey.of(obj)}: the API server has no {info.plural} in {info.api_version}"
                + (f" in namespace {meta.get('namespace')!r}" if meta.get("namespace") else "")
                + " (HTTP 404)"
            ) from exc

    def _apply_request(self, obj: KubeObject, info: ResourceInfo, query: dict[str, str], dry_run: bool) -> KubeObject:
        meta = obj.get("metadata") or {}
        return self._request(
            "PATCH",
            info.path(meta.get("namespace"), meta["name"]),
            query=query,
            body=json.dumps(obj).encode(),
            content_type="application/apply-patch+yaml",
            verb="apply-dry-run" if dry_run else "apply",
            subject=ObjectKey.of(obj),
            sent=obj,
        )

    def create(self, obj: KubeObject, info: ResourceInfo, *, field_manager: str, dry_run: bool = False) -> KubeObject:
        """Create; ConflictError when it already exists (Leases: two replicas race to create).
        ``dry_run``: validated as a new object, stored nowhere (a hook about to be re-created)."""
        meta = obj.get("metadata") or {}
        query = {"fieldManager": field_manager, **({"dryRun": "All"} if dry_run else {})}
        return self._request(
            "POST",
            info.path(meta.get("namespace")),
            query=query,
            body=obj,
            content_type="application/json",
            verb="create-dry-run" if dry_run else "create",
            subject=ObjectKey.of(obj),
            sent=obj,
        )

    def replace(self, obj: KubeObject, info: ResourceInfo, *, field_manager: str) -> KubeObject:
        """Update with optimistic concurrency: ``metadata.resourceVersion`` must be current, else
        ConflictError (Leases: two replicas race to renew or take over). An object deleted since it
        was read is a conflict too: the caller reads again (and creates it)."""
        meta = obj.get("metadata") or {}
        try:
            return self._request(
                "PUT",
                info.path(meta.get("namespace"), meta["name"]),
                query={"fieldManager": field_manager},
                body=obj,
                content_type="application/json",
                verb="update",
                subject=ObjectKey.of(obj),
                sent=obj,
            )
        except _NotFound as exc:
            raise ConflictError(f"{ObjectKey.of(obj)}: deleted since it was read") from exc

    def merge_patch(
        self, info: ResourceInfo, namespace: str, name: str, patch: KubeObject, *, field_manager: str
    ) -> None:
        """A JSON merge patch (fields set to null are removed); a no-op when the object is gone."""
        try:
            self._request(
                "PATCH",
                info.path(namespace or None, name),
                query={"fieldManager": field_manager},
                body=patch,
                content_type="application/merge-patch+json",
                verb="patch",
                subject=ObjectKey(info.group, info.kind, namespace, name),
            )
        except _NotFound:
            return

    def delete(
        self, info: ResourceInfo, namespace: str, name: str, *, propagation: str = "Background", uid: str = ""
    ) -> bool:
        """Delete; False when it was already gone. With ``uid``, only that object: one recreated
        since under the same name is left alone (ConflictError)."""
        body: KubeObject = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self._request(
                "DELETE",
                info.path(namespace or None, name),
                body=body,
                content_type="application/json",
                verb="delete",
                subject=ObjectKey(info.group, info.kind, namespace, name),
            )
        except _NotFound:
            return False
        return True

    # --- plumbing -------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: bytes | KubeObject | None = None,  # bytes are sent as is; a dict as JSON by the client
        content_type: str | None = None,
        accept: str = "application/json",
        verb: str,
        subject: ObjectKey | None = None,
        sent: KubeObject | None = None,  # the object written: its Secret values are scrubbed from errors
    ) -> KubeObject:
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        _, url, headers, _, _ = self._api.param_serialize(
            method,
            path,
            query_params=list((query or {}).items()),
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        with self._lock:  # passes of several environments, and one pass's workers, share a client
            self.requests[verb] += 1
            if method != "GET" and not verb.endswith("dry-run") and subject is not None:
                self.writes.append((verb, subject))
        try:
            with self._in_flight:
                response = self._api.call_api(method, url, header_params=headers, body=body, _request_timeout=_TIMEOUT)
                data = response.read()
        except urllib3.exceptions.HTTPError as exc:
            raise ClusterError(f"cannot reach the Kubernetes API at {self.host}: {_root_cause(exc)}") from exc
        if response.status == 404:
            raise _NotFound(path)
        if response.status >= 400:
            raise _api_error(response.status, data, subject or path, self.environment_identity, sent)
        try:
            parsed: KubeObject = json.loads(data or b"{}")
        except ValueError as exc:
            raise ClusterError(f"{subject or path}: the API server answered with something that is not JSON") from exc
        return parsed


class _NotFound(Exception):
    pass


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    query = {"labelSelector": label_selector} if label_selector else {}
    return query | ({"fieldSelector": field_selector} if field_selector else {})


def _cutter(response: urllib3.BaseHTTPResponse) -> Callable[[], None]:
    """Ends a watch from another thread; one that ended on its own meanwhile has nothing to cut."""

    def cut() -> None:
        with contextlib.suppress(RuntimeError, ValueError):  # urllib3: back in the pool, or closed
            response.shutdown()

    return cut


def _events(stream: Iterable[bytes], info: ResourceInfo) -> Iterator[tuple[str, KubeObject]]:
    """One JSON event per line of a watch response."""
    pending = b""
    for chunk in stream:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            event = json.loads(line)
            obj = event.get("object") or {}
            if event.get("type") not in ("ERROR", "BOOKMARK"):
                obj.setdefault("apiVersion", info.api_version)
                obj.setdefault("kind", info.kind)
            yield str(event.get("type", "")), obj


def _api_error(
    status: int, data: bytes, subject: object, identity: str | None = None, sent: KubeObject | None = None
) -> GitOpsError:
    try:
        detail = json.loads(data).get("message") or data.decode(errors="replace")
    except ValueError:
        detail = data.decode(errors="replace")[:300]
    # the server (or a webhook) may quote what it was sent: never let a Secret's value out
    detail = scrub_secret_values(detail, sent)
    message = f"{subject}: {detail}"
    if status == 409:
        return ConflictError(message)
    if status in (401, 403) and identity:
        return ForbiddenError(f"{message} (the environment acts as {identity}: grant it this in its Role)")
    if status in (401, 403):
        return ForbiddenError(f"{message} (grant the agent's identity this permission in its RBAC)")
    # SSA answers 500 when the object does not fit the kind's schema; it is still the manifest's fault
    if status in (400, 422) or "failed to create typed patch object" in detail:
        return ValidationError(message)
    return ClusterError(f"{message} (HTTP {status})")


def _root_cause(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)


def _aggregated_resources(body: KubeObject) -> list[ResourceInfo]:
    out = []
    for group in body.get("items", []):
        name = (group.get("metadata") or {}).get("name", "")
        for version in group.get("versions", []):
            for res in version.get("resources", []):
                kind = (res.get("responseKind") or {}).get("kind")
                if not kind:
                    continue
                out.append(
                    ResourceInfo(
                        group=name,
                        version=version["version"],
                        kind=kind,
                        plural=res["resource"],
                        namespaced=res.get("scope") == "Namespaced",
                        verbs=frozenset(res.get("verbs", [])),
                    )
                )
    return out
