"""``/readyz``: is this replica ready (config loaded, repository fetched, clusters answering)?

The clusters are probed at most every ``interval_s``; a probe that raises is a reason, never an
exception in the HTTP server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from gitops_agent.adapters.kube import KubeClient, ResourceInfo
from gitops_agent.config import Config, EnvironmentConfig
from gitops_agent.errors import ForbiddenError, GitOpsError

#: answers None when every cluster answered, else why not
ClusterProbe = Callable[[], str | None]


class Readiness:
    def __init__(
        self, probe: ClusterProbe | None, *, interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._probe = probe or (lambda: None)
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._probed: tuple[float, str | None] | None = None

    def reasons(self, *, fetched: bool, fetch_error: GitOpsError | None) -> tuple[str, ...]:
        """Why this replica is not ready; empty when it is."""
        reasons = []
        if not fetched:
            reasons.append("the config repository was not fetched yet" + (f": {fetch_error}" if fetch_error else ""))
        problem = self.cached()
        if problem:
            reasons.append(problem)
        return tuple(reasons)

    def cached(self) -> str | None:
        with self._lock:
            if self._probed and self._clock() - self._probed[0] < self._interval_s:
                return self._probed[1]
        return self.now()

    def now(self) -> str | None:
        with self._lock:
            try:
                problem = self._probe()
            except Exception as exc:  # a probe must answer, never raise into the HTTP server
                problem = f"cluster probe failed: {exc}"
            self._probed = (self._clock(), problem)
            return problem


_NAMESPACES = ResourceInfo("", "v1", "Namespace", "namespaces", False)


def cluster_probe(kube: Callable[[EnvironmentConfig], KubeClient], config: Config) -> ClusterProbe:
    """A probe that reads the agent's namespace in each cluster: any answer, even 403, means up."""

    def probe() -> str | None:
        seen: set[str | None] = set()
        for env in config.environments:
            if env.context in seen:
                continue
            seen.add(env.context)
            try:
                kube(env).get(_NAMESPACES, "", config.agent.namespace)
            except ForbiddenError:
                continue
            except GitOpsError as exc:
                return f"cluster {env.context or '(default context)'} is not reachable: {exc}"
        return None

    return probe
