"""``present.format_history``: each apply with the range it rolled forward and the commits of that
range that changed what the environment renders."""

from __future__ import annotations

from datetime import UTC, datetime

from gitops_agent.adapters.git_source import CommitInfo
from gitops_agent.core.ledger import LedgerEntry
from gitops_agent.present import format_history, history_json
from gitops_agent.queries import HistoryEntry

A, B = "a" * 40, "b" * 40
PATHS = ("apps/web", "environments/dev")
BUMP = CommitInfo("c" * 40, "Ada <ada@example.com>", datetime(2024, 5, 1, 9, 30, tzinfo=UTC), "web v2")


def entry(commit: str, result: str = "applied", summary: str = "1 configured") -> LedgerEntry:
    return LedgerEntry(commit, "2024-05-01T10:00:00Z", "0.1.0", result, summary)


def test_each_apply_says_its_range_and_the_paths_it_was_filtered_by() -> None:
    history = [
        HistoryEntry(entry(B), (BUMP,), True, since=A, paths=PATHS),
        HistoryEntry(entry(A, summary="3 created"), (), False, paths=PATHS),
    ]
    assert format_history("dev", history).splitlines() == [
        f"2024-05-01T10:00:00Z  {B[:12]}  applied  1 configured  <- running",
        f"    {A[:12]}..{B[:12]}: 1 commit changed apps/web, environments/dev",
        f"    {'c' * 12} 2024-05-01 09:30 Ada <ada@example.com>: web v2",
        f"2024-05-01T10:00:00Z  {A[:12]}  applied  3 created",
        f"    first apply, up to {A[:12]}: no commit changed apps/web, environments/dev",
    ]
    assert history_json(history[0])["since"] == A and history_json(history[0])["paths"] == list(PATHS)


def test_a_retry_of_the_same_commit_has_no_range() -> None:
    retry = HistoryEntry(entry(A, result="failed", summary=""), (), False, since=A, paths=PATHS)
    assert len(format_history("dev", [retry]).splitlines()) == 1


def test_each_apply_says_how_far_its_rollout_got() -> None:
    failed = LedgerEntry(B, "2024-05-01T10:00:00Z", "0.1.0", "applied", "1 configured", rollout="Failed")
    first = format_history("dev", [HistoryEntry(failed, (), True, since=B, paths=PATHS)]).splitlines()[0]
    assert first == f"2024-05-01T10:00:00Z  {B[:12]}  applied  1 configured; rollout Failed  <- running"
