"""Ledger entries of immediate rollbacks, and ledgers written by older or newer agents."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gitops_agent.core.ledger import APPLIED, FAILED, Ledger, LedgerEntry, ledger_configmap, parse_ledger
from gitops_agent.errors import ClusterError


def entry(commit: str, result: str = APPLIED, rolled_back_from: str = "") -> LedgerEntry:
    return LedgerEntry(commit, "2026-01-01T00:00:00Z", "0.1.0", result, rolled_back_from=rolled_back_from)


def stored(entries: list[Any]) -> dict[str, Any]:
    return {"metadata": {"name": "ledger-prod"}, "data": {"entries": json.dumps(entries)}}


def test_a_ledger_written_before_rollbacks_existed_still_parses() -> None:
    old = {"commit": "a" * 40, "time": "t", "agent_version": "0.0.9", "result": "applied", "summary": "1 created"}
    ledger = parse_ledger(stored([old]))
    assert ledger.entries[0].rolled_back_from == ""
    assert ledger.rollback_hold() is None


def test_keys_a_newer_agent_added_are_skipped_not_fatal() -> None:
    newer = {"commit": "a" * 40, "time": "t", "agent_version": "9.0", "result": "applied", "approved_by": "x"}
    assert parse_ledger(stored([newer])).entries[0].commit == "a" * 40


def test_an_entry_that_is_not_a_mapping_is_still_reported_as_corrupt() -> None:
    with pytest.raises(ClusterError, match="ConfigMap/ledger-prod: the apply ledger is corrupt"):
        parse_ledger(stored(["not an entry"]))


def test_a_rollback_holds_only_while_it_is_the_running_entry() -> None:
    rollback = entry("old", rolled_back_from="new")
    ledger = Ledger((entry("old"), entry("new"), rollback))
    assert ledger.rollback_hold() == rollback
    assert ledger.record(entry("broken", FAILED)).rollback_hold() == rollback  # a failure does not end it
    assert ledger.record(entry("merged")).rollback_hold() is None


def test_rollback_entries_round_trip_through_the_configmap() -> None:
    ledger = Ledger((entry("old", rolled_back_from="new"),))
    assert parse_ledger(ledger_configmap("prod", "gitops-agent", ledger)) == ledger
