"""The agent of one config file: its snapshots, its clusters, the passes and the reads over them.

Built by ``composition.build_agent`` with every collaborator in place; what the command line, the
daemon, previews and promotions call. It decides nothing itself: passes are ``reconcile``, reads are
``queries``.
"""

from __future__ import annotations

from gitops_agent.cluster.clients import Clusters
from gitops_agent.config import Config, EnvironmentConfig
from gitops_agent.errors import GitOpsError
from gitops_agent.model import DesiredObject, ObjectHealth
from gitops_agent.queries import EnvironmentStatus, HistoryEntry, PrEnvironmentStatus, Queries
from gitops_agent.reconcile import PassRequest, PassResult, Reconciler
from gitops_agent.snapshots import Snapshots


class Agent:
    def __init__(
        self, config: Config, *, snapshots: Snapshots, clusters: Clusters, reconciler: Reconciler, queries: Queries
    ) -> None:
        self.config = config
        self.snapshots = snapshots
        self.clusters = clusters
        self.reconciler = reconciler
        self.queries = queries

    def environments(self, name: str | None) -> tuple[EnvironmentConfig, ...]:
        return (self.config.environment(name),) if name else self.config.environments

    # --- the repository --------------------------------------------------------------------------

    def fetch(self) -> GitOpsError | None:
        return self.snapshots.fetch()

    def target_commit(self, env: EnvironmentConfig) -> str:
        return self.snapshots.target_commit(env)

    def snapshot(self, env: EnvironmentConfig, commit: str) -> tuple[DesiredObject, ...]:
        return self.snapshots.snapshot(env, commit)

    # --- passes ----------------------------------------------------------------------------------

    def reconcile(self, env: EnvironmentConfig, request: PassRequest | None = None) -> PassResult:
        return self.reconciler.reconcile(env, request)

    def sync_all(
        self, name: str | None = None, *, dry_run: bool = False, explicit: bool = False, force: bool = False
    ) -> list[PassResult]:
        """Fetch once, then reconcile each environment on its own."""
        fetch_error = self.fetch()
        request = PassRequest(dry_run=dry_run, explicit=explicit, force=force, fetch_error=fetch_error)
        return [self.reconcile(env, request) for env in self.environments(name)]

    # --- reads -----------------------------------------------------------------------------------

    def drift_all(self, name: str | None = None) -> list[PassResult]:
        """Drift of each environment against the commit it last applied; writes nothing."""
        fetch_error = self.fetch()
        return [self.queries.drift(env, fetch_error) for env in self.environments(name)]

    def status(self, name: str | None = None) -> list[EnvironmentStatus]:
        fetch_error = self.fetch()
        return [self.queries.status(env, fetch_error) for env in self.environments(name)]

    def pull_request_environments(self) -> list[PrEnvironmentStatus] | None:
        """The live PR environments; None when no environment gets one per pull request."""
        if not self.config.pull_request_environments:
            return None
        return self.queries.pull_request_environments()

    def history(self, name: str) -> list[HistoryEntry]:
        self._fetch_or_raise()
        return self.queries.history(self.config.environment(name))

    def health(self, name: str) -> tuple[str, list[ObjectHealth]]:
        self._fetch_or_raise()
        return self.queries.health(self.config.environment(name))

    def _fetch_or_raise(self) -> None:
        error = self.fetch()
        if error is not None:
            raise error

    # --- the process -----------------------------------------------------------------------------

    def request_counts(self) -> dict[str, int]:
        return self.clusters.request_counts()

    def close(self) -> None:
        self.clusters.close()
