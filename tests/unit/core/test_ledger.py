"""Ledger entries of immediate rollbacks, ledgers written by older or newer agents, a size that
does not grow with the environment, and our entries appended to a ledger re-read after a conflict."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from gitops_agent.core.ledger import (
    APPLIED,
    FAILED,
    MAX_ENTRIES,
    MESSAGE_CHARS,
    Ledger,
    LedgerEntry,
    ledger_configmap,
    ledger_time,
    parse_ledger,
    parse_ledger_time,
)
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


def test_a_ledger_written_by_an_older_agent_parses_with_the_version_it_was_read_at() -> None:
    configmap = stored([{"commit": "a", "time": "t", "agent_version": "0.1", "result": "applied"}])
    configmap["metadata"]["resourceVersion"] = "91"
    ledger = parse_ledger(configmap)
    assert ledger.version == "91" and ledger.added == ()
    assert ledger.entries[0].commit == "a" and parse_ledger(ledger_configmap("prod", "ns", ledger)) == ledger


def test_a_ledger_remembers_what_it_recorded_since_it_was_read_and_it_is_not_part_of_its_value() -> None:
    read = parse_ledger(stored([asdict(entry("a"))]))
    mine = read.record(entry("b"))
    assert mine.added == (entry("b"),)
    assert mine == Ledger((entry("a"), entry("b")))


def test_on_a_conflict_our_entries_are_appended_to_the_ledger_as_re_read() -> None:
    read = Ledger((entry("a"),), version="1")
    ours = read.record(entry("b")).record(entry("c"))
    theirs = Ledger((entry("a"), entry("rollback", rolled_back_from="x")), version="2")
    merged = ours.rebased(theirs)
    assert merged.entries == (entry("a"), entry("rollback", rolled_back_from="x"), entry("b"), entry("c"))
    assert merged.version == "2" and merged.added == (entry("b"), entry("c"))


def test_a_huge_message_is_clipped_and_the_ledger_stays_under_1_mib() -> None:
    error = "; ".join(f"ConfigMap/team-{i % 40}/checkout-worker-{i:05d}: outside the scope" for i in range(50_000))
    ledger = Ledger()
    for i in range(MAX_ENTRIES + 20):
        ledger = ledger.record(replace(entry(f"c{i}", FAILED), message=error, summary="x" * 5000))
    assert len(ledger.entries) == MAX_ENTRIES and ledger.entries[-1].commit == f"c{MAX_ENTRIES + 19}"
    last = ledger.entries[-1]
    assert len(last.message) <= MESSAGE_CHARS and last.message.startswith(error[:1000])
    assert "more characters in the agent's log" in last.message
    configmap = ledger_configmap("prod", "gitops-agent", ledger)
    assert len(json.dumps(configmap)) < 1024 * 1024
    assert parse_ledger(configmap) == ledger


def test_entries_that_escape_to_many_bytes_are_dropped_oldest_first_to_fit() -> None:
    ledger = Ledger()
    for i in range(MAX_ENTRIES):
        ledger = ledger.record(replace(entry(f"c{i}", FAILED), message="é" * 10_000))
    assert len(json.dumps(ledger_configmap("prod", "gitops-agent", ledger))) < 1024 * 1024
    assert 0 < len(ledger.entries) < MAX_ENTRIES and ledger.entries[-1].commit == f"c{MAX_ENTRIES - 1}"


def test_entry_times_are_written_in_utc_and_read_back() -> None:
    moment = datetime(2026, 12, 2, 9, 30, 5, tzinfo=timezone(timedelta(hours=1)))
    assert ledger_time(moment) == "2026-12-02T08:30:05Z"
    assert parse_ledger_time("2026-12-02T08:30:05Z") == moment.astimezone(UTC)
    assert parse_ledger_time("yesterday") is None
