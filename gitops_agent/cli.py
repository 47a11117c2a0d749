"""Command line: ``gitops-agent sync|diff|drift|status|history|validate|run`` (and the proposals:
``promote``, ``rollback``, ``preview``, registered from ``cli_proposals``).

Exit codes follow ``kubectl diff``: 0 nothing to change (or success), 1 changes found (``diff``)
or an environment failed (other commands), 2 and above usage or configuration errors.
Every command that reads state accepts ``--output json``; the field names are documented in the
README and kept stable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from gitops_agent import __version__, cli_proposals
from gitops_agent.config import find_config_path, load_config
from gitops_agent.core.drift import ObjectDrift
from gitops_agent.core.health import aggregate
from gitops_agent.engine import ObjectPlan, SyncResult
from gitops_agent.errors import GitOpsError
from gitops_agent.model import Action, HealthStatus, ObjectKey
from gitops_agent.reporting import reporter_from_config
from gitops_agent.service import Agent, EnvironmentStatus, HistoryEntry, PassResult

EXIT_OK, EXIT_CHANGES, EXIT_ERROR = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gitops-agent",
        description="A GitOps agent for Kubernetes: applies each commit once, explains drift, follows rollouts.",
    )
    parser.add_argument("--version", action="version", version=f"gitops-agent {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="agent config file (default: $GITOPS_AGENT_CONFIG, else ./gitops-agent.yaml)")
    common.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)")
    common.add_argument("--output", "-o", choices=("text", "json"), default="text")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sync = sub.add_parser("sync", parents=[common], help="render, validate, apply and prune (one pass)")
    sync.add_argument("--env", help="only this environment (also applies a 'manual' environment's new commit)")
    sync.add_argument("--dry-run", action="store_true", help="plan and validate with the server; write nothing")
    sync.add_argument("--force", action="store_true", help="re-apply the commit even if it was applied before")
    sync.add_argument("--no-wait", action="store_true", help="don't follow the rollout after applying")

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
    run.add_argument("--listen", metavar="HOST:PORT", help="HTTP address (default: server.listen, 0.0.0.0:8080)")
    run.add_argument("--log-format", choices=("json", "text"), help="default: text on a terminal, else JSON lines")
    run.add_argument("--no-leader-election", action="store_true", help="lead without a Lease (one replica, laptops)")
    cli_proposals.add_parsers(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(find_config_path(args.config))
    except GitOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    agent = Agent(config, kubeconfig=args.kubeconfig)
    try:
        handler = {
            "sync": _sync,
            "diff": _diff,
            "status": _status,
            "validate": _validate,
            "drift": _drift,
            "history": _history,
            "run": _run,
            "health": _health,
            **cli_proposals.COMMANDS,
        }[args.command]
        return handler(agent, args)
    except GitOpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        _write_stats(agent)
        agent.close()


def _write_stats(agent: Agent) -> None:
    """``$GITOPS_AGENT_STATS=FILE``: the API requests this run sent, for benchmarks."""
    path = os.environ.get("GITOPS_AGENT_STATS")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"requests": agent.request_counts()}, f)


# --- commands -------------------------------------------------------------------------------


def _run(agent: Agent, args: argparse.Namespace) -> int:
    # the daemon's imports are not needed by one-shot commands
    from gitops_agent.github_factory import github_client
    from gitops_agent.preview import preview_pull_request
    from gitops_agent.runner import RunOptions, run

    options = RunOptions(args.listen, args.log_format, not args.no_leader_election, args.kubeconfig)
    reporter = reporter_from_config(agent.config)
    github = github_client(agent.config)
    previewer = None
    if github is not None:
        target_url = agent.config.github.target_url if agent.config.github else None

        def previewer(number: int, head_sha: str, base_ref: str) -> object:
            return preview_pull_request(agent, github, number, head_sha, base_ref=base_ref, target_url=target_url)

    try:
        return run(agent, options, reporters=lambda metrics: [reporter] if reporter else [], previewer=previewer)
    finally:
        if reporter is not None:
            reporter.close()


def _health(agent: Agent, args: argparse.Namespace) -> int:
    commit, objects = agent.health(args.env)
    overall = aggregate(o.status for o in objects)
    if args.output == "json":
        rows = [{**_key_json(o.key), "status": o.status.value, "message": o.message} for o in objects]
        _print_json({"environment": args.env, "commit": commit, "status": overall.value, "objects": rows})
    elif not commit:
        print(f"{args.env}: nothing applied yet")
    else:
        print(f"{args.env} @ {commit[:12]}: {overall.value}")
        for o in objects:
            print(f"  {o.status.value:<10} {o.key}: {o.message}")
    return EXIT_OK if overall is HealthStatus.CURRENT else EXIT_CHANGES


def _sync(agent: Agent, args: argparse.Namespace) -> int:
    agent.follow_rollouts = not args.no_wait
    reporter = None if args.dry_run else reporter_from_config(agent.config)
    if reporter is not None:
        agent.listeners.append(reporter)
    try:
        results = agent.sync_all(args.env, dry_run=args.dry_run, explicit=bool(args.env), force=args.force)
    finally:
        if reporter is not None:
            reporter.close()  # statuses of this run are sent before the command returns
    if args.output == "json":
        _print_json({"results": [pass_json(r) for r in results]})
    else:
        for r in results:
            print(format_pass(r))
    return EXIT_OK if all(r.ok for r in results) else EXIT_CHANGES


def _diff(agent: Agent, args: argparse.Namespace) -> int:
    results = agent.sync_all(args.env, dry_run=True)
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


def _history(agent: Agent, args: argparse.Namespace) -> int:
    entries = agent.history(args.env)
    if args.output == "json":
        _print_json({"environment": args.env, "history": [history_json(h) for h in entries]})
        return EXIT_OK
    if not entries:
        print(f"{args.env}: nothing applied yet")
    for h in entries:
        e = h.entry
        mark = "  <- running" if h.running else ""
        if e.rolled_back_from:  # `rollback --now`: held here until the rollback PR merges
            mark = f"  (rolled back from {e.rolled_back_from[:12]})" + mark
        print(f"{e.time}  {e.commit[:12]}  {e.result:<8} {e.summary or e.message}{mark}")
        for c in h.commits:
            print(f"    {c.sha[:12]} {c.date:%Y-%m-%d %H:%M} {c.author}: {c.subject}")
    return EXIT_OK


def history_json(h: HistoryEntry) -> dict[str, Any]:
    return {
        **asdict(h.entry),
        "running": h.running,
        "commits": [
            {"sha": c.sha, "author": c.author, "date": c.date.isoformat(), "subject": c.subject} for c in h.commits
        ],
    }


def _drift(agent: Agent, args: argparse.Namespace) -> int:
    reports = agent.drift_all(args.env)
    if args.output == "json":
        _print_json({"environments": [drift_json(r) for r in reports]})
    else:
        print("\n\n".join(format_drift(r) for r in reports))
    if any(not r.ok for r in reports):
        return EXIT_ERROR
    return EXIT_CHANGES if any(r.drift for r in reports) else EXIT_OK


def _status(agent: Agent, args: argparse.Namespace) -> int:
    rows = agent.status(args.env)
    if args.output == "json":
        _print_json({"environments": [asdict(r) for r in rows]})
    else:
        print(format_status(rows))
    return EXIT_OK if all(not r.error for r in rows) else EXIT_CHANGES


def _validate(agent: Agent, args: argparse.Namespace) -> int:
    fetch_error = agent.fetch()
    failures = 0
    report: list[dict[str, Any]] = []
    for env in agent.environments(args.env):
        try:
            if fetch_error:
                raise fetch_error
            commit = agent.target_commit(env)
            objects = agent.render(env, commit)
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


# --- rendering ------------------------------------------------------------------------------


def pass_json(r: PassResult, *, with_diff: bool = False) -> dict[str, Any]:
    """The stable JSON shape of one environment's pass (documented in the README)."""
    return {
        "environment": r.environment,
        "commit": r.commit,
        "outcome": r.outcome,
        "ok": r.ok,
        "error": r.error,
        "reason": r.reason,
        "message": r.message,
        "sync": sync_json(r.sync, with_diff=with_diff) if r.sync else None,
        "repaired": sync_json(r.repaired, with_diff=with_diff) if r.repaired else None,
        "drift": [_object_drift_json(d) for d in r.drift],
        "health": {"status": r.health.status.value, "message": r.health.message} if r.health else None,
    }


def sync_json(r: SyncResult, *, with_diff: bool = False) -> dict[str, Any]:
    return {
        "dry_run": r.dry_run,
        "ok": r.ok,
        "error": r.error,
        "summary": {a.value: r.changes.count(a) for a in Action},
        "objects": [_object_json(o, with_diff) for o in r.objects],
    }


def drift_json(r: PassResult) -> dict[str, Any]:
    return {
        "environment": r.environment,
        "commit": r.commit,
        "ok": r.ok,
        "error": r.error,
        "expected": sum(1 for d in r.drift if d.expected),
        "unexpected": sum(1 for d in r.drift if not d.expected),
        "objects": [_object_drift_json(d) for d in r.drift],
    }


def _key_json(key: ObjectKey) -> dict[str, str]:
    return {"group": key.group, "kind": key.kind, "namespace": key.namespace, "name": key.name}


def _object_drift_json(d: ObjectDrift) -> dict[str, Any]:
    return {
        **_key_json(d.key),
        "drift": d.kind,
        "expected": d.expected,
        "fields": [asdict(f) for f in d.fields],
    }


def _object_json(o: ObjectPlan, with_diff: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        **_key_json(o.key),
        "action": o.action.value,
        "changed_paths": list(o.paths),
        "message": o.message,
        "source": o.source,
    }
    if with_diff:
        out["diff"] = o.diff
    return out


def format_pass(r: PassResult) -> str:
    head = f"{r.environment} @ {r.commit[:12] or '?'}: {r.outcome}"
    if not r.ok:
        return f"{head}: {r.error}"
    lines = [head + (f" ({r.message})" if r.message else "")]
    for label, result in (("", r.sync), ("repaired drift: ", r.repaired)):
        if result is None:
            continue
        lines.append(f"  {label}{result.changes.summary()}")
        lines += [
            f"    {o.action.value:<10} {o.key}" + (f" ({o.message})" if o.message else "")
            for o in result.objects
            if o.action is not Action.UNCHANGED
        ]
    if r.health is not None:
        lines.append(f"  rollout: {r.health.status.value}: {r.health.message}")
    if r.drift:
        unexpected = len(r.unexpected_drift)
        lines.append(f"  drift: {unexpected} unexpected, {len(r.drift) - unexpected} expected (gitops-agent drift)")
    return "\n".join(lines)


def format_drift(r: PassResult) -> str:
    head = f"{r.environment} @ {r.commit[:12] or '?'}"
    if not r.ok:
        return f"{head}: error: {r.error}"
    if not r.drift:
        return f"{head}: no drift"
    lines = [f"{head}: {len(r.unexpected_drift)} unexpected, {len(r.drift) - len(r.unexpected_drift)} expected"]
    for d in r.drift:
        label = "expected" if d.expected else "UNEXPECTED"
        if d.kind != "changed":
            lines.append(f"  {label:<10} {d.key}: {d.kind}")
            continue
        lines.append(f"  {label:<10} {d.key}")
        for f in d.fields:
            who = f"by {f.manager}" if f.manager else "removed"
            since = f" since {f.since}" if f.since else ""
            lines.append(f"      {f.path}: {_short(f.desired)} -> {_short(f.live)} ({who}{since})")
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def format_status(rows: list[EnvironmentStatus]) -> str:
    header = ("ENVIRONMENT", "TARGET", "APPLIED", "OBJECTS", "IN SYNC", "HEALTH", "DRIFT", "LAST RESULT")
    table = [header] + [
        (
            r.environment,
            r.target_commit[:12] or "-",
            r.applied_commit[:12] or "-",
            str(r.objects),
            "yes" if r.in_sync else "no",
            r.health or "-",
            f"{r.drift_unexpected} unexpected, {r.drift_expected} expected",
            r.last_result,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]
    errors = [f"{r.environment}: {r.error}" for r in rows if r.error]
    return "\n".join(lines + errors)


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")
