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
