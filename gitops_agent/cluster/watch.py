"""Watch-driven live state: per environment, per kind and namespace it manages, a list+watch of the
objects carrying its label (``core.live_cache`` holds the pure rules).

- What to watch is learned from the drift check itself: its labelled lists (``read.read_labelled``)
  name the kinds and namespaces the environment needs; the first check reads them live and starts
  their watches, later checks read the cache once every one of them is synced (0 requests).
- Each watch runs on a daemon thread: list (resourceVersion), then watch from it with bookmarks and
  a server-side timeout, re-watching from the last resourceVersion seen; a 410 Gone or any error
  re-lists (after a backoff on errors), and a re-list that finds objects changed meanwhile counts
  as a change, so nothing is missed while the API server was away. While a watch is broken its
  target is not synced and reads go to the API server.
- Someone else's change to a managed object (``Change.THEIRS``) asks for a pass of that environment
  alone after a short debounce; the agent's own applies (its field manager's latest write) do not,
  so a repair never triggers another pass.
- Watches run only for the environments this replica reconciles (``set_environments``); a store
  holds only its label-selected objects, trimmed to what drift reads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from gitops_agent.adapters.kube import KubeClient, ResourceInfo
from gitops_agent.core.live_cache import Change, Store, WatchTarget, gone
from gitops_agent.core.prepare import ENV_LABEL
from gitops_agent.model import KubeObject

log = logging.getLogger(__name__)

#: (resource, namespace): one labelled list, as ``read.read_labelled`` groups them
Group = tuple[ResourceInfo, str]
#: (known, object): known False until the watch is synced
Cached = tuple[bool, KubeObject | None]


def _nobody(env: str) -> None:
    """A ledger's change asks for no pass."""


@dataclass(frozen=True)
class WatchOptions:
    #: the server ends each watch after this long; it is re-watched from the last resourceVersion
    watch_timeout_s: int = 300
    #: a change waits this long for more before it asks for a pass (a `kubectl apply` of several)
    debounce_s: float = 0.2
    #: after a failed list or watch: the first wait, doubled up to the most
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    #: how often ownership is asked again, to stop the watches of environments gone elsewhere
    reap_s: float = 2.0


class _Watcher:
    """One target's list+watch loop on a daemon thread."""

    def __init__(
        self,
        env: str,
        kube: KubeClient,
        info: ResourceInfo,
        namespace: str,
        field_manager: str,
        notify: Callable[[str], None],
        options: WatchOptions,
        field_selector: str | None = None,
    ) -> None:
        """Objects labelled as ``env``'s, or with ``field_selector`` the one it names (a ledger)."""
        self.env, self.kube, self.info, self.namespace = env, kube, info, namespace
        self._labels = None if field_selector else f"{ENV_LABEL}={env}"
        self._fields = field_selector
        self.store = Store(field_manager)
        self.lock = threading.Lock()
        self.healthy = False  # listed, and watching since: reads may use the store
        self.stopped = threading.Event()
        self._notify, self._options = notify, options
        self._end_watch: Callable[[], None] | None = None  # ends the watch in flight
        self._thread = threading.Thread(target=self._run, name=f"watch-{env}-{info.plural}", daemon=True)
        self._thread.start()

    def objects(self) -> list[KubeObject] | None:
        with self.lock:
            return list(self.store.objects.values()) if self.healthy else None

    def stop(self) -> None:
        """The watch in flight is cut, the thread ends, the store is dropped now."""
        self.stopped.set()
        with self.lock:
            self.healthy = False
            self.store = Store(self.store.field_manager)
            end = self._end_watch
        if end is not None:
            end()

    def _run(self) -> None:
        backoff = self._options.backoff_s
        relist = True
        while not self.stopped.is_set():
            try:
                if relist:
                    self._list()
                relist = self._watch()
                backoff = self._options.backoff_s
            except Exception as exc:  # an outage, a denied watch: back off, then list again
                if self.stopped.is_set():  # cut by ``stop``
                    return
                with self.lock:
                    self.healthy = False
                log.info("%s: watch of %s %s broke (%s); re-listing in %.1fs", self.env, self.info.plural,
                         self.namespace or "(cluster)", exc, backoff)  # fmt: skip
                relist = True
                self.stopped.wait(backoff)
                backoff = min(backoff * 2, self._options.max_backoff_s)

    def _list(self) -> None:
        items, version = self.kube.list_versioned(
            self.info, namespace=self.namespace or None, label_selector=self._labels, field_selector=self._fields
        )
        with self.lock:
            if self.stopped.is_set():
                return
            change = self.store.replace_all(items, version)
            self.healthy = True
        self._tell(change)

    def _watch(self) -> bool:
        """Watch until the server's timeout (False: re-watch) or a watch error (True: re-list)."""
        events = self.kube.watch(
            self.info,
            namespace=self.namespace or None,
            label_selector=self._labels,
            resource_version=self.store.resource_version,
            timeout_s=self._options.watch_timeout_s,
            opened=self._opened,
            field_selector=self._fields,
        )
        for kind, obj in events:
            if self.stopped.is_set():
                return False
            if kind == "ERROR":
                why = "410 Gone" if gone(obj) else str(obj.get("message", "error"))
                log.info("%s: watch of %s ended (%s); re-listing", self.env, self.info.plural, why)
                return True
            with self.lock:
                change = self.store.apply(kind, obj)
            self._tell(change)
        return False

    def _opened(self, end: Callable[[], None]) -> None:
        with self.lock:
            self._end_watch = end
        if self.stopped.is_set():  # stopped while it was being opened
            end()

    def _tell(self, change: Change) -> None:
        if change is Change.THEIRS and not self.stopped.is_set():
            self._notify(self.env)


class WatchCache:
    """The live objects of the environments this replica reconciles, kept by watches.

    ``on_change(env)`` asks for a pass of one environment (``Scheduler.trigger([env])``)."""

    def __init__(
        self,
        field_manager: str,
        on_change: Callable[[str], None],
        options: WatchOptions | None = None,
        *,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        """``owns(env)``: does this replica reconcile the environment now (``Scheduler.owns``)? Asked
        before a watch starts and every ``options.reap_s``; without it, ``set_environments`` says."""
        self.field_manager = field_manager
        self.options = options or WatchOptions()
        self._on_change = on_change
        self._owns = owns
        self._lock = threading.Lock()
        self._owned: frozenset[str] | None = None  # set_environments' set; None: ask ``owns``
        self._watchers: dict[tuple[str, WatchTarget], _Watcher] = {}
        self._ledgers: dict[str, _Watcher] = {}  # per environment: its ledger ConfigMap
        self._timers: dict[str, threading.Timer] = {}
        self._stopped = threading.Event()
        if owns is not None:
            threading.Thread(target=self._reap, name="watch-reaper", daemon=True).start()

    def set_environments(self, names: Iterable[str]) -> None:
        """The environments this replica reconciles now; the others' watches stop."""
        with self._lock:
            self._owned = frozenset(names)
        self._stop_unowned()

    def _mine(self, env: str) -> bool:
        if self._owned is not None:
            return env in self._owned
        return self._owns is not None and self._owns(env)

    def _stop_unowned(self) -> None:
        with self._lock:
            gone_ = [k for k in self._watchers if not self._mine(k[0])]
            stopped = [self._watchers.pop(k) for k in gone_]
            stopped += [self._ledgers.pop(e) for e in list(self._ledgers) if not self._mine(e)]
        for watcher in stopped:
            watcher.stop()

    def _reap(self) -> None:
        """An environment moved to another replica (or leadership was lost): its watches stop."""
        while not self._stopped.wait(self.options.reap_s):
            self._stop_unowned()

    def lists(self, env: str, kube: KubeClient, groups: Sequence[Group]) -> dict[Group, list[KubeObject]] | None:
        """The labelled objects of each group from the cache, or None unless every group is synced.
        Also what the environment needs watched: watches start for new groups, stop for others."""
        wanted = {WatchTarget(info.group, info.kind, ns): (info, ns) for info, ns in groups}
        with self._lock:
            if not self._mine(env):
                return None
            stale = [k for k in self._watchers if k[0] == env and k[1] not in wanted]
            stopped = [self._watchers.pop(k) for k in stale]
            for target, (info, ns) in wanted.items():
                if (env, target) not in self._watchers:
                    self._watchers[(env, target)] = _Watcher(
                        env, kube, info, ns, self.field_manager, self._changed, self.options
                    )
            watchers = {target: self._watchers[(env, target)] for target in wanted}
        for watcher in stopped:
            watcher.stop()
        out: dict[Group, list[KubeObject]] = {}
        for target, watcher in watchers.items():
            objects = watcher.objects()
            if objects is None:
                return None
            out[wanted[target]] = objects
        return out

    def watched(self, env: str, info: ResourceInfo, namespace: str) -> list[KubeObject] | None:
        """The environment's labelled objects of one kind and namespace, as its synced watch holds
        them (workloads with their status); None when there is no such watch or it is not synced.
        Starts and stops nothing (``lists``, the drift check, says what is watched)."""
        with self._lock:
            watcher = self._watchers.get((env, WatchTarget(info.group, info.kind, namespace)))
        return None if watcher is None else watcher.objects()

    def ledger(self, env: str, kube: KubeClient, info: ResourceInfo, namespace: str, name: str) -> Cached:
        """The environment's ledger ConfigMap from its watch (``(True, None)``: there is none), or
        ``(False, None)`` until that watch is synced (then it starts). Its changes ask for no pass:
        the agent writes it on every apply."""
        with self._lock:
            if not self._mine(env):
                return False, None
            watcher = self._ledgers.get(env)
            if watcher is None:
                selector = f"metadata.name={name}"
                watcher = _Watcher(
                    env, kube, info, namespace, self.field_manager, _nobody, self.options, field_selector=selector
                )
                self._ledgers[env] = watcher
        objects = watcher.objects()
        if objects is None:
            return False, None
        return True, next((o for o in objects if (o.get("metadata") or {}).get("name") == name), None)

    def synced(self, env: str) -> bool:
        """Every watch of the environment has listed and is watching."""
        with self._lock:
            mine = [w for (e, _), w in self._watchers.items() if e == env]
            mine += [w for e, w in self._ledgers.items() if e == env]
        return bool(mine) and all(w.healthy for w in mine)  # read without parsing what they hold

    def object_count(self) -> int:
        """Objects held over every watch: what memory follows."""
        return sum(self.sizes().values())

    def sizes(self) -> dict[str, int]:
        """Objects held per environment (its ledger included), for /status and /metrics."""
        with self._lock:
            watchers = [*self._watchers.items(), *(((e, None), w) for e, w in self._ledgers.items())]
        sizes: dict[str, int] = {}
        for (env, _), watcher in watchers:
            sizes[env] = sizes.get(env, 0) + len(watcher.store.objects)
        return sizes

    def watch_count(self) -> int:
        """Watches open (or re-listing): one per environment, kind and namespace, and per ledger."""
        with self._lock:
            return len(self._watchers) + len(self._ledgers)

    def stop(self) -> None:
        self._stopped.set()
        self.set_environments(())
        with self._lock:
            timers, self._timers = list(self._timers.values()), {}
        for timer in timers:
            timer.cancel()

    def _changed(self, env: str) -> None:
        """Debounced: one pass for a burst of changes."""
        with self._lock:
            if not self._mine(env) or env in self._timers:
                return
            timer = threading.Timer(self.options.debounce_s, self._fire, args=[env])
            timer.daemon = True
            self._timers[env] = timer
        timer.start()

    def _fire(self, env: str) -> None:
        with self._lock:
            self._timers.pop(env, None)
            owned = self._mine(env)
        if owned:
            log.info("%s: a managed object changed; passing it now", env)
            self._on_change(env)
