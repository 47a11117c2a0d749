"""Command line of the changes the agent proposes by pull request: ``promote``, ``rollback``, ``preview``.

Kept apart from :mod:`gitops_agent.cli` so that file only registers these commands; each prints
what it did (or, with ``--dry-run``, the overlay diff and the pull request body it would open) and
``--output json`` gives the same as stable fields.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gitops_agent.composition import Wiring, require_github
from gitops_agent.model import Action
from gitops_agent.preview import PreviewResult, preview_pull_request
from gitops_agent.promotion import Proposal, promote, rollback
from gitops_agent.reconcile import PassResult

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register the commands on ``gitops-agent``'s subparsers."""
    p = sub.add_parser(
        "promote", parents=[common], help="open a pull request running one environment's release in another"
    )
    p.add_argument("--from", dest="source", required=True, metavar="ENV", help="the environment to promote from")
    p.add_argument("--to", dest="target", required=True, metavar="ENV", help="the environment to promote to")
    p.add_argument("--app", help="only objects labelled app.kubernetes.io/name=APP (or named APP)")
    p.add_argument("--dry-run", action="store_true", help="print the overlay diff and the pull request; push nothing")

    r = sub.add_parser("rollback", parents=[common], help="open a pull request restoring an environment to a commit")
    r.add_argument("--env", required=True)
    r.add_argument("--to", required=True, metavar="SHA", help="the commit to restore the environment's directory to")
    r.add_argument("--now", action="store_true", help="also apply that commit's snapshot at once (until the PR merges)")
    r.add_argument("--dry-run", action="store_true", help="print the diff and the pull request; change nothing")

    v = sub.add_parser("preview", parents=[common], help="post what a pull request would change in each environment")
    v.add_argument("--pr", type=int, required=True, metavar="N")
    v.add_argument("--head", metavar="SHA", help="preview only if the PR's head is still this commit")
    v.add_argument("--base", metavar="BRANCH", help="the PR's base branch (default: repo.branch)")


def run_promote(w: Wiring, args: argparse.Namespace) -> int:
    github = None if args.dry_run else w.github
    proposal = promote(w.agent, github, source=args.source, target=args.target, app=args.app, dry_run=args.dry_run)
    return _print_proposal(proposal, args.output)


def run_rollback(w: Wiring, args: argparse.Namespace) -> int:
    github = None if args.dry_run else w.github
    proposal = rollback(w.agent, github, environment=args.env, to=args.to, now=args.now, dry_run=args.dry_run)
    code = _print_proposal(proposal, args.output)
    return EXIT_FAILED if proposal.applied is not None and not proposal.applied.ok else code


def run_preview(w: Wiring, args: argparse.Namespace) -> int:
    config = w.agent.config
    github = require_github(w.github, config, "gitops-agent preview posts statuses and a comment on the pull request")
    target_url = config.github.target_url if config.github else None
    result = preview_pull_request(w.agent, github, args.pr, args.head, base_ref=args.base, target_url=target_url)
    if args.output == "json":
        _print_json(preview_json(result))
    else:
        print(format_preview(result))
    return EXIT_FAILED if any(p.state != "success" for p in result.environments) else EXIT_OK


COMMANDS = {"promote": run_promote, "rollback": run_rollback, "preview": run_preview}


# --- output ---------------------------------------------------------------------------------------


def _print_proposal(proposal: Proposal, output: str) -> int:
    if output == "json":
        _print_json(proposal_json(proposal))
    else:
        print(format_proposal(proposal))
    return EXIT_OK


def proposal_json(p: Proposal) -> dict[str, Any]:
    promotion = p.promotion
    return {
        "branch": p.branch,
        "base": p.base,
        "title": p.title,
        "body": p.body,
        "diff": p.diff,
        "dry_run": p.dry_run,
        "commit": p.commit,
        "pull_request": p.pull_request,
        "url": p.url,
        "notes": list(p.notes),
        "images": [
            {"name": c.name, "from": [str(r) for r in c.current], "to": str(c.to), "digest": c.to.digest}
            for c in (promotion.images if promotion else ())
        ],
        "fields": [
            {"object": str(f.key), "path": f.path, "from": f.shown(f.current), "to": f.shown(f.value)}
            for f in (promotion.fields if promotion else ())
        ],
        "applied": None if p.applied is None else {"ok": p.applied.ok, "error": p.applied.error,
                                                   "summary": _applied_summary(p.applied)},
    }  # fmt: skip


def format_proposal(p: Proposal) -> str:
    if p.promotion is not None and p.promotion.empty:
        lines = [f"nothing to promote: {p.promotion.target} already runs what {p.promotion.source} runs"]
    else:
        lines = [p.title]
        lines += [f"  {line}" for line in (p.promotion.lines() if p.promotion else ())]
    lines += [f"note: {n}" for n in p.notes]
    if p.applied is not None:
        verb = "would apply" if p.dry_run else "applied"
        lines.append(f"{verb} now: {p.applied.error or _applied_summary(p.applied)}")
        lines += [
            f"    {o.action.value:<10} {o.key}"
            for o in (p.applied.sync.objects if p.applied.sync else ())
            if o.action in (Action.CREATED, Action.CONFIGURED, Action.PRUNED, Action.FAILED)
        ]
    if p.dry_run and p.diff:
        lines += ["", f"--- the change on {p.branch} (not pushed) ---", p.diff.rstrip("\n")]
        lines += ["", f"--- pull request into {p.base}: {p.title} ---", p.body.rstrip("\n")]
    elif p.commit:
        lines.append(f"pushed {p.branch} ({p.commit[:12]})")
        if p.pull_request is not None:
            lines.append(f"pull request #{p.pull_request}: {p.url}")
    return "\n".join(lines)


def preview_json(r: PreviewResult) -> dict[str, Any]:
    return {
        "pull_request": r.pull_request,
        "head": r.head,
        "base": r.base,
        "skipped": r.skipped,
        "comment_id": r.comment_id,
        "environments": [
            {"environment": p.environment, "state": p.state, "description": p.description} for p in r.environments
        ],
    }


def format_preview(r: PreviewResult) -> str:
    if r.skipped:
        return f"PR #{r.pull_request}: skipped: {r.skipped}"
    if not r.environments:
        return f"PR #{r.pull_request} @ {r.head[:12]}: changes no environment"
    lines = [f"PR #{r.pull_request} @ {r.head[:12]}:"]
    lines += [f"  {p.environment}: {p.state}: {p.description}" for p in r.environments]
    if r.comment_id is not None:
        lines.append(f"comment {r.comment_id} updated with the full diff")
    return "\n".join(lines)


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _applied_summary(applied: PassResult) -> str:
    return applied.sync.changes.summary() if applied.sync else "nothing applied"
