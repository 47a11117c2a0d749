"""core.pass_rules: what a pass does with a commit, what it is called, what the ledger records."""

from __future__ import annotations

import pytest

from gitops_agent.core.drift import CHANGED, EXTRA, MISSING, DriftedField, ObjectDrift
from gitops_agent.core.ledger import APPLIED, FAILED, REACHED, Ledger, LedgerEntry
from gitops_agent.core.pass_rules import (
    Step,
    applied_rollout,
    apply_outcome,
    held_commit,
    ledger_entry,
    next_step,
    to_repair,
)
from gitops_agent.model import ObjectKey

WEB = ObjectKey("apps", "Deployment", "shop", "web")
CFG = ObjectKey("", "ConfigMap", "shop", "cfg")
ADDED = ObjectKey("", "ConfigMap", "shop", "by-hand")


def entry(commit: str, result: str = APPLIED, message: str = "", rolled_back_from: str = "") -> LedgerEntry:
    return LedgerEntry(
        commit, "2026-12-02T00:00:00Z", "0.1.0", result, message=message, rolled_back_from=rolled_back_from
    )


@pytest.mark.parametrize(
    ("kwargs", "step"),
    [
        ({"current": False, "policy": "report"}, Step.APPLY),
        ({"current": True, "policy": "report"}, Step.CHECK),
        ({"current": True, "policy": "report", "force": True}, Step.APPLY),
        ({"current": False, "policy": "manual"}, Step.WAIT),
        ({"current": False, "policy": "manual", "explicit": True}, Step.APPLY),
        ({"current": True, "policy": "manual", "force": True}, Step.WAIT),
        ({"current": True, "policy": "manual"}, Step.CHECK),
        ({"current": True, "policy": "manual", "rollback": True}, Step.APPLY),
        ({"current": False, "policy": "enforce"}, Step.APPLY),
    ],
)
def test_a_commit_is_applied_once_and_a_manual_environment_waits_for_a_person(
    kwargs: dict[str, object], step: Step
) -> None:
    assert next_step(**kwargs) is step  # type: ignore[arg-type]


def test_the_outcome_of_an_apply() -> None:
    assert apply_outcome(ok=False, wrote=True) == FAILED
    assert apply_outcome(ok=True, wrote=True) == APPLIED
    assert apply_outcome(ok=True, wrote=False) == REACHED


def test_a_failure_repeated_every_pass_is_recorded_once_but_a_rollback_always_is() -> None:
    ledger = Ledger((entry("a"), entry("b", FAILED, "boom")))
    common = {"time": "t", "agent_version": "v", "summary": ""}
    assert ledger_entry(ledger, commit="b", outcome=FAILED, message="boom", **common) is None
    again = ledger_entry(ledger, commit="b", outcome=FAILED, message="other", **common)
    assert again is not None and again.message == "other"
    new = ledger_entry(ledger, commit="c", outcome=APPLIED, message="", forced=True, **common)
    assert new is not None and (new.commit, new.result, new.forced) == ("c", APPLIED, True)
    held = Ledger((entry("a"), entry("a", APPLIED, rolled_back_from="b")))
    rollback = ledger_entry(held, commit="a", outcome=APPLIED, message="", rolled_back_from="b", **common)
    assert rollback is not None and rollback.rolled_back_from == "b"


def drifted(key: ObjectKey, state: str, *, expected: bool = False) -> ObjectDrift:
    fields = (DriftedField("/spec/replicas", 2, 5, "m", "", expected),) if state == CHANGED else ()
    return ObjectDrift(key, state, fields)


def test_self_heal_repairs_unexpected_drift_under_enforce_only_and_never_what_was_added_by_hand() -> None:
    drift = [drifted(WEB, CHANGED), drifted(CFG, MISSING), drifted(ADDED, EXTRA), drifted(WEB, CHANGED, expected=True)]
    assert to_repair(drift, "enforce") == frozenset({WEB, CFG})
    assert to_repair(drift, "report") == frozenset()
    assert to_repair([drifted(WEB, CHANGED, expected=True)], "enforce") == frozenset()


def test_a_rollback_holds_while_the_branch_says_what_was_rolled_back_from() -> None:
    held = Ledger((entry("new"), entry("old", rolled_back_from="new")))
    never: list[str] = []

    def same(commit: str) -> bool:
        never.append(commit)
        return True

    assert held_commit(Ledger((entry("a"),)), "head", same) == "head"
    assert held_commit(held, "new", same) == "old" and never == []  # no render needed
    assert held_commit(held, "later", lambda then: then == "new") == "old"  # same intent at the head
    assert held_commit(held, "later", lambda then: False) == "later"  # the environment changed: hold ends


@pytest.mark.parametrize(
    ("ok", "hook_failed", "expected"),
    [
        (True, False, ("InProgress", "")),  # followed next, picked up again by a restarted agent
        (False, True, ("Failed", "pre-sync hook Job/shop/migrate failed")),  # reported as a failed rollout
        (False, False, ("", "")),  # nothing rolled out
    ],
)
def test_the_rollout_an_apply_records(ok: bool, hook_failed: bool, expected: tuple[str, str]) -> None:
    assert applied_rollout(ok=ok, hook_failed=hook_failed, error="pre-sync hook Job/shop/migrate failed") == expected
