"""Telling people: each pass becomes a GitHub commit status (chat: ``gitops_agent.chat_reporting``).

A ``PassListener`` that turns a ``PassResult`` into the pure reports of ``core.report`` and hands
them to the GitHub adapter **on a worker thread of its own**: it retries with backoff for up to two
minutes, and a pass must never wait on GitHub. Per environment only
the newest report waits in line (an older one would be stale by the time it is sent), and a failed
post is logged and dropped: the next pass reports again.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from gitops_agent.adapters.github import GitHubClient
from gitops_agent.core.drift import DriftCounts
from gitops_agent.core.ledger import APPLIED, FAILED, REACHED
from gitops_agent.core.pass_rules import UP_TO_DATE
from gitops_agent.core.report import EnvironmentReport, Phase, commit_status
from gitops_agent.errors import GitOpsError
from gitops_agent.model import ChangeSet, HealthStatus
from gitops_agent.reconcile import PassResult

log = logging.getLogger(__name__)

_FAILED_PHASES = {
    "RenderFailed": Phase.RENDERING_FAILED,
    "SourceUnavailable": Phase.RENDERING_FAILED,
    "ConfigInvalid": Phase.RENDERING_FAILED,
    "ValidationFailed": Phase.VALIDATION_FAILED,
}


def environment_report(result: PassResult, *, target_url: str | None = None) -> EnvironmentReport:
    """What a pass means for its commit status (pure)."""
    drift = DriftCounts.of(result.drift)
    report = EnvironmentReport(
        environment=result.environment,
        commit=result.commit,
        phase=Phase.HEALTHY if result.outcome in (APPLIED, REACHED) else Phase.DRIFT,
        changes=result.sync.changes if result.sync else ChangeSet(),
        drift_expected=drift.expected,
        drift_unexpected=drift.unexpected,
        target_url=target_url,
    )
    if result.outcome == FAILED:
        return replace(report, phase=_FAILED_PHASES.get(result.reason, Phase.APPLY_FAILED), error=result.error)
    health = result.health
    if health is not None and health.status is HealthStatus.FAILED:
        return replace(report, phase=Phase.ROLLOUT_FAILED, health_message=health.message)
    if health is not None and health.status is not HealthStatus.CURRENT:
        return replace(report, phase=Phase.PROGRESSING, health_message=health.message)
    return report


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
        self._pending: OrderedDict[str, Callable[[], None]] = OrderedDict()
        self._wake = threading.Condition()
        self._closed = False
        self._busy = False
        self._applied: dict[str, EnvironmentReport] = {}  # per environment: the report of its last apply
        self._thread = threading.Thread(target=self._work, name="reporter", daemon=True)
        self._thread.start()

    # --- PassListener --------------------------------------------------------------------------

    def applying(self, environment: str, commit: str) -> None:
        report = EnvironmentReport(environment, commit, Phase.APPLYING, target_url=self.target_url)
        self._queue(f"status:{environment}", lambda: self._post_status(report))

    def finished(self, result: PassResult) -> None:
        if result.commit:  # a fetch that failed has no commit to put a status on
            report = self._continued(environment_report(result, target_url=self.target_url), result)
            self._queue(f"status:{result.environment}", lambda: self._post_status(report))

    def _continued(self, report: EnvironmentReport, result: PassResult) -> EnvironmentReport:
        """Between commits a status keeps saying what the apply did ("3 created; rollout healthy"),
        with the drift seen since, rather than flipping to a bare "in sync"."""
        env = result.environment
        if result.outcome in (APPLIED, REACHED):
            self._applied[env] = report
        last = self._applied.get(env)
        if result.outcome == UP_TO_DATE and last is not None and last.commit == result.commit:
            return replace(last, drift_expected=report.drift_expected, drift_unexpected=report.drift_unexpected)
        return report

    # --- the worker ----------------------------------------------------------------------------

    def _queue(self, slot: str, send: Callable[[], None]) -> None:
        with self._wake:
            self._pending.pop(slot, None)  # a newer report replaces one still waiting
            self._pending[slot] = send
            self._wake.notify()

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if not self._pending:
                    return
                _, send = self._pending.popitem(last=False)
                self._busy = True
            try:
                send()
            except GitOpsError as exc:
                log.warning("reporting failed, will report again after the next pass: %s", exc)
            except Exception:  # a reporting bug must not kill the worker
                log.exception("reporting failed unexpectedly")
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def _post_status(self, report: EnvironmentReport) -> None:
        if self.github is not None:
            self.github.create_status(report.commit, commit_status(report))

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until everything queued was sent (or failed); False on timeout."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._pending and not self._busy, timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        self.flush(timeout_s)
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        self._thread.join(timeout_s)
        if self.github is not None:
            self.github.close()
