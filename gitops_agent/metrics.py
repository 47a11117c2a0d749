"""Prometheus metrics of the daemon, rendered from pass results (never from log lines).

Each daemon owns a registry (not the client's global one), so tests and several agents in one
process never share counters. Kubernetes API requests are read from the agent's per-client
counters at scrape time rather than copied on every request. The GitHub client reports its
requests through ``count_github_request`` (the seam for the reporting adapters).

Names (all prefixed ``gitops_agent_``):

    reconcile_duration_seconds{environment}                    histogram
    passes_total{environment,outcome}                          counter
    objects_applied_total{environment,action}                  counter (created, configured)
    objects_pruned_total{environment}                          counter
    drifted_objects{environment,classification}                gauge (expected, unexpected)
    last_successful_sync_timestamp_seconds{environment}        gauge
    errors_total{environment,reason}                           counter
    kubernetes_requests_total{verb}                            counter
    github_requests_total{verb,code}                           counter
    leader                                                     gauge (1 while this replica leads)
    owned_environments                                         gauge (environments whose passes this replica runs)
    git_cache_bytes                                            gauge (disk usage of the git cache, as du counts)
    git_pull_refs                                              gauge (pull-request heads kept for previews)
    watch_cache_objects{environment}                           gauge (live objects this replica's watches hold)
    watch_cache_watches                                        gauge (watches this replica keeps open)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gitops_agent.core.drift import DriftCounts
from gitops_agent.core.git_cache import CacheStats
from gitops_agent.model import Action
from gitops_agent.reconcile import PassResult

PREFIX = "gitops_agent_"
CONTENT_TYPE = CONTENT_TYPE_LATEST
#: passes take from a second (nothing changed) to minutes (rollouts, many objects)
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class _RequestCounts(Collector):
    """``kubernetes_requests_total``: read from the clients' own counters when scraped."""

    def __init__(self, counts: Callable[[], Mapping[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            PREFIX + "kubernetes_requests", "Kubernetes API requests sent, by verb.", labels=["verb"]
        )
        for verb, n in sorted(self._counts().items()):
            family.add_metric([verb], n)
        yield family


class _WatchCache(Collector):
    """``watch_cache_objects`` and ``watch_cache_watches``: read from the watch cache when scraped."""

    def __init__(self, sizes: Callable[[], Mapping[str, int]], watches: Callable[[], int]) -> None:
        self._sizes, self._watches = sizes, watches

    def collect(self) -> Iterator[GaugeMetricFamily]:
        objects = GaugeMetricFamily(
            PREFIX + "watch_cache_objects", "Live objects the watch cache holds.", labels=["environment"]
        )
        for env, n in sorted(self._sizes().items()):
            objects.add_metric([env], n)
        yield objects
        yield GaugeMetricFamily(PREFIX + "watch_cache_watches", "Watches kept open.", value=self._watches())


class Metrics:
    """The daemon's metrics; ``observe`` takes each pass result."""

    def __init__(self, kubernetes_requests: Callable[[], Mapping[str, int]] = dict) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.duration = Histogram(
            PREFIX + "reconcile_duration_seconds", "Duration of a pass, by environment.", ["environment"],
            registry=r, buckets=DURATION_BUCKETS,
        )  # fmt: skip
        self.passes = Counter(PREFIX + "passes", "Passes run, by outcome.", ["environment", "outcome"], registry=r)
        self.applied = Counter(
            PREFIX + "objects_applied", "Objects created or configured.", ["environment", "action"], registry=r
        )
        self.pruned = Counter(PREFIX + "objects_pruned", "Objects pruned.", ["environment"], registry=r)
        self.drifted = Gauge(
            PREFIX + "drifted_objects", "Drifted objects at the last pass.", ["environment", "classification"],
            registry=r,
        )  # fmt: skip
        self.last_success = Gauge(
            PREFIX + "last_successful_sync_timestamp_seconds", "Unix time of the last successful pass.",
            ["environment"], registry=r,
        )  # fmt: skip
        self.errors = Counter(PREFIX + "errors", "Failed passes, by reason.", ["environment", "reason"], registry=r)
        self.github_requests = Counter(
            PREFIX + "github_requests", "GitHub API requests, by verb and HTTP status.", ["verb", "code"], registry=r
        )
        self.leader = Gauge(PREFIX + "leader", "1 while this replica holds the leader lease.", registry=r)
        self.owned = Gauge(PREFIX + "owned_environments", "Environments whose passes this replica runs.", registry=r)
        self.git_cache_bytes = Gauge(PREFIX + "git_cache_bytes", "Disk usage of the git cache.", registry=r)
        self.git_pull_refs = Gauge(PREFIX + "git_pull_refs", "Pull-request heads kept for previews.", registry=r)
        r.register(_RequestCounts(kubernetes_requests))

    def observe(self, result: PassResult, *, duration_s: float, now: float) -> None:
        """Records one pass; ``now`` is the Unix time it ended."""
        env = result.environment
        self.duration.labels(env).observe(duration_s)
        self.passes.labels(env, result.outcome).inc()
        for sync in (result.sync, result.repaired):
            if sync is None or sync.dry_run:
                continue
            changes = sync.changes
            for action in (Action.CREATED, Action.CONFIGURED):
                self.applied.labels(env, action.value).inc(changes.count(action))
            self.pruned.labels(env).inc(changes.count(Action.PRUNED))
        drift = DriftCounts.of(result.drift)
        self.drifted.labels(env, "unexpected").set(drift.unexpected)
        self.drifted.labels(env, "expected").set(drift.expected)
        if result.ok:
            self.last_success.labels(env).set(now)
        else:
            self.errors.labels(env, result.reason or "Error").inc()

    def count_github_request(self, verb: str, code: int) -> None:
        """For the GitHub client: one request sent (``verb`` is the HTTP method; ``code`` its status,
        0 when no answer came)."""
        self.github_requests.labels(verb.upper(), str(code)).inc()

    def observe_git_cache(self, stats: CacheStats) -> None:
        """For ``git_hygiene``: the git cache as just measured."""
        self.git_cache_bytes.set(stats.bytes)
        self.git_pull_refs.set(stats.pull_refs)

    def read_watch_cache(self, sizes: Callable[[], Mapping[str, int]], watches: Callable[[], int]) -> None:
        """For the daemon: the watch cache's size, read at every scrape (``cluster.watch.WatchCache``)."""
        self.registry.register(_WatchCache(sizes, watches))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
