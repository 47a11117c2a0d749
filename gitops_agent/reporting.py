"""Telling people: each pass becomes a GitHub commit status (chat: ``gitops_agent.chat_reporting``).

A ``PassListener`` that turns a ``PassResult`` into the pure reports of ``core.report`` and hands
them to the GitHub adapter **on a worker thread of its own** (``report_worker``): it retries with
backoff for up to two minutes, and a pass must never wait on GitHub. Per environment only the newest
report waits in line, and a failed post is logged and dropped: the next pass reports again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from gitops_agent.cluster.hooks import HookFailedError
from gitops_agent.core.drift import DriftCounts
from gitops_agent.core.helm import describe
from gitops_agent.core.ledger import FAILED
from gitops_agent.core.pass_rules import NOT_FOLLOWED, WAITING
from gitops_agent.core.report import EnvironmentReport, Phase, change_counts, commit_status, summary_counts
from gitops_agent.model import HealthStatus
from gitops_agent.reconcile import PassResult
from gitops_agent.report_worker import ReportWorker

if TYPE_CHECKING:
    from gitops_agent.adapters.github import GitHubClient

_FAILED_PHASES = {
    "RenderFailed": Phase.RENDERING_FAILED,
    "SourceUnavailable": Phase.RENDERING_FAILED,
    "ConfigInvalid": Phase.RENDERING_FAILED,
    "ValidationFailed": Phase.VALIDATION_FAILED,
}


def environment_report(result: PassResult, *, target_url: str | None = None) -> EnvironmentReport:
    """What a pass means for its commit status (pure). ``success`` needs the rollout read as
    Current: a pass that did not follow it (``sync --no-wait``) or is still following says pending."""
    drift = DriftCounts.of(result.drift)
    report = EnvironmentReport(
        environment=result.environment,
        commit=result.commit,
        phase=Phase.HEALTHY,
        changes=_changes(result),
        drift_expected=drift.expected,
        drift_unexpected=drift.unexpected,
        target_url=target_url,
        approved_by=result.running.approved_by if result.running else "",
        charts=describe(result.running.charts) if result.running else "",
    )
    if result.outcome == FAILED and result.reason != HookFailedError.reason:  # a failed hook: as a rollout
        return replace(report, phase=_FAILED_PHASES.get(result.reason, Phase.APPLY_FAILED), error=result.error)
    if result.outcome == WAITING:
        return replace(report, phase=Phase.WAITING, waiting_hint=f"gitops-agent sync --env {result.environment}")
    health = result.health
    if health is None:
        return replace(report, phase=Phase.PROGRESSING, health_message=NOT_FOLLOWED)
    if health.status is HealthStatus.FAILED:
        return replace(report, phase=Phase.ROLLOUT_FAILED, health_message=health.message)
    if health.status is not HealthStatus.CURRENT:
        return replace(report, phase=Phase.PROGRESSING, health_message=health.message)
    return report


def _changes(result: PassResult) -> str:
    """What the commit's apply did: this pass's, or (between commits) the running entry's."""
    if result.sync is not None:
        return change_counts(result.sync.changes)
    return summary_counts(result.running.summary) if result.running else ""


class Reporter:
    """Reports passes to GitHub without ever making a pass wait for it."""

    def __init__(
        self,
        *,
        github: GitHubClient | None = None,
        target_url: str | None = None,
    ) -> None:
        self.github = github
        self.target_url = target_url
        self._worker = ReportWorker("reporter")

    # --- PassListener --------------------------------------------------------------------------

    def applying(self, environment: str, commit: str) -> None:
        report = EnvironmentReport(environment, commit, Phase.APPLYING, target_url=self.target_url)
        self._worker.queue(f"status:{environment}", lambda: self._post_status(report))

    def finished(self, result: PassResult) -> None:
        if result.commit:  # a fetch that failed has no commit to put a status on
            report = environment_report(result, target_url=self.target_url)
            self._worker.queue(f"status:{result.environment}", lambda: self._post_status(report))

    def _post_status(self, report: EnvironmentReport) -> None:
        if self.github is not None:
            self.github.create_status(report.commit, commit_status(report))

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until everything queued was sent (or failed); False on timeout."""
        return self._worker.flush(timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        self._worker.close(timeout_s)
        if self.github is not None:
            self.github.close()
