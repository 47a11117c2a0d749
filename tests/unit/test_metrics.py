"""Metrics render from pass results and parse as Prometheus text."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from gitops_agent.cluster import ObjectPlan, SyncResult
from gitops_agent.core.drift import CHANGED, MISSING, DriftedField, ObjectDrift
from gitops_agent.metrics import Metrics
from gitops_agent.model import Action, ObjectKey
from gitops_agent.reconcile import PassResult

KEY = ObjectKey("apps", "Deployment", "prod", "web")


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, parsed back with the reference parser: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def applied(env: str, *actions: Action) -> PassResult:
    objects = tuple(ObjectPlan(ObjectKey("", "ConfigMap", env, f"c{i}"), a) for i, a in enumerate(actions))
    return PassResult(env, "abc", "applied", sync=SyncResult(env, "abc", False, objects))


def test_an_applied_pass_counts_objects_duration_and_success_time() -> None:
    m = Metrics()
    result = applied("prod", Action.CREATED, Action.CREATED, Action.CONFIGURED, Action.PRUNED, Action.UNCHANGED)
    m.observe(result, duration_s=1.2, now=1_700_000_000.0)
    s = samples(m)
    assert s[("gitops_agent_objects_applied_total", (("action", "created"), ("environment", "prod")))] == 2
    assert s[("gitops_agent_objects_applied_total", (("action", "configured"), ("environment", "prod")))] == 1
    assert s[("gitops_agent_objects_pruned_total", (("environment", "prod"),))] == 1
    assert s[("gitops_agent_reconcile_duration_seconds_count", (("environment", "prod"),))] == 1
    assert s[("gitops_agent_reconcile_duration_seconds_sum", (("environment", "prod"),))] == 1.2
    assert s[("gitops_agent_last_successful_sync_timestamp_seconds", (("environment", "prod"),))] == 1_700_000_000
    assert s[("gitops_agent_passes_total", (("environment", "prod"), ("outcome", "applied")))] == 1


def test_drift_is_a_gauge_by_classification() -> None:
    m = Metrics()
    hpa = DriftedField("/spec/replicas", 2, 5, "kube-controller-manager", "", True)
    drift = (ObjectDrift(KEY, CHANGED, (hpa,)), ObjectDrift(KEY, MISSING), ObjectDrift(KEY, MISSING))
    m.observe(PassResult("prod", "abc", "up-to-date", drift=drift), duration_s=0.1, now=1.0)
    m.observe(PassResult("dev", "abc", "up-to-date"), duration_s=0.1, now=1.0)
    s = samples(m)
    assert s[("gitops_agent_drifted_objects", (("classification", "unexpected"), ("environment", "prod")))] == 2
    assert s[("gitops_agent_drifted_objects", (("classification", "expected"), ("environment", "prod")))] == 1
    assert s[("gitops_agent_drifted_objects", (("classification", "unexpected"), ("environment", "dev")))] == 0


def test_a_failed_pass_counts_its_reason_and_keeps_the_last_success_time() -> None:
    m = Metrics()
    m.observe(applied("prod", Action.CREATED), duration_s=1, now=100.0)
    m.observe(PassResult("prod", "abc", "failed", error="x", reason="SourceUnavailable"), duration_s=1, now=200.0)
    s = samples(m)
    assert s[("gitops_agent_errors_total", (("environment", "prod"), ("reason", "SourceUnavailable")))] == 1
    assert s[("gitops_agent_last_successful_sync_timestamp_seconds", (("environment", "prod"),))] == 100


def test_kubernetes_requests_are_read_at_scrape_time_and_github_requests_counted() -> None:
    counts = {"get": 3, "apply": 1}
    m = Metrics(kubernetes_requests=lambda: counts)
    m.count_github_request("post", 201)
    m.count_github_request("POST", 201)
    counts["get"] = 7
    s = samples(m)
    assert s[("gitops_agent_kubernetes_requests_total", (("verb", "get"),))] == 7
    assert s[("gitops_agent_kubernetes_requests_total", (("verb", "apply"),))] == 1
    assert s[("gitops_agent_github_requests_total", (("code", "201"), ("verb", "POST")))] == 2


def test_two_daemons_never_share_counters() -> None:
    a, b = Metrics(), Metrics()
    a.observe(applied("prod", Action.CREATED), duration_s=1, now=1.0)
    assert ("gitops_agent_objects_applied_total", (("action", "created"), ("environment", "prod"))) not in samples(b)


def test_the_watch_cache_s_size_is_read_at_every_scrape() -> None:
    metrics = Metrics()
    sizes = {"dev": 3, "prod": 1}
    metrics.read_watch_cache(lambda: sizes, lambda: 4)
    text = metrics.render().decode()
    assert 'gitops_agent_watch_cache_objects{environment="dev"} 3.0' in text
    assert 'gitops_agent_watch_cache_objects{environment="prod"} 1.0' in text
    assert "gitops_agent_watch_cache_watches 4.0" in text
    sizes.pop("prod")
    assert 'watch_cache_objects{environment="prod"}' not in metrics.render().decode()  # moved away: gone
