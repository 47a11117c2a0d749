"""A human OK from GitHub, the shell: check runs on waiting commits, and approval webhooks.

The decisions are ``core.approval``'s; this module asks GitHub and the scheduler for the facts they
need, in an order that spends nothing on a delivery refused early:

1. parse (``check_run`` ``requested_action``, or an ``/approve <env>`` ``issue_comment``);
2. screen: a known environment whose policy is ``manual``;
3. authorise: GitHub's collaborator permission of the sender (admin, maintain, write);
4. a comment's commit: its pull request's merge commit, merged into the environment's branch;
5. current: that commit is the environment's target after a fresh fetch;
6. the scheduler runs the environment's pass with that commit pinned, ``explicit``, recording the
   approver in the ledger (queued behind a pass in flight, never beside it).

What GitHub is told (replies, check run updates) is sent by one worker thread: a webhook is
answered at once, and a pass never waits on GitHub. ``ApprovalChecks`` (a pass listener, with an
App only: GitHub takes check runs from Apps alone) puts one "Apply to <env>" check run on each
commit a ``manual`` environment waits at, and settles it once applied, failed or superseded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from gitops_agent.config import Config
from gitops_agent.core.approval import (
    HTTP_STATUS,
    Approval,
    Reason,
    Refusal,
    Via,
    accepted_words,
    authorise,
    check_name,
    current,
    merge_commit,
    outcome_words,
    parse_approve_comment,
    parse_check_run_action,
    parse_permission,
    reply,
    screen,
    settled_check_run,
    waiting_check_run,
)
from gitops_agent.core.ledger import APPLIED, FAILED, REACHED
from gitops_agent.core.pass_rules import UP_TO_DATE, WAITING
from gitops_agent.errors import GitOpsError
from gitops_agent.reconcile import PassResult
from gitops_agent.scheduler import ApprovedPass

if TYPE_CHECKING:
    from gitops_agent.adapters.github import GitHubClient

log = logging.getLogger(__name__)

#: the webhook events approvals arrive with
APPROVAL_EVENTS = frozenset({"check_run", "issue_comment"})


class GitHubWrites:
    """One worker thread for what approvals tell GitHub, in the order asked; a failure is logged."""

    def __init__(self) -> None:
        self._pool = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="approvals")

    def submit(self, what: str, send: Callable[[], None]) -> None:
        def run() -> None:
            try:
                send()
            except GitOpsError as exc:
                log.warning("approvals: %s failed: %s", what, exc)
            except Exception:  # a bug here must not kill the worker
                log.exception("approvals: %s failed unexpectedly", what)

        try:
            self._pool.submit(run)
        except RuntimeError:  # shut down
            log.warning("approvals: %s not sent: shutting down", what)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Waits until everything submitted so far was sent (or failed)."""
        self._pool.submit(lambda: None).result(timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        try:
            self.flush(timeout_s)
        except (futures.TimeoutError, RuntimeError):
            log.warning("approvals: closing with GitHub writes still queued")
        self._pool.shutdown(wait=False, cancel_futures=True)


# --- check runs on waiting commits ----------------------------------------------------------------


@dataclass
class _Open:
    commit: str
    run_id: int


class ApprovalChecks:
    """A pass listener: the "Apply to <env>" check run of each ``manual`` environment's waiting
    commit, created once per commit (found again after a restart rather than duplicated) and
    settled when the environment applies it, fails to, or moves to another commit. Its state is
    touched only on the writes thread."""

    def __init__(self, config: Config, github: GitHubClient, writes: GitHubWrites, details_url: str | None) -> None:
        self.github = github
        self.writes = writes
        self.details_url = details_url
        self._manual = {env.name for env in config.environments if env.policy == "manual"}
        self._open: dict[str, _Open] = {}
        self._approvers: dict[tuple[str, str], str] = {}

    def applying(self, environment: str, commit: str) -> None:
        pass

    def finished(self, result: PassResult) -> None:
        if result.environment in self._manual and result.commit:
            env, commit, outcome = result.environment, result.commit, result.outcome
            self.writes.submit(f"check run of {env}", lambda: self._settle(env, commit, outcome))

    def approved(self, environment: str, commit: str, login: str) -> None:
        """Who approved ``commit``: the settled check run names them."""
        self.writes.submit("approval note", lambda: self._approvers.__setitem__((environment, commit), login))

    def _settle(self, env: str, commit: str, outcome: str) -> None:
        known = self._open.get(env)
        if outcome == WAITING:
            if known is not None and known.commit == commit:
                return  # once per commit, not every pass
            if known is not None:
                self._update(known.run_id, settled_check_run(env, outcome="superseded", newer=commit))
            self._open[env] = _Open(commit, self._find_or_create(env, commit))
            return
        if outcome not in (APPLIED, REACHED, UP_TO_DATE, FAILED):
            return
        if known is None and outcome in (APPLIED, REACHED):  # after a restart: the run may be GitHub's only
            known = self._find(env, commit)
        if known is None:
            return
        if known.commit == commit:
            by = self._approvers.get((env, commit), "")
            self._update(
                known.run_id,
                settled_check_run(env, outcome="failed" if outcome == FAILED else "applied", approved_by=by),
            )
            if outcome != FAILED:  # a failed apply keeps its button: try again
                del self._open[env]
                self._approvers.pop((env, commit), None)
        elif outcome != FAILED:
            self._update(known.run_id, settled_check_run(env, outcome="superseded", newer=commit))
            del self._open[env]

    def _find(self, env: str, commit: str) -> _Open | None:
        runs = self.github.check_runs(commit, check_name(env))
        if not runs or not isinstance(runs[0].get("id"), int):
            return None
        found = self._open[env] = _Open(commit, runs[0]["id"])
        return found

    def _find_or_create(self, env: str, commit: str) -> int:
        found = self._find(env, commit)
        if found is not None:
            return found.run_id
        run = self.github.create_check_run(waiting_check_run(env, commit, self.details_url))
        log.info("check run %s on %s: waiting for approval", check_name(env), commit[:12])
        return int(run["id"])

    def _update(self, run_id: int, body: dict[str, Any]) -> None:
        self.github.update_check_run(run_id, body)


# --- approval webhooks ----------------------------------------------------------------------------


class SchedulerPort(Protocol):
    """What approvals need of the daemon's scheduler."""

    @property
    def takes_approvals(self) -> bool: ...

    def approve(self, name: str, approval: ApprovedPass) -> bool: ...

    def current_target(self, name: str) -> str: ...


@dataclass(frozen=True)
class Answer:
    """The HTTP answer to a delivery."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


class Approvals:
    """Takes or refuses the approvals ``check_run`` and ``issue_comment`` deliveries carry."""

    def __init__(
        self,
        config: Config,
        github: GitHubClient,
        scheduler: SchedulerPort,
        writes: GitHubWrites,
        checks: ApprovalChecks | None = None,
    ) -> None:
        self.config = config
        self.github = github
        self.scheduler = scheduler
        self.writes = writes
        self.checks = checks
        self._policies = {env.name: env.policy for env in config.environments}

    def handle(self, event: str, body: bytes, delivery: str) -> Answer:
        """A signed delivery of ``event`` (one of ``APPROVAL_EVENTS``)."""
        try:
            data = json.loads(body)
        except ValueError:
            return self._refused(Refusal(Reason.MALFORMED, "the body is not JSON"), delivery)
        parsed = parse_check_run_action(data) if event == "check_run" else parse_approve_comment(data)
        if parsed is None:
            return Answer(202, {"event": event, "ignored": True})
        if isinstance(parsed, Refusal):
            return self._refused(parsed, delivery)
        checked = self._check(parsed)
        if isinstance(checked, Refusal):
            return self._refused(checked, delivery)
        return self._accept(checked, delivery)

    def close(self) -> None:
        self.writes.close()

    # --- the checks, cheapest first -------------------------------------------------------------

    def _check(self, approval: Approval) -> Approval | Refusal:
        refused = screen(approval, self._policies)
        if refused is not None:
            return refused
        if not self.scheduler.takes_approvals:
            return Refusal(
                Reason.UNAVAILABLE, "this replica takes no approvals now; ask again in a moment", approval.pull_request
            )
        try:
            refused = authorise(approval, parse_permission(self.github.collaborator_permission(approval.login)))
        except GitOpsError as exc:
            log.warning("approval by %s: permission not known: %s", approval.login, exc)
            refused = Refusal(
                Reason.UNAUTHORISED, f"could not check @{approval.login}'s permission on GitHub", approval.pull_request
            )
        if refused is not None:
            return refused
        if approval.via is Via.COMMENT:
            resolved = self._merge_commit(approval)
            if isinstance(resolved, Refusal):
                return resolved
            approval = resolved
        try:
            target = self.scheduler.current_target(approval.environment)
        except GitOpsError as exc:
            log.warning("approval of %s: target commit not known: %s", approval.environment, exc)
            return Refusal(
                Reason.UNAVAILABLE, f"{approval.environment}'s target commit is not known now", approval.pull_request
            )
        return current(approval, target) or approval

    def _merge_commit(self, approval: Approval) -> Approval | Refusal:
        branch = self.config.branch_of(self.config.environment(approval.environment))
        try:
            pull = self.github.get_pull(approval.pull_request)
        except GitOpsError as exc:
            log.warning("approval on #%d: pull request not read: %s", approval.pull_request, exc)
            return Refusal(
                Reason.UNAVAILABLE, f"pull request #{approval.pull_request} could not be read", approval.pull_request
            )
        sha = merge_commit(approval, pull, branch)
        return sha if isinstance(sha, Refusal) else replace(approval, commit=sha)

    # --- answers ---------------------------------------------------------------------------------

    def _accept(self, approval: Approval, delivery: str) -> Answer:
        reply_id: list[int] = []  # the reply comment, once posted (the writes thread fills it)
        queued = self.scheduler.approve(
            approval.environment,
            ApprovedPass(
                approval.commit, approval.login, on_done=lambda result: self._done(approval, result, reply_id)
            ),
        )
        if not queued:
            refusal = Refusal(
                Reason.UNAVAILABLE,
                "this replica stopped taking approvals; ask again in a moment",
                approval.pull_request,
            )
            return self._refused(refusal, delivery)
        words = accepted_words(approval)
        log.info("webhook %s: %s (%s)", delivery, words, approval.via.value)
        if self.checks is not None:
            self.checks.approved(approval.environment, approval.commit, approval.login)
        if approval.via is Via.COMMENT:
            self.writes.submit("approval reply", lambda: self._reply(approval.pull_request, words, reply_id))
        return Answer(
            202,
            {
                "accepted": True,
                "environment": approval.environment,
                "commit": approval.commit,
                "approved_by": approval.login,
                "via": approval.via.value,
            },
        )

    def _done(self, approval: Approval, result: PassResult, reply_id: list[int]) -> None:
        """Told by the pass that took the approval (on the pass's thread: hand over, never wait)."""
        changes = result.sync.changes.summary() if result.sync else ""
        words = outcome_words(
            approval, commit=result.commit, outcome=result.outcome, reason=result.reason, changes=changes
        )
        log.info("approved pass of %s: %s", approval.environment, words)
        if approval.via is Via.COMMENT:
            self.writes.submit("approval outcome", lambda: self._reply(approval.pull_request, words, reply_id))

    def _reply(self, number: int, words: str, reply_id: list[int]) -> None:
        """The approval's one reply on the pull request: posted, then updated in place."""
        body = reply(words, accepted=True)
        if reply_id:
            self.github.update_issue_comment(reply_id[0], body)
        else:
            reply_id.append(int(self.github.create_issue_comment(number, body)["id"]))

    def _refused(self, refusal: Refusal, delivery: str) -> Answer:
        log.warning("webhook %s: approval refused (%s): %s", delivery, refusal.reason.value, refusal.message)
        if refusal.pull_request and refusal.reason is not Reason.NOT_A_PERSON:  # never answer a bot: no loops
            words = reply(refusal.message, accepted=False)
            self.writes.submit("refusal reply", lambda: self._post(refusal.pull_request, words))
        body = {"accepted": False, "reason": refusal.reason.value, "message": refusal.message}
        return Answer(HTTP_STATUS[refusal.reason], body)

    def _post(self, number: int, body: str) -> None:
        self.github.create_issue_comment(number, body)
