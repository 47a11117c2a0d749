"""core.report: commit statuses rendered from plain data (states, descriptions cut to GitHub's limit)."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_agent.core.report import (
    DESCRIPTION_LIMIT,
    EnvironmentReport,
    Phase,
    StatusState,
    change_counts,
    commit_status,
    cut,
    summary_counts,
)
from gitops_agent.model import Action, Change, ChangeSet, ObjectKey

SHA = "0123456789abcdef0123456789abcdef01234567"


def change_set(**counts: int) -> ChangeSet:
    out = []
    for action, n in counts.items():
        out += [Change(ObjectKey("", "ConfigMap", "shop", f"{action}-{i}"), Action(action)) for i in range(n)]
    return ChangeSet.of(out)


def changes(**counts: int) -> str:
    return change_counts(change_set(**counts))


def report(phase: Phase, **kw: Any) -> EnvironmentReport:
    return EnvironmentReport(environment="prod", commit=SHA, phase=phase, **kw)


# --- commit statuses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "kw", "state", "description"),
    [
        (Phase.RENDERING_FAILED, {"error": "overlays/prod: no kustomization"}, StatusState.ERROR,
         "rendering failed: overlays/prod: no kustomization"),
        (Phase.VALIDATION_FAILED, {"error": "two objects named api"}, StatusState.ERROR,
         "validation failed: two objects named api"),
        (Phase.APPLY_FAILED, {"error": "Deployment/shop/api: forbidden"}, StatusState.ERROR,
         "apply failed: Deployment/shop/api: forbidden"),
        (Phase.APPLYING, {"changes": changes(created=3, configured=1)}, StatusState.PENDING,
         "applying 3 created, 1 configured"),
        (Phase.PROGRESSING, {"changes": changes(created=1), "health_message": "api 1/3 ready"}, StatusState.PENDING,
         "1 created; rollout in progress: api 1/3 ready"),
        (Phase.HEALTHY, {"changes": changes(created=3, configured=1, unchanged=7)}, StatusState.SUCCESS,
         "3 created, 1 configured; rollout healthy"),
        (Phase.HEALTHY, {"changes": changes(unchanged=4)}, StatusState.SUCCESS, "no changes; healthy"),
        (Phase.HEALTHY, {"changes": changes(configured=1), "drift_unexpected": 2}, StatusState.FAILURE,
         "unexpected drift in 2 objects; 1 configured; rollout healthy"),
        (Phase.ROLLOUT_FAILED, {"health_message": "api 0/3 ready, CrashLoopBackOff in container app"},
         StatusState.FAILURE, "rollout failed: api 0/3 ready, CrashLoopBackOff in container app"),
        (Phase.HEALTHY, {"changes": changes(created=2), "drift_expected": 1}, StatusState.SUCCESS,
         "2 created; rollout healthy; 1 object drifted as expected"),
        (Phase.HEALTHY, {"drift_unexpected": 1, "drift_expected": 2}, StatusState.FAILURE,
         "unexpected drift in 1 object; 2 objects drifted as expected; no changes; healthy"),
        (Phase.WAITING, {"waiting_hint": "gitops-agent sync --env prod"}, StatusState.PENDING,
         "waiting for approval; gitops-agent sync --env prod"),
        (Phase.HEALTHY, {"changes": changes(configured=1), "approved_by": "alice"}, StatusState.SUCCESS,
         "1 configured; rollout healthy; approved by @alice"),
    ],
    ids=[
        "render-error", "validation-error", "apply-error", "applying", "progressing", "healthy", "healthy-no-changes",
        "healthy-unexpected-drift", "rollout-failed", "drift-expected-only", "drift-unexpected", "waiting",
        "approved",
    ],
)  # fmt: skip
def test_status_for_each_phase(phase: Phase, kw: dict[str, Any], state: StatusState, description: str) -> None:
    status = commit_status(report(phase, **kw))
    assert (status.state, status.description) == (state, description)


def test_status_context_names_the_environment_and_carries_the_link() -> None:
    status = commit_status(report(Phase.HEALTHY, target_url="https://agent.example/status/prod"))
    assert status.context == "gitops-agent/prod"
    assert status.body() == {
        "state": "success",
        "context": "gitops-agent/prod",
        "description": "no changes; healthy",
        "target_url": "https://agent.example/status/prod",
    }


def test_status_body_leaves_out_a_missing_link() -> None:
    assert "target_url" not in commit_status(report(Phase.APPLYING)).body()


def test_long_error_is_cut_at_a_word_with_an_ellipsis() -> None:
    error = "Deployment/shop/api: " + " ".join(f"word{i}" for i in range(60))
    description = commit_status(report(Phase.APPLY_FAILED, error=error)).description
    assert len(description) <= DESCRIPTION_LIMIT
    assert description.endswith("…")
    last_word = description[:-1].split()[-1]
    assert last_word in error.split(), "cut in the middle of a word"


def test_multiline_error_becomes_one_line() -> None:
    description = commit_status(
        report(Phase.RENDERING_FAILED, error="kustomize:\n  accumulating\tresources")
    ).description
    assert description == "rendering failed: kustomize: accumulating resources"


@pytest.mark.parametrize("length", [139, 140, 141, 500])
def test_cut_never_exceeds_the_limit(length: int) -> None:
    text = ("a" * 9 + " ") * (length // 10) + "b" * (length % 10)
    out = cut(text.strip(), DESCRIPTION_LIMIT)
    assert len(out) <= DESCRIPTION_LIMIT
    assert out == text.strip() if len(text.strip()) <= DESCRIPTION_LIMIT else out.endswith("…")


def test_cut_of_one_long_word_cuts_inside_it() -> None:
    assert cut("x" * 300, 10) == "x" * 9 + "…"


@pytest.mark.parametrize(
    ("summary", "counts"),
    [
        ("2 created, 1 configured, 5 unchanged", "2 created, 1 configured"),
        ("5 unchanged", ""),
        ("nothing to do", ""),
        ("1 pruned", "1 pruned"),
    ],
)
def test_summary_counts_keeps_only_what_the_apply_did(summary: str, counts: str) -> None:
    assert summary_counts(summary) == counts


def test_summary_counts_agrees_with_change_counts() -> None:
    done = change_set(created=2, configured=1, unchanged=4, pruned=1)
    assert summary_counts(done.summary()) == change_counts(done)
