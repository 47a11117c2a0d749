"""The command line: parsing (global flags before or after the command, durations), the exit codes
of ``sync`` and its progress lines while it follows a rollout."""

from __future__ import annotations

import io

import pytest

from gitops_agent.cli import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_ROLLOUT_FAILED,
    ProgressLines,
    _follow_settings,
    build_parser,
    progress_due,
    sync_exit_code,
)
from gitops_agent.model import Health, HealthStatus, ObjectHealth, ObjectKey
from gitops_agent.reconcile import PassResult
from gitops_agent.rollout import RolloutProgress


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "a.yaml", "--kubeconfig", "k", "-o", "json", "status", "--env", "dev"],
        ["status", "--config", "a.yaml", "--kubeconfig", "k", "-o", "json", "--env", "dev"],
        ["--config", "a.yaml", "status", "--kubeconfig", "k", "--output", "json", "--env", "dev"],
    ],
)
def test_global_flags_go_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.command, args.config, args.kubeconfig, args.output, args.env) == (
        "status",
        "a.yaml",
        "k",
        "json",
        "dev",
    )


def test_a_flag_after_the_command_wins_and_defaults_never_reset_one_given_before() -> None:
    parser = build_parser()
    assert parser.parse_args(["--config", "a.yaml", "status"]).config == "a.yaml"
    assert parser.parse_args(["--config", "a.yaml", "status", "--config", "b.yaml"]).config == "b.yaml"
    assert parser.parse_args(["drift"]).output == "text"
    assert parser.parse_args(["rollback", "--env", "prod", "--to", "HEAD~1", "--config", "c.yaml"]).config == "c.yaml"


def test_the_commands_that_write_wait_for_the_environments_lock_as_long_as_asked() -> None:
    parser = build_parser()
    assert parser.parse_args(["sync", "--lock-timeout", "2m"]).lock_timeout == 120
    assert parser.parse_args(["sync", "--lock-timeout", "45s"]).lock_timeout == 45
    rollback = ["rollback", "--env", "prod", "--to", "abc", "--now", "--lock-timeout", "0"]
    assert parser.parse_args(rollback).lock_timeout == 0
    assert parser.parse_args(["sync"]).lock_timeout is None  # the default: 30s (composition.lock_settings)
    for bad in ("soon", "-1", "1h"):
        with pytest.raises(SystemExit):
            parser.parse_args(["sync", "--lock-timeout", bad])


def test_sync_follows_as_long_as_asked() -> None:
    parser = build_parser()
    assert parser.parse_args(["sync", "--timeout", "90s"]).timeout == 90
    assert parser.parse_args(["sync", "--timeout", "5m"]).timeout == 300
    assert parser.parse_args(["sync"]).timeout is None  # the environment's, else the progress deadline's
    for bad in ("0", "0s", "later"):
        with pytest.raises(SystemExit):
            parser.parse_args(["sync", "--timeout", bad])


def test_sync_settings_carry_the_timeout_and_a_progress_printer() -> None:
    settings = _follow_settings(build_parser().parse_args(["sync", "--timeout", "2m"]))
    assert (settings.enabled, settings.timeout_s, type(settings.progress)) == (True, 120, ProgressLines)
    quiet = _follow_settings(build_parser().parse_args(["sync", "--no-wait"]))
    assert not quiet.enabled
    other = _follow_settings(build_parser().parse_args(["rollback", "--env", "prod", "--to", "abc", "--now"]))
    assert (other.enabled, other.progress) == (True, None)


# --- exit codes --------------------------------------------------------------------------------

SHA = "0123456789abcdef0123456789abcdef01234567"


def passed(health: HealthStatus | None = None, error: str = "") -> PassResult:
    return PassResult("dev", SHA, "applied", health=Health(health, "why") if health else None, error=error)


@pytest.mark.parametrize(
    ("results", "code"),
    [
        ([passed(HealthStatus.CURRENT), passed()], EXIT_OK),
        ([passed(HealthStatus.CURRENT), passed(HealthStatus.FAILED)], EXIT_ROLLOUT_FAILED),
        ([passed(HealthStatus.FAILED), passed(error="cluster unreachable")], EXIT_CHANGES),
        ([passed(HealthStatus.IN_PROGRESS)], EXIT_OK),  # stopped following (shutdown): not a verdict
    ],
    ids=["healthy", "rollout-failed", "a-failed-pass-wins", "stopped-following"],
)
def test_sync_exit_codes(results: list[PassResult], code: int) -> None:
    assert sync_exit_code(results) == code
    assert len({EXIT_OK, EXIT_CHANGES, EXIT_ERROR, EXIT_ROLLOUT_FAILED}) == 4


# --- progress lines ----------------------------------------------------------------------------

API = ObjectKey("apps", "Deployment", "dev", "api")


def look(elapsed_s: float) -> RolloutProgress:
    return RolloutProgress((ObjectHealth(API, HealthStatus.IN_PROGRESS, "0/2 replicas available"),), elapsed_s, 60)


def test_a_progress_line_at_the_first_look_then_never_more_than_every_s_apart() -> None:
    out = io.StringIO()
    lines = ProgressLines(every_s=10, poll_s=2, stream=out)
    looks = [0.1, 2.1, 4.2, 6.3, 8.1, 10.2, 12.3, 14.4, 16.5, 18.6, 20.7, 22.8]
    for t in looks:
        lines("dev", look(t))
    lines("prod", look(0.3))  # another environment's rollout: its own first line
    printed = out.getvalue().splitlines()
    times = [float(line.split(", ")[1].split("s of")[0]) for line in printed if line.startswith("dev:")]
    assert times == [0, 8, 16]  # the next look (2s later) would leave more than 10s since the last line
    assert printed[-1].startswith("prod: rollout 0/1 Current, 0s of 60s")


@pytest.mark.parametrize(
    ("last", "elapsed", "due"),
    [(None, 0.0, True), (0.0, 7.9, False), (0.0, 8.0, True), (30.0, 1.0, True)],
    ids=["first-look", "too-soon", "due", "a-new-rollout"],
)
def test_progress_due(last: float | None, elapsed: float, due: bool) -> None:
    assert progress_due(last, elapsed, 8.0) is due
