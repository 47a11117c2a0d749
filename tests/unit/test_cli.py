"""The command line's parsing: global flags before or after the command."""

from __future__ import annotations

import pytest

from gitops_agent.cli import build_parser


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
