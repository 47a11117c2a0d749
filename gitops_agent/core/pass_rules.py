"""The decisions of one environment's pass, pure: what to do with a commit, what the outcome is
called, what the ledger records, what self-heal re-applies, and when a rollback hold lasts.
``gitops_agent.reconcile`` only sequences them."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable

from gitops_agent.core.drift import EXTRA, ObjectDrift
from gitops_agent.core.helm import ChartRef
from gitops_agent.core.ledger import (
    APPLIED,
    FAILED,
    REACHED,
    ROLLOUT_CURRENT,
    ROLLOUT_FAILED,
    ROLLOUT_IN_PROGRESS,
    Ledger,
    LedgerEntry,
)
from gitops_agent.model import Health, HealthStatus, ObjectKey

#: what the ledger says of a rollout nobody followed (``sync --no-wait``): the next pass follows it
NOT_FOLLOWED = "not followed yet"

# outcomes of a pass, besides the ledger's applied / reached / failed
UP_TO_DATE = "up-to-date"  # the commit was applied before: drift checked only
WAITING = "waiting"  # manual policy: a new commit waits for `gitops-agent sync --env`
PLANNED = "planned"  # dry run
OUTCOMES = (APPLIED, REACHED, FAILED, UP_TO_DATE, WAITING, PLANNED)


class Step(enum.StrEnum):
    """What a pass that may write does with its commit (a dry run only plans, and decides nothing)."""

    APPLY = "apply"  # a new commit (or a forced re-apply, or a rollback): write it
    WAIT = "wait"  # manual policy: a new commit waits for a person
    CHECK = "check"  # the commit was applied before: explain drift, repair where enforced


def next_step(
    *, current: bool, policy: str, explicit: bool = False, force: bool = False, rollback: bool = False
) -> Step:
    """A commit is applied once. ``current``: the ledger says it is the one running; ``explicit``:
    a person asked (``sync --env``), so a ``manual`` environment applies."""
    if current and not force and not rollback:
        return Step.CHECK
    if policy == "manual" and not explicit and not rollback:
        return Step.WAIT
    return Step.APPLY


def apply_outcome(*, ok: bool, wrote: bool) -> str:
    """failed; applied (objects written); reached (the cluster already held the snapshot)."""
    if not ok:
        return FAILED
    return APPLIED if wrote else REACHED


def ledger_entry(
    ledger: Ledger,
    *,
    commit: str,
    outcome: str,
    summary: str,
    message: str,
    time: str,
    agent_version: str,
    forced: bool = False,
    rolled_back_from: str = "",
    approved_by: str = "",
    rollout: str = "",
    rollout_message: str = "",
    charts: tuple[ChartRef, ...] = (),
    applied_by: str = "",
    images: tuple[str, ...] = (),
) -> LedgerEntry | None:
    """The entry an apply adds, or None for a failure repeated every pass (recorded once)."""
    last = ledger.entries[-1] if ledger.entries else None
    if last and not rolled_back_from and (last.commit, last.result, last.message) == (commit, outcome, message):
        return None
    return LedgerEntry(
        commit=commit,
        time=time,
        agent_version=agent_version,
        result=outcome,
        summary=summary,
        message=message,
        forced=forced,
        rolled_back_from=rolled_back_from,
        approved_by=approved_by,
        rollout=rollout,
        rollout_message=rollout_message,
        charts=charts,
        applied_by=applied_by,
        images=images,
    )


def applied_rollout(*, ok: bool, hook_failed: bool, error: str) -> tuple[str, str]:
    """The rollout an apply's ledger entry starts with: InProgress until it is followed; Failed,
    naming the hook, when a pre-sync hook failed (reported as a failed rollout: nothing after it was
    written); none for any other failure."""
    if ok:
        return ROLLOUT_IN_PROGRESS, ""
    return (ROLLOUT_FAILED, error) if hook_failed else ("", "")


def rollout_record(health: Health | None) -> tuple[str, str]:
    """What the ledger keeps of a rollout followed to ``health`` (None: not followed): its state
    and words. Anything short of Current or Failed stays InProgress, to be picked up again."""
    if health is None:
        return ROLLOUT_IN_PROGRESS, NOT_FOLLOWED
    if health.status is HealthStatus.CURRENT:
        return ROLLOUT_CURRENT, health.message
    if health.status is HealthStatus.FAILED:
        return ROLLOUT_FAILED, health.message
    return ROLLOUT_IN_PROGRESS, health.message


def rollout_health(entry: LedgerEntry | None) -> Health | None:
    """The rollout of the running entry, as a pass reports it; None when nobody recorded one."""
    if entry is None or not entry.rollout:
        return None
    return Health(HealthStatus(entry.rollout), entry.rollout_message)


def to_follow(entry: LedgerEntry | None, commit: str) -> bool:
    """Is the running commit's rollout unfinished (the agent stopped following it: a restart, a
    leader change, ``sync --no-wait``, an entry from before rollouts were recorded)? Then a pass
    follows it again before it reports."""
    return entry is not None and entry.commit == commit and not entry.rollout_settled


def to_repair(drift: Iterable[ObjectDrift], policy: str) -> frozenset[ObjectKey]:
    """Under ``enforce``, the objects with unexpected drift; objects added by hand are reported,
    never deleted (they are not in the inventory)."""
    if policy != "enforce":
        return frozenset()
    return frozenset(d.key for d in drift if not d.expected and d.state != EXTRA)


def held_commit(ledger: Ledger, head: str, same_intent: Callable[[str], bool]) -> str:
    """The commit to reconcile to: the branch head, unless ``rollback --now`` holds the environment
    at an older one. The hold lasts while the environment's intent at the head is the one rolled
    back from (that commit, or a later one rendering the same snapshot, such as a change to another
    environment): ``same_intent(rolled_back_from)`` says so. The rollback PR merging, or any change
    to the environment, ends it. Without this the next pass would re-apply the very commit just
    rolled back."""
    hold = ledger.rollback_hold()
    if hold is None:
        return head
    if head == hold.rolled_back_from:
        return hold.commit
    return hold.commit if same_intent(hold.rolled_back_from) else head
