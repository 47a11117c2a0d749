"""Pull request previews: what merging a PR would do to each live environment, posted on the PR.

For every environment whose rendered snapshot the PR changes, the PR head is rendered and planned
against the live cluster (a dry-run pass: server-side dry-runs, nothing written). The
result goes to GitHub twice: one commit status per changed environment on the head commit
(``gitops-agent/preview/<env>``: "3 objects change, 1 pruned"), and one comment with the full
diffs, found again by a hidden marker and updated in place on later pushes, so a PR never collects
a pile of stale previews.

What the comment shows of the cluster is ``core.preview_view``'s rule: only objects the environment
manages, only the fields the pull request changes, Secret values masked; every text the pull
request controls is fenced or escaped (``core.preview_comment``). Who gets previewed at all is
``preview_gate``'s (the CLI previews whatever its operator asks for).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gitops_agent.adapters.git_workspace import Workspace
from gitops_agent.agent import Agent
from gitops_agent.cluster import SyncResult
from gitops_agent.config import EnvironmentConfig
from gitops_agent.core.preview_comment import COMMENT_LIMIT, MARKER, Section, render_nothing
from gitops_agent.core.preview_comment import render_comment as render_sections
from gitops_agent.core.preview_view import ObjectView, managed, manifests_by_key, view_lines
from gitops_agent.core.report import DESCRIPTION_LIMIT, cut
from gitops_agent.errors import GitOpsError
from gitops_agent.model import Action, DesiredObject
from gitops_agent.reconcile import PassRequest
from gitops_agent.snapshots import same_snapshot

__all__ = ["COMMENT_LIMIT", "DESCRIPTION_LIMIT", "MARKER", "EnvironmentPreview", "preview_pull_request"]

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
    #: what the comment shows of each object (``core.preview_view``), in plan order
    lines: tuple[str, ...] = ()

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
    return EnvironmentPreview(env.name, planned.sync, lines=shown(env, planned.sync, before or (), after))


def shown(
    env: EnvironmentConfig, result: SyncResult, base: Sequence[DesiredObject], head: Sequence[DesiredObject]
) -> tuple[str, ...]:
    """The lines the comment shows of a plan: what ``core.preview_view`` lets through of each object."""
    bases, heads = manifests_by_key(base, env.namespace), manifests_by_key(head, env.namespace)
    lines: list[str] = []
    for o in result.objects:
        view = ObjectView(
            o.key, o.action, env.name, live=o.live, planned=o.planned, base=bases.get(o.key), head=heads.get(o.key),
            managed=managed(o.key, o.live, result.inventory, env.name), message=o.message,
        )  # fmt: skip
        lines += view_lines(view)
    return tuple(lines)


def _upsert_comment(github: PreviewGitHub, number: int, body: str | None) -> tuple[int | None, str]:
    """Update the PR's preview comment in place, or post it; None when there is nothing to say and
    nothing said before."""
    existing = next((c for c in github.list_issue_comments(number) if MARKER in str(c.get("body", ""))), None)
    if body is None:
        if existing is None:
            return None, ""
        body = render_nothing()
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


def render_comment(head: str, previews: Sequence[EnvironmentPreview]) -> str | None:
    """The one preview comment (``core.preview_comment``), None when no environment changes."""
    return render_sections(head, [_section(p) for p in previews])


def _section(p: EnvironmentPreview) -> Section:
    if p.result is None:
        return Section(p.environment, False, "does not render", p.error)
    if not p.result.ok:
        return Section(p.environment, False, "plan failed", p.result.error, p.lines)
    return Section(p.environment, True, describe(p.result), "", p.lines)
