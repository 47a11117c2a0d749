"""Pull request previews: what merging a PR would do to each live environment, posted on the PR.

For every environment whose rendered snapshot the PR changes, the PR head is rendered and planned
against the live cluster (a dry-run pass: server-side dry-runs, nothing written). The
result goes to GitHub twice: one commit status per changed environment on the head commit
(``gitops-agent/preview/<env>``: "3 objects change, 1 pruned"), and one comment with the full
diffs, found again by a hidden marker and updated in place on later pushes, so a PR never collects
a pile of stale previews.

Secret values never appear: the engine's diffs mask them. The comment stays under GitHub's body
limit by cutting diffs (never the summary) and saying where.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gitops_agent.adapters.git_workspace import Workspace
from gitops_agent.agent import Agent
from gitops_agent.cluster import SyncResult
from gitops_agent.config import EnvironmentConfig
from gitops_agent.core.report import DESCRIPTION_LIMIT, cut
from gitops_agent.errors import GitOpsError
from gitops_agent.model import Action, DesiredObject
from gitops_agent.reconcile import PassRequest
from gitops_agent.snapshots import same_snapshot

MARKER = "<!-- gitops-agent:preview -->"
#: GitHub refuses an issue comment body longer than this (characters)
COMMENT_LIMIT = 65_536
STATUS_CONTEXT = "gitops-agent/preview/{env}"


class PreviewGitHub(Protocol):
    """What a preview needs from GitHub (gitops_agent.adapters.github's client provides it)."""

    def create_status(
        self, sha: str, *, state: str, context: str, description: str, target_url: str | None = None
    ) -> dict[str, Any]: ...

    def list_issue_comments(self, number: int) -> list[dict[str, Any]]: ...

    def create_issue_comment(self, number: int, body: str) -> dict[str, Any]: ...

    def update_issue_comment(self, comment_id: int, body: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class EnvironmentPreview:
    """One environment the PR changes: the plan against live, or why there is none."""

    environment: str
    result: SyncResult | None = None
    error: str = ""

    @property
    def state(self) -> str:
        """The commit status: a PR that breaks an environment's render fails; a plan is information."""
        return "failure" if self.error or (self.result is not None and not self.result.ok) else "success"

    @property
    def description(self) -> str:
        if self.result is None:
            return cut(f"does not render: {self.error}", DESCRIPTION_LIMIT)
        if not self.result.ok:
            return cut(f"plan failed: {self.result.error}", DESCRIPTION_LIMIT)
        return describe(self.result)


@dataclass(frozen=True)
class PreviewResult:
    pull_request: int
    head: str
    base: str
    environments: tuple[EnvironmentPreview, ...] = ()
    comment_id: int | None = None
    comment: str = ""
    skipped: str = ""  # why nothing was posted


def preview_pull_request(
    agent: Agent,
    github: PreviewGitHub,
    pr_number: int,
    head_sha: str | None = None,
    *,
    base_ref: str | None = None,
    target_url: str | None = None,
    fetch: bool = True,
) -> PreviewResult:
    """Preview PR ``pr_number`` (the daemon's ``pull_request`` webhook calls this with the head sha
    and base branch from the payload, and ``fetch=False`` when it keeps the repository fetched).
    Environments that follow another branch than the PR's base are left out: merging the PR does
    not change them."""
    error = agent.fetch() if fetch else None
    if error is not None:
        raise error
    workspace = Workspace(agent.snapshots.source)
    head = workspace.fetch_pull(pr_number)
    if head_sha and head != head_sha:
        why = f"PR #{pr_number} moved on to {head[:12]}; its own event previews that"
        return PreviewResult(pr_number, head_sha, "", skipped=why)
    base_ref = base_ref or agent.config.repo.branch
    base = workspace.merge_base(f"refs/remotes/origin/{base_ref}", head)
    envs = [e for e in agent.config.environments if agent.config.branch_of(e) == base_ref]
    previews = tuple(p for p in (_preview(agent, env, base, head) for env in envs) if p is not None)
    for p in previews:
        context = STATUS_CONTEXT.format(env=p.environment)
        github.create_status(head, state=p.state, context=context, description=p.description, target_url=target_url)
    comment_id, body = _upsert_comment(github, pr_number, render_comment(head, previews))
    return PreviewResult(pr_number, head, base, previews, comment_id, body)


def _preview(agent: Agent, env: EnvironmentConfig, base: str, head: str) -> EnvironmentPreview | None:
    """The plan of ``env`` at ``head`` against live, or None when the PR leaves its snapshot as it was."""
    try:
        after = agent.snapshot(env, head)
    except GitOpsError as exc:
        return EnvironmentPreview(env.name, error=str(exc))
    try:
        before: Sequence[DesiredObject] | None = agent.snapshot(env, base)
    except GitOpsError:
        before = None  # broken at the base: whatever the head renders is a change
    if before is not None and same_snapshot(before, after):
        return None
    planned = agent.reconcile(env, PassRequest(dry_run=True, commit=head))
    if planned.sync is None:  # the pass failed before planning (the cluster unreachable)
        return EnvironmentPreview(env.name, error=planned.error)
    return EnvironmentPreview(env.name, planned.sync)


def _upsert_comment(github: PreviewGitHub, number: int, body: str | None) -> tuple[int | None, str]:
    """Update the PR's preview comment in place, or post it; None when there is nothing to say and
    nothing said before."""
    existing = next((c for c in github.list_issue_comments(number) if MARKER in str(c.get("body", ""))), None)
    if body is None:
        if existing is None:
            return None, ""
        body = render_comment_nothing()
    if existing is not None:
        github.update_issue_comment(int(existing["id"]), body)
        return int(existing["id"]), body
    return int(github.create_issue_comment(number, body)["id"]), body


# --- rendering (pure) -----------------------------------------------------------------------------


def describe(result: SyncResult) -> str:
    """``3 objects change, 1 pruned`` (or ``no change``) for a commit status."""
    changes = result.changes
    changed = changes.count(Action.CREATED) + changes.count(Action.CONFIGURED)
    pruned = changes.count(Action.PRUNED)
    parts = [f"{changed} object{'s' if changed != 1 else ''} change{'s' if changed == 1 else ''}"] if changed else []
    parts += [f"{pruned} pruned"] if pruned else []
    return ", ".join(parts) or "no change to live objects"


def render_comment_nothing() -> str:
    return f"{MARKER}\n### gitops-agent preview\n\nThis pull request no longer changes any environment.\n"


def render_comment(head: str, previews: Sequence[EnvironmentPreview]) -> str | None:
    """The one preview comment: a summary per environment, then the diffs, cut to fit GitHub's limit."""
    if not previews:
        return None
    head_lines = [MARKER, f"### gitops-agent preview of `{head[:12]}`", ""]
    head_lines += ["| Environment | Plan against live |", "|---|---|"]
    head_lines += [f"| {p.environment} | {_cell(p)} |" for p in previews]
    head_lines += ["", "Secret values are masked. Updated in place on every push to this pull request.", ""]
    sections = [_section(p) for p in previews]
    return _fit("\n".join(head_lines), sections, COMMENT_LIMIT)


def _cell(p: EnvironmentPreview) -> str:
    text = p.description if p.state == "success" else f"**{p.description}**"
    return text.replace("|", "\\|").replace("\n", " ")


def _section(p: EnvironmentPreview) -> tuple[str, list[str]]:
    """(heading, diff lines) of one environment."""
    heading = f"<details><summary><b>{p.environment}</b>: {_cell(p)}</summary>\n"
    if p.error or p.result is None:
        return heading, [p.error]
    lines: list[str] = []
    for o in p.result.objects:
        if o.action in (Action.CREATED, Action.CONFIGURED, Action.PRUNED):
            lines += [f"# {o.action.value} {o.key}", *(o.diff.rstrip("\n").splitlines() if o.diff else [])]
        elif o.action in (Action.FAILED, Action.SKIPPED):
            lines.append(f"# {o.action.value} {o.key}: {o.message}")
    return heading, lines


def _fit(head: str, sections: Sequence[tuple[str, list[str]]], limit: int) -> str:
    """Head, then each section's diff in a fenced block, cutting diffs (never headings) to ``limit``."""
    fences = [_fence(lines) for _, lines in sections]
    frames = [
        (f"{heading}\n{fence}diff\n", f"\n{fence}\n</details>\n")
        for (heading, _), fence in zip(sections, fences, strict=True)
    ]
    # reserved: the closing note, and one 'more lines not shown' line per section
    budget = limit - len(head) - sum(len(a) + len(b) + 1 for a, b in frames) - 300 - 60 * len(sections)
    out, left_out = [head], 0
    for (_, lines), (start, end) in zip(sections, frames, strict=True):
        kept: list[str] = []
        for i, line in enumerate(lines):
            if len(line) + 1 > budget:
                left_out += len(lines) - i
                kept.append(f"… {len(lines) - i} more lines not shown")
                budget = 0
                break
            kept.append(line)
            budget -= len(line) + 1
        out.append(start + "\n".join(kept) + end)
    note = ""
    if left_out:
        note = (
            f"\n**The diff was cut to fit GitHub's comment limit ({left_out} lines left out).** "
            "Run `gitops-agent diff --env NAME` on the PR head for all of it.\n"
        )
    return "\n".join(out) + note


def _fence(lines: Sequence[str]) -> str:
    """A code fence longer than any run of backticks in the content, so a diff cannot close it."""
    longest = max((len(run) for line in lines for run in re.findall(r"`+", line)), default=0)
    return "`" * max(3, longest + 1)
