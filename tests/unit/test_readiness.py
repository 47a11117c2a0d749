"""readiness: why a replica is not ready, the clusters probed at most every interval."""

from __future__ import annotations

from gitops_agent.errors import SourceError
from gitops_agent.readiness import Readiness


def test_reasons_name_the_fetch_and_the_cluster_and_probes_are_cached() -> None:
    now, probes = [0.0], []

    def probe() -> str | None:
        probes.append(now[0])
        return "cluster prod is not reachable" if len(probes) == 1 else None

    ready = Readiness(probe, interval_s=10, clock=lambda: now[0])
    reasons = ready.reasons(fetched=False, fetch_error=SourceError("no route"))
    assert reasons == ("the config repository was not fetched yet: no route", "cluster prod is not reachable")
    now[0] = 5.0
    assert ready.reasons(fetched=True, fetch_error=None) == ("cluster prod is not reachable",)  # cached
    now[0] = 11.0
    assert ready.reasons(fetched=True, fetch_error=None) == ()
    assert probes == [0.0, 11.0]


def test_a_probe_that_raises_is_a_reason() -> None:
    def probe() -> str | None:
        raise RuntimeError("boom")

    assert Readiness(probe, interval_s=0).reasons(fetched=True, fetch_error=None) == ("cluster probe failed: boom",)
