"""Command line: ``gitops-agent sync|diff|drift|status|history|validate|run`` (and the proposals:
``promote``, ``rollback``, ``preview``, registered from ``cli_proposals``).

Exit codes (the README lists them too):

- 0: success; ``diff``, ``drift``: nothing found;
- 1: ``diff`` found changes (as ``kubectl diff``), ``drift`` found drift; other commands: an
  environment failed (its pass, its render, its health for ``health``);
- 2: usage or configuration error (a bad flag, an unreadable config), or ``diff``/``drift`` could
  not answer for an environment;
- 3: ``sync``: the rollout of the commit an environment runs failed or timed out (health
  ``Failed``: followed by this ``sync``, or as an earlier pass recorded it); a failed pass (1) wins.
Every command that reads state accepts ``--output json``; the field names are documented in the
README and kept stable.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TextIO

from gitops_agent import __version__, cli_proposals
from gitops_agent.agent import Agent
from gitops_agent.composition import Wiring, command_wiring
from gitops_agent.config import Config, find_config_path, load_config
from gitops_agent.core.health import aggregate
from gitops_agent.errors import GitOpsError
from gitops_agent.model import HealthStatus
from gitops_agent.present import (
    drift_json,
    format_drift,
    format_health,
    format_history,
    format_pass,
    format_pr_environments,
    format_progress,
    format_status,
    health_json,
    history_json,
    pass_json,
    pr_environment_json,
    status_row_json,
)
from gitops_agent.reconcile import FollowSettings, PassResult
from gitops_agent.rollout import RolloutProgress

EXIT_OK, EXIT_CHANGES, EXIT_ERROR, EXIT_ROLLOUT_FAILED = 0, 1, 2, 3
#: while a rollout is followed, ``sync`` prints a progress line at least this often
PROGRESS_EVERY_S = 10.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitops-agent",
        description="A GitOps agent for Kubernetes: applies each commit once, explains drift, follows rollouts.",
    )
    parser.add_argument("--version", action="version", version=f"gitops-agent {__version__}")
    _add_global_flags(parser, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    _add_global_flags(common, defaults=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sync = sub.add_parser("sync", parents=[common], help="render, validate, apply and prune (one pass)")
    sync.add_argument("--env", help="only this environment (also applies a 'manual' environment's new commit)")
    sync.add_argument("--dry-run", action="store_true", help="plan and validate with the server; write nothing")
    sync.add_argument("--force", action="store_true", help="re-apply the commit even if it was applied before")
    sync.add_argument("--no-wait", action="store_true", help="don't follow the rollout after applying")
    sync.add_argument(
        "--timeout",
        type=_positive_seconds,
        metavar="DURATION",
        help="how long to follow the rollout before calling it failed: 90s, 5m (default: the environment's "
        "health_timeout, else the longest progressDeadlineSeconds plus 30s)",
    )

    health = sub.add_parser("health", parents=[common], help="every object of an environment with its health")
    health.add_argument("--env", required=True)

    history = sub.add_parser(
        "history", parents=[common], help="commits applied to an environment, and what each rolled forward"
    )
    history.add_argument("--env", required=True)

    drift = sub.add_parser("drift", parents=[common], help="how live objects moved away from the applied commit")
    drift.add_argument("--env", help="only this environment")

    diff = sub.add_parser("diff", parents=[common], help="show what a sync would change (exit 1 when it would)")
    diff.add_argument("--env", help="only this environment")

    status = sub.add_parser("status", parents=[common], help="environments, commits, objects, in sync or not")
    status.add_argument("--env", help="only this environment")

    validate = sub.add_parser("validate", parents=[common], help="render and validate every environment, offline")
    validate.add_argument("--env", help="only this environment")

    run = sub.add_parser("run", parents=[common], help="the daemon: passes on a schedule and on pushes, HTTP, metrics")
    run.add_argument("--listen", metavar="HOST:PORT", help="webhooks and probes (default: server.listen, 0.0.0.0:8080)")
    run.add_argument(
        "--status-listen",
        metavar="HOST:PORT",
        help="/status, /metrics and probes (default: server.status_listen, 0.0.0.0:9090)",
    )
    run.add_argument("--log-format", choices=("json", "text"), help="default: text on a terminal, else JSON lines")
    run.add_argument("--no-leader-election", action="store_true", help="lead without a Lease (one replica, laptops)")
    cli_proposals.add_parsers(sub, common)
    for name in ("sync", "rollback"):  # they may write: their pass waits for another writer first
        sub.choices[name].add_argument(
            "--lock-timeout",
            type=_seconds,
            metavar="DURATION",
            help="how long to wait while another pass (the daemon, another sync) writes the environment, "
            "then give up having written nothing: 30s, 2m, 0 (default 30s)",
        )
    return parser


def _seconds(value: str) -> float:
    """``30``, ``30s``, ``2m`` -> seconds (0 and above)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([sm]?)", value.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a duration such as 30s, 2m or 0, got {value!r}")
    return float(match[1]) * (60.0 if match[2] == "m" else 1.0)


def _positive_seconds(value: str) -> float:
    seconds = _seconds(value)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration above 0, such as 90s or 5m, got {value!r}")
    return seconds


def _add_global_flags(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """``--config`` and friends, before the command or after it. After it they are the command's
    own flags with no default (SUPPRESS), so they override a value given before, never reset it."""
    config_default = None if defaults else argparse.SUPPRESS
    parser.add_argument(
        "--config",
        default=config_default,
        help="agent config file (default: $GITOPS_AGENT_CONFIG, else ./gitops-agent.yaml)",
    )
    parser.add_argument(
        "--kubeconfig",
        default=config_default,
        help="kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)",
    )
    parser.add_argument("--output", "-o", choices=("text", "json"), default="text" if defaults else argparse.SUPPRESS)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(find_config_path(args.config))
        if args.command == "run":
            return _run(config, args)
        wiring = command_wiring(
            config,
            kubeconfig=args.kubeconfig,
            report=_applies(args),
            github=_applies(args) or (args.command in cli_proposals.COMMANDS and not getattr(args, "dry_run", False)),
            follow=_follow_settings(args),
            lock_wait_s=getattr(args, "lock_timeout", None),
        )
    except GitOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        return COMMANDS[args.command](wiring, args)
    except GitOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        _write_stats(wiring.agent)
        wiring.close()


def _applies(args: argparse.Namespace) -> bool:
    """Does the command write to a cluster? Then GitHub and chat hear of it (``sync``, ``rollback --now``)."""
    if getattr(args, "dry_run", False):
        return False
    return args.command == "sync" or (args.command == "rollback" and bool(args.now))


def _follow_settings(args: argparse.Namespace) -> FollowSettings:
    """``--no-wait``, ``--timeout``; ``sync`` says how the rollout goes while it follows it."""
    if args.command != "sync":
        return FollowSettings(enabled=not getattr(args, "no_wait", False))
    settings = FollowSettings(enabled=not args.no_wait, timeout_s=args.timeout)
    return replace(settings, progress=ProgressLines(every_s=PROGRESS_EVERY_S, poll_s=settings.poll_s))


class ProgressLines:
    """Prints ``present.format_progress`` to stderr: at the first look at an environment's rollout,
    then at least every ``every_s``. The follower looks every ``poll_s``, so a line is printed once
    waiting for the next look would leave more than ``every_s`` since the last one."""

    def __init__(self, *, every_s: float, poll_s: float, stream: TextIO | None = None) -> None:
        self.every_s, self.poll_s = every_s, poll_s
        self._stream = stream
        self._last: dict[str, float] = {}

    def __call__(self, environment: str, progress: RolloutProgress) -> None:
        if not progress_due(self._last.get(environment), progress.elapsed_s, self.every_s - self.poll_s):
            return
        self._last[environment] = progress.elapsed_s
        # sys.stderr looked up now: tests (and CLIs embedding this one) swap it
        print(format_progress(environment, progress), file=self._stream or sys.stderr, flush=True)


def progress_due(last_s: float | None, elapsed_s: float, gap_s: float) -> bool:
    """A line is due at the first look (``last_s`` None, or a new rollout whose clock restarted)
    and once ``gap_s`` has passed since the last one."""
    return last_s is None or elapsed_s < last_s or elapsed_s - last_s >= gap_s


def _write_stats(agent: Agent) -> None:
    """``$GITOPS_AGENT_STATS=FILE``: the API requests this run sent, for benchmarks."""
    path = os.environ.get("GITOPS_AGENT_STATS")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"requests": agent.request_counts()}, f)


# --- commands -------------------------------------------------------------------------------


def _run(config: Config, args: argparse.Namespace) -> int:
    # the daemon's imports are not needed by one-shot commands
    from gitops_agent.composition.daemon import RunOptions, daemon_wiring
    from gitops_agent.logging_setup import setup_logging
    from gitops_agent.serve import serve

    setup_logging(args.log_format)
    options = RunOptions(
        args.listen, args.log_format, not args.no_leader_election, args.kubeconfig, status_listen=args.status_listen
    )
    return serve(daemon_wiring(config, options))


def _health(w: Wiring, args: argparse.Namespace) -> int:
    commit, objects = w.agent.health(args.env)
    overall = aggregate(o.status for o in objects)
    if args.output == "json":
        _print_json(health_json(args.env, commit, overall, objects))
    else:
        print(format_health(args.env, commit, overall, objects))
    return EXIT_OK if overall is HealthStatus.CURRENT else EXIT_CHANGES


def _sync(w: Wiring, args: argparse.Namespace) -> int:
    results = w.agent.sync_all(args.env, dry_run=args.dry_run, explicit=bool(args.env), force=args.force)
    if w.reporter is not None:
        w.reporter.flush()  # statuses of this run are sent before the command returns
    if args.output == "json":
        _print_json({"results": [pass_json(r) for r in results]})
    else:
        for r in results:
            print(format_pass(r))
    return sync_exit_code(results)


def sync_exit_code(results: Sequence[PassResult]) -> int:
    """1 when a pass failed; else 3 when a rollout it followed failed or timed out; else 0."""
    if not all(r.ok for r in results):
        return EXIT_CHANGES
    if any(r.health is not None and r.health.status is HealthStatus.FAILED for r in results):
        return EXIT_ROLLOUT_FAILED
    return EXIT_OK


def _diff(w: Wiring, args: argparse.Namespace) -> int:
    results = w.agent.sync_all(args.env, dry_run=True)
    if args.output == "json":
        _print_json({"results": [pass_json(r, with_diff=True) for r in results]})
    else:
        for r in results:
            if not r.ok:
                print(f"# {r.environment}: error: {r.error}", file=sys.stderr)
            for o in r.sync.objects if r.sync else ():
                if o.diff:
                    print(o.diff, end="" if o.diff.endswith("\n") else "\n")
    if not all(r.ok for r in results):
        return EXIT_ERROR
    return EXIT_CHANGES if any(r.sync and r.sync.has_changes for r in results) else EXIT_OK


def _history(w: Wiring, args: argparse.Namespace) -> int:
    entries = w.agent.history(args.env)
    if args.output == "json":
        _print_json({"environment": args.env, "history": [history_json(h) for h in entries]})
    else:
        print(format_history(args.env, entries))
    return EXIT_OK


def _drift(w: Wiring, args: argparse.Namespace) -> int:
    reports = w.agent.drift_all(args.env)
    if args.output == "json":
        _print_json({"environments": [drift_json(r) for r in reports]})
    else:
        print("\n\n".join(format_drift(r) for r in reports))
    if any(not r.ok for r in reports):
        return EXIT_ERROR
    return EXIT_CHANGES if any(r.drift for r in reports) else EXIT_OK


def _status(w: Wiring, args: argparse.Namespace) -> int:
    rows = w.agent.status(args.env)
    prs = None if args.env else w.agent.pull_request_environments()  # None: none configured
    if args.output == "json":
        extra = {"pull_request_environments": [pr_environment_json(p) for p in prs]} if prs is not None else {}
        _print_json({"environments": [status_row_json(r) for r in rows], **extra})
    else:
        print(format_status(rows))
        if prs:
            print("\n" + format_pr_environments(prs))
    return EXIT_OK if all(not r.error for r in rows) else EXIT_CHANGES


def _validate(w: Wiring, args: argparse.Namespace) -> int:
    fetch_error = w.agent.fetch()
    failures = 0
    report: list[dict[str, Any]] = []
    for env in w.agent.environments(args.env):
        try:
            if fetch_error:
                raise fetch_error
            commit = w.agent.target_commit(env)
            objects = w.agent.snapshots.render(env, commit)
            report.append({"environment": env.name, "commit": commit, "objects": len(objects), "error": ""})
        except GitOpsError as exc:
            failures += 1
            report.append({"environment": env.name, "commit": "", "objects": 0, "error": str(exc)})
    if args.output == "json":
        _print_json({"environments": report})
    else:
        for row in report:
            verdict = f"error: {row['error']}" if row["error"] else f"ok, {row['objects']} objects"
            print(f"{row['environment']}: {verdict}")
    return EXIT_CHANGES if failures else EXIT_OK


COMMANDS: dict[str, Callable[[Wiring, argparse.Namespace], int]] = {
    "sync": _sync,
    "diff": _diff,
    "status": _status,
    "validate": _validate,
    "drift": _drift,
    "history": _history,
    "health": _health,
    **cli_proposals.COMMANDS,
}


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")
