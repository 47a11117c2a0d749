"""Waiting for CustomResourceDefinitions: Established, then served by discovery, so the custom
resources after them can be dry-run and applied."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from gitops_agent.cluster.api import ClusterApi
from gitops_agent.core.prepare import PreparedObject
from gitops_agent.errors import ClusterError

CRD_ESTABLISHED_TIMEOUT_S = 60.0
POLL_S = 0.2

Clock = Callable[[], float]


def wait_for_crds(
    api: ClusterApi,
    crds: Sequence[PreparedObject],
    *,
    timeout_s: float = CRD_ESTABLISHED_TIMEOUT_S,
    clock: Clock = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    if crds:
        wait_established(api, crds, timeout_s=timeout_s, clock=clock, sleep=sleep)
        wait_discovered(api, crds, timeout_s=timeout_s, clock=clock, sleep=sleep)


def wait_established(
    api: ClusterApi, crds: Sequence[PreparedObject], *, timeout_s: float, clock: Clock, sleep: Callable[[float], None]
) -> None:
    info = api.resource("apiextensions.k8s.io", "CustomResourceDefinition")
    deadline = clock() + timeout_s
    pending = {p.key.name for p in crds}
    while pending:
        for name in sorted(pending):
            crd = api.kube.get(info, "", name) or {}
            conditions = (crd.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                pending.discard(name)
        if pending and clock() > deadline:
            raise ClusterError(
                f"CustomResourceDefinition/{sorted(pending)[0]}: not Established after "
                f"{timeout_s:.0f}s; its custom resources were not applied"
            )
        if pending:
            sleep(POLL_S)


def wait_discovered(
    api: ClusterApi, crds: Sequence[PreparedObject], *, timeout_s: float, clock: Clock, sleep: Callable[[float], None]
) -> None:
    """Established is not yet served: discovery can lag a moment behind it, and a custom
    resource looked up before then would read as an unknown kind."""
    specs = [p.manifest.get("spec") or {} for p in crds]
    wanted = {(str(sp.get("group")), str((sp.get("names") or {}).get("kind"))) for sp in specs}
    deadline = clock() + timeout_s
    while True:
        discovery = api.discovery(refresh=True)
        missing = sorted(gk for gk in wanted if discovery.lookup(*gk) is None)
        if not missing:
            return
        if clock() > deadline:
            raise ClusterError(f"{missing[0][1]}.{missing[0][0]}: Established but not served by discovery")
        sleep(POLL_S)
