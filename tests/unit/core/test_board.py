"""The status board's view model (``core.board``), from ledgers and logs as fixtures."""

from __future__ import annotations

from typing import Any

from gitops_agent.core.board import (
    BoardCommit,
    EnvironmentFacts,
    Header,
    Links,
    board,
    environment_cells,
    pull_request_of,
    web_url,
)
from gitops_agent.core.drift import CHANGED, DriftedField, ObjectDrift
from gitops_agent.core.helm import ChartRef
from gitops_agent.core.ledger import APPLIED, FAILED, REACHED, LedgerEntry
from gitops_agent.model import ObjectKey

A, B, C, D, E = ("a" * 40, "b" * 40, "c" * 40, "d" * 40, "e" * 40)
LINKS = Links("https://github.com/acme/config")


def entry(commit: str, result: str = APPLIED, **kw: Any) -> LedgerEntry:
    return LedgerEntry(commit, kw.pop("time", "2026-05-01T10:00:00Z"), "0.1.0", result, **kw)


def states(env: EnvironmentFacts) -> dict[str, str]:
    return {sha: cell["state"] for sha, cell in environment_cells(env).items()}


def test_the_running_commit_the_commits_it_rolled_forward_and_what_it_replaced() -> None:
    env = EnvironmentFacts(
        "prod", "auto", "main",
        entries=(entry(A, images=("web:1",)), entry(C, approved_by="ada", images=("web:2",))),
        carried=((A,), (B, C)),
    )  # fmt: skip
    cells = environment_cells(env)
    assert states(env) == {A: "replaced", B: "running", C: "running"}
    assert cells[B]["via"] == C and cells[C]["via"] == ""
    assert cells[C]["approved_by"] == "ada" and cells[C]["images"] == ["web:2"] and cells[A]["images"] == ["web:1"]
    assert cells[C]["running"] and not cells[A]["running"]


def test_a_failed_apply_and_a_failed_rollout() -> None:
    failed_apply = EnvironmentFacts("dev", "auto", "main", entries=(entry(A), entry(B, FAILED, message="boom")))
    assert states(failed_apply) == {A: "running", B: "failed"}
    assert environment_cells(failed_apply)[B]["message"] == "boom"
    failed_rollout = EnvironmentFacts(
        "dev", "auto", "main", entries=(entry(A, rollout="Failed", rollout_message="CrashLoopBackOff"),)
    )
    cell = environment_cells(failed_rollout)[A]
    assert (cell["state"], cell["running"], cell["message"]) == ("failed", True, "CrashLoopBackOff")


def test_an_apply_that_changed_nothing_here_leaves_the_last_change_running_and_gets_no_cell() -> None:
    # B changed another environment only: its apply here carried nothing; its rollout is followed
    env = EnvironmentFacts(
        "prod", "auto", "main",
        entries=(entry(A, images=("web:1",)), entry(B, REACHED, rollout="Failed", rollout_message="CrashLoopBackOff")),
        carried=((A,), ()),
    )  # fmt: skip
    cell = environment_cells(env)[A]
    assert states(env) == {A: "failed"}
    assert (cell["running"], cell["message"], cell["images"]) == (True, "CrashLoopBackOff", ["web:1"])
    healthy = EnvironmentFacts("prod", "auto", "main", entries=(entry(A), entry(B, REACHED)), carried=((A,), ()))
    assert states(healthy) == {A: "running"}


def test_a_commit_reached_again_later_runs_again() -> None:
    env = EnvironmentFacts("dev", "auto", "main", entries=(entry(A), entry(B), entry(A, REACHED)))
    assert states(env) == {A: "running", B: "replaced"}


def test_a_rollback_marks_the_commit_and_what_it_carried_rolled_back() -> None:
    env = EnvironmentFacts(
        "prod", "auto", "main",
        entries=(entry(A), entry(C), entry(A, rolled_back_from=C, forced=True)),
        carried=((A,), (B, C), ()),
        target=C, ahead=(C, B),
    )  # fmt: skip
    cells = environment_cells(env)
    assert states(env) == {A: "running", B: "rolled-back", C: "rolled-back"}
    assert cells[C]["rolled_back_to"] == A and cells[A]["rolled_back_from"] == C


def test_commits_after_the_running_one_wait_in_a_manual_environment_and_are_pending_elsewhere() -> None:
    manual = EnvironmentFacts("prod", "manual", "main", entries=(entry(A),), target=C, ahead=(C, B))
    assert states(manual) == {A: "running", B: "waiting", C: "waiting"}
    assert environment_cells(manual)[B]["via"] == C  # an approval applies the head, with B in it
    auto = EnvironmentFacts("dev", "auto", "main", entries=(entry(A),), target=B, ahead=(B,))
    assert states(auto) == {A: "running", B: "pending"}
    never = EnvironmentFacts("staging", "manual", "main", target=A, ahead=(A,))
    assert states(never) == {A: "waiting"}


def test_a_target_whose_pass_failed_before_any_apply_is_failed_with_the_error() -> None:
    env = EnvironmentFacts(
        "dev", "auto", "main", entries=(entry(A),), target=B, ahead=(B,),
        last_pass={"ok": False, "commit": B, "last_error": "render failed: bad yaml"},
    )  # fmt: skip
    cell = environment_cells(env)[B]
    assert (cell["state"], cell["message"]) == ("failed", "render failed: bad yaml")


def test_the_whole_view_rows_by_environments_with_links_drift_and_no_values() -> None:
    drift = ObjectDrift(
        ObjectKey("", "ConfigMap", "dev-ns", "settings"),
        CHANGED,
        (DriftedField("/data/mode", "one", "by hand", "kubectl-edit", "2026-05-01T11:00:00Z", expected=False),),
    )
    dev = EnvironmentFacts(
        "dev", "auto", "main", owner="pod-a", target=B,
        entries=(entry(B, charts=(ChartRef("web", "1.2.3", "sha256:x", "oci://r/web"),)),),
        carried=((A, B),), touched=frozenset({A, B}), drift=(drift,),
        last_pass={"outcome": "up-to-date", "ok": True},
    )  # fmt: skip
    prod = EnvironmentFacts("prod", "manual", "main", target=B, ahead=(B,), touched=frozenset({B}))
    commits = [
        BoardCommit(B, "Ada", "2026-05-01T09:00:00Z", "Bump web (#12)"),
        BoardCommit(A, "Bob", "2026-05-01T08:00:00Z", "Merge pull request #9 from acme/x"),
    ]
    view = board(Header("pod-a", True, ("pod-a", "pod-b")), commits, [dev, prod], LINKS, "2026-05-01T12:00:00Z")

    assert view["schema"] == 1 and view["ready"] and view["members"] == ["pod-a", "pod-b"]
    top, bottom = view["commits"]
    assert top["pull_request"] == {"number": 12, "url": "https://github.com/acme/config/pull/12"}
    assert bottom["pull_request"]["number"] == 9
    assert top["links"]["commit"] == f"https://github.com/acme/config/commit/{B}"
    assert top["cells"]["dev"]["state"] == "running" and top["cells"]["prod"]["state"] == "waiting"
    assert bottom["cells"] == {"dev": {**top["cells"]["dev"], "via": B}, "prod": None}
    assert top["changed"] == ["dev", "prod"] and bottom["changed"] == ["dev"]
    env = view["environments"][0]
    assert env["owner"] == "pod-a" and env["running"]["charts"] == [{"name": "web", "version": "1.2.3"}]
    assert env["drift"]["unexpected"] == 1 and env["drift"]["objects"][0]["fields"] == [
        {"path": "/data/mode", "manager": "kubectl-edit", "since": "2026-05-01T11:00:00Z", "expected": False}
    ]
    assert "by hand" not in str(view)  # which field and who, never what it holds
    assert view["environments"][1]["waiting"] and view["environments"][1]["running"] is None


def test_pull_requests_named_by_github_s_merge_and_squash_subjects() -> None:
    assert pull_request_of("Merge pull request #42 from acme/feature") == 42
    assert pull_request_of("Bump api to 1.2 (#17)") == 17
    assert pull_request_of("Fix #3 in the docs") is None
    assert pull_request_of("Revert (#1) then more") is None


def test_the_repository_s_web_address() -> None:
    assert web_url("https://api.github.com", "acme/config", "") == "https://github.com/acme/config"
    assert web_url("https://ghe.acme.io/api/v3/", "acme/config", "") == "https://ghe.acme.io/acme/config"
    assert web_url(None, None, "https://github.com/acme/config.git") == "https://github.com/acme/config"
    assert web_url(None, None, "git@github.com:acme/config.git") == "https://github.com/acme/config"
    assert web_url(None, None, "/srv/git/config") == ""
    assert Links("").commit(A) == "" and Links("").pull_request(1) == ""
