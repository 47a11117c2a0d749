"""Promotions and rollbacks, proposed as pull requests: git stays the record of intent.

``promote`` compares two environments' rendered snapshots (pure: :mod:`gitops_agent.core.promote`),
writes exactly the release identity that differs into the target environment's overlay (byte-exact
edits: :mod:`gitops_agent.core.yaml_edit`), commits it on ``promote/<from>-to-<to>/<sha>`` in a
working clone, pushes, and opens a pull request that says what moves and which commits brought it
to the source environment. ``rollback`` restores an environment's directory to an older commit the
same way; with ``now`` it also applies that commit's snapshot at once and records it in the ledger,
which holds the environment there until its intent in git changes (the rollback PR merging).

Rollback restores the environment's own directory (``env.path``) and nothing else. Bases such as
``apps/web`` are shared with other environments; restoring them would roll those back too. When a
base changed since the older commit, the proposal says so, and ``--now`` still applies the older
commit's exact snapshot.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from gitops_agent.adapters.git_source import CommitInfo
from gitops_agent.adapters.git_workspace import Workspace
from gitops_agent.agent import Agent
from gitops_agent.config import EnvironmentConfig
from gitops_agent.core.promote import ChartChange, FieldChange, Promotion, chart_changes, plan_promotion
from gitops_agent.core.render import KUSTOMIZATION_NAMES, is_manifest_path
from gitops_agent.core.yaml_edit import (
    set_fields,
    set_kustomize_chart_versions,
    set_kustomize_images,
    set_workload_images,
)
from gitops_agent.errors import ConfigError, RenderError, SourceError
from gitops_agent.reconcile import PassRequest, PassResult
from gitops_agent.snapshots import same_snapshot

#: GitHub refuses longer pull request titles
TITLE_LIMIT = 256
COMMITS_SHOWN = 30


class PullRequests(Protocol):
    """What a proposal needs from GitHub (gitops_agent.adapters.github's client provides it)."""

    def create_pull_request(self, *, title: str, head: str, base: str, body: str) -> dict[str, Any]: ...

    def list_pulls(self, *, head: str | None = None, state: str = "open") -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Proposal:
    """A change the agent proposes by pull request, or would propose (``dry_run``)."""

    branch: str
    base: str  # the branch the pull request targets
    title: str
    body: str
    diff: str  # of the files the branch changes
    dry_run: bool
    commit: str = ""  # the pushed commit
    pull_request: int | None = None
    url: str = ""
    notes: tuple[str, ...] = ()
    promotion: Promotion | None = None
    applied: PassResult | None = None  # rollback --now: the pass that applied it


# --- promote ------------------------------------------------------------------------------------


def promote(
    agent: Agent,
    github: PullRequests | None,
    *,
    source: str,
    target: str,
    app: str | None = None,
    dry_run: bool = False,
) -> Proposal:
    """Propose running in ``target`` the release ``source`` runs (its images and promotable fields)."""
    src, dst = agent.config.environment(source), agent.config.environment(target)
    if src.name == dst.name:
        raise ConfigError(f"{agent.config.source}: --from and --to are both {src.name!r}; name two environments")
    _fetch(agent)
    src_commit, dst_commit = agent.target_commit(src), agent.target_commit(dst)
    # What differs in release identity, from the rendered snapshots.
    promotion = plan_promotion(
        agent.snapshot(src, src_commit),
        agent.snapshot(dst, dst_commit),
        source_env=src.name,
        target_env=dst.name,
        app=app,
        fields=agent.config.promotion.fields,
    )
    charts = chart_changes(agent.snapshots.charts(src, src_commit), agent.snapshots.charts(dst, dst_commit))
    promotion = replace(promotion, charts=tuple(c for c in charts if app is None or c.name == app))
    base = agent.config.branch_of(dst)
    branch = f"promote/{src.name}-to-{dst.name}/{src_commit[:12]}"
    if promotion.empty:
        return Proposal(branch, base, "", "", "", dry_run, notes=promotion.notes, promotion=promotion)
    # Write it into the target's overlay on a fresh branch of the working clone.
    workspace = Workspace(agent.snapshots.source)
    workspace.update()
    workspace.checkout(dst_commit, branch)
    chart_files, promotion = _write_charts(agent, workspace.root, src, dst, (src_commit, dst_commit), promotion, app)
    if promotion.empty and not chart_files:
        return Proposal(branch, base, "", "", "", dry_run, notes=promotion.notes, promotion=promotion)
    changed = sorted({*chart_files, *write_promotion(workspace.root, dst.path, promotion)})
    diff = workspace.stage(changed)
    # Since the target's files last changed (its last promotion), what changed the source's files.
    since = workspace.last_change(dst_commit, dst.path)
    commits = workspace.log(since, src_commit, [src.path], limit=COMMITS_SHOWN)
    moved = [f"{c.name} {c.version}" for c in promotion.charts] + [f"{c.name} {c.to.version}" for c in promotion.images]
    title = _title(f"Promote {src.name} → {dst.name}: " + ", ".join(moved))
    if not moved:
        title = _title(f"Promote {src.name} → {dst.name}: {len(promotion.fields)} field(s)")
    body = promotion_body(promotion, src_commit=src_commit, dst_commit=dst_commit, commits=commits, app=app)
    proposal = Proposal(branch, base, title, body, diff, dry_run, notes=promotion.notes, promotion=promotion)
    if dry_run:
        return proposal
    message = f"{title}\n\n" + "\n".join(promotion.lines()) + f"\n\nFrom {src.name} at {src_commit}.\n"
    return _propose(workspace, github, proposal, message)


def _write_charts(
    agent: Agent,
    root: Path,
    src: EnvironmentConfig,
    dst: EnvironmentConfig,
    commits: tuple[str, str],
    promotion: Promotion,
    app: str | None,
) -> tuple[list[str], Promotion]:
    """Chart versions first: a new chart version brings its own images and fields, so what else
    differs is planned again against the target as rendered with the source's chart versions.
    A chart whose version no file of the target sets (``helm.chart`` in the agent config) is a note."""
    if not promotion.charts:
        return [], promotion
    changed, unwritten = write_chart_versions(root, dst.path, promotion.charts)
    notes = [
        f"chart {c.name}: no helmCharts entry of {dst.path} sets its version (helm.chart.version in the agent "
        f"config?); set it to {c.version} there"
        for c in unwritten
    ]
    retargeted = agent.snapshots.render_tree(root, dst.path) if changed else agent.snapshot(dst, commits[1])
    replanned = plan_promotion(
        agent.snapshot(src, commits[0]),
        retargeted,
        source_env=src.name,
        target_env=dst.name,
        app=app,
        fields=agent.config.promotion.fields,
    )
    written = tuple(c for c in promotion.charts if c not in unwritten)
    return changed, replace(replanned, charts=written, notes=(*replanned.notes, *notes))


def write_chart_versions(
    root: Path, env_path: str, charts: Sequence[ChartChange]
) -> tuple[list[str], list[ChartChange]]:
    """Each chart's version written into the ``helmCharts`` entries of the environment's own
    kustomization (byte-exact); the repo paths changed, and the charts no entry names."""
    root = root.resolve()
    env_dir = _env_dir(root, env_path)
    kustomization = next((env_dir / n for n in sorted(KUSTOMIZATION_NAMES) if (env_dir / n).is_file()), None)
    if kustomization is None:
        return [], list(charts)
    text = _read(kustomization, root)
    edited, done = set_kustomize_chart_versions(text, charts, source=_rel(kustomization, root))
    if edited != text:
        kustomization.write_text(edited, encoding="utf-8")
    return ([_rel(kustomization, root)] if edited != text else []), [c for c in charts if c.name not in done]


def write_promotion(root: Path, env_path: str, promotion: Promotion) -> list[str]:
    """Write the promotion into the environment's files below ``root``; the repo paths changed.

    A Kustomize overlay gets its ``images:`` list edited; a plain directory gets the image fields
    of the workloads edited in place. Promotable fields are set in whichever file of the environment
    sets them. Nothing is written unless every change found its place.
    """
    root = root.resolve()
    env_dir = _env_dir(root, env_path)
    kustomization = next((env_dir / n for n in sorted(KUSTOMIZATION_NAMES) if (env_dir / n).is_file()), None)
    files = _manifest_files(env_dir) + ([kustomization] if kustomization else [])
    original = {path: _read(path, root) for path in files}
    edited = dict(original)
    if kustomization is not None and promotion.images:
        edited[kustomization] = set_kustomize_images(
            original[kustomization], promotion.images, source=_rel(kustomization, root)
        )
    elif promotion.images:
        _write_workload_images(edited, promotion, root, env_path)
    _write_fields(edited, [p for p in files if p != kustomization], promotion, root, env_path)
    changed = {path: text for path, text in edited.items() if text != original[path]}
    for path, text in changed.items():
        path.write_text(text, encoding="utf-8")
    return sorted(_rel(p, root) for p in changed)


def _write_workload_images(edited: dict[Path, str], promotion: Promotion, root: Path, env_path: str) -> None:
    written: dict[str, int] = {}
    for path, text in edited.items():
        edited[path], counts = set_workload_images(text, promotion.images, source=_rel(path, root))
        for name, n in counts.items():
            written[name] = written.get(name, 0) + n
    missing = [c.name for c in promotion.images if not written.get(c.name)]
    if missing:
        raise RenderError(f"{env_path}: no file of the environment sets the image {missing[0]}; edit it by hand")


def _write_fields(
    edited: dict[Path, str], files: Sequence[Path], promotion: Promotion, root: Path, env_path: str
) -> None:
    done: set[FieldChange] = set()
    for path in files:
        edited[path], written = set_fields(edited[path], promotion.fields, source=_rel(path, root))
        done |= written
    for change in promotion.fields:
        if change not in done:
            raise RenderError(
                f"{env_path}: {change.key} {change.path} is set in no file of the environment "
                "(a resource or patch file); set it there once, then promote"
            )


def promotion_body(
    promotion: Promotion, *, src_commit: str, dst_commit: str, commits: Sequence[CommitInfo], app: str | None
) -> str:
    """The pull request's description: what is promoted (image, from → to, digest) and why."""
    scope = f" (app `{app}`)" if app else ""
    lines = [
        f"Promotes the release running in **{promotion.source}** to **{promotion.target}**{scope}.",
        "",
        f"{promotion.source} is at `{src_commit[:12]}`, {promotion.target} at `{dst_commit[:12]}`. Only release "
        f"identity moves; what environments are meant to differ in (replicas, settings) stays as it is.",
        "",
    ]
    if promotion.charts:
        lines += [f"| Chart | {promotion.target} now | → |", "|---|---|---|"]
        lines += [f"| `{c.name}` | {c.before} | **{c.version}** |" for c in promotion.charts]
        lines.append("")
    if promotion.images:
        lines += [f"| Image | {promotion.target} now | → | Digest |", "|---|---|---|---|"]
        for c in promotion.images:
            lines.append(f"| `{c.name}` | {c.before} | **{c.to.tag or '(untagged)'}** | {c.to.digest or '—'} |")
        lines.append("")
    if promotion.fields:
        lines += ["| Object | Field | Now | → |", "|---|---|---|---|"]
        for f in promotion.fields:
            lines.append(f"| `{f.key}` | `{f.path}` | `{f.shown(f.current)}` | `{f.shown(f.value)}` |")
        lines.append("")
    lines += _commit_list(f"Commits that brought this to {promotion.source}", commits)
    lines += _notes(promotion.notes)
    lines.append(f"Merging this pull request is the promotion: the agent then applies {promotion.target}'s new commit.")
    return "\n".join(lines) + "\n"


# --- rollback -----------------------------------------------------------------------------------


def rollback(
    agent: Agent,
    github: PullRequests | None,
    *,
    environment: str,
    to: str,
    now: bool = False,
    dry_run: bool = False,
) -> Proposal:
    """Propose restoring ``environment``'s directory to commit ``to``; with ``now``, apply that
    commit's snapshot at once (held until the environment's intent in git changes)."""
    env = agent.config.environment(environment)
    _fetch(agent)
    head = agent.target_commit(env)
    workspace = Workspace(agent.snapshots.source)
    workspace.update()
    # HEAD (HEAD~2, HEAD^) means the environment's commit, not whatever the clone has checked out.
    target = workspace.resolve(head + to[4:] if to.startswith("HEAD") else to)
    base = agent.config.branch_of(env)
    if target == head:
        raise SourceError(f"{env.name} is already at {target[:12]} ({base}); nothing to roll back")
    if not workspace.is_ancestor(target, head):
        raise SourceError(f"{to}: not in the history of {base}; roll {env.name} back to a commit its branch has had")
    branch = f"rollback/{env.name}/{target[:12]}"
    workspace.checkout(head, branch)
    workspace.restore(target, env.path)
    diff = workspace.stage([env.path])
    notes = _rollback_notes(agent, env, workspace, target, head, diff)
    undone = workspace.log(target, head, [env.path], limit=COMMITS_SHOWN)
    # --now: the older snapshot goes to the cluster before the pull request says it did.
    applied = apply_rollback(agent, env, target=target, head=head, dry_run=dry_run) if now else None
    held = applied is not None and applied.ok and not dry_run
    title = _title(f"Roll back {env.name} to {target[:12]}")
    body = rollback_body(env, target=target, head=head, undone=undone, notes=notes, now=held)
    proposal = Proposal(branch, base, title, body, diff, dry_run, notes=tuple(notes), applied=applied)
    if dry_run or not diff:
        return proposal
    message = f"{title}\n\nRestores {env.path} as it was at {target}.\n"
    return _propose(workspace, github, proposal, message)


def apply_rollback(
    agent: Agent, env: EnvironmentConfig, *, target: str, head: str, dry_run: bool = False
) -> PassResult:
    """Apply the snapshot of ``target`` now, as a pass that records it in the ledger as a rollback
    from ``head`` (held there until the environment's intent in git changes) and tells the listeners."""
    request = PassRequest(dry_run=dry_run, explicit=True, commit=target, rolled_back_from="" if dry_run else head)
    return agent.reconcile(env, request)


def rollback_body(
    env: EnvironmentConfig, *, target: str, head: str, undone: Sequence[CommitInfo], notes: Sequence[str], now: bool
) -> str:
    lines = [
        f"Rolls **{env.name}** back: restores `{env.path}` as it was at `{target[:12]}` "
        f"(the branch is at `{head[:12]}`).",
        "",
    ]
    if now:
        lines += [
            f"The agent already applied `{target[:12]}`'s snapshot to {env.name} (`rollback --now`) and holds it "
            "there until this pull request merges or the environment's files change.",
            "",
        ]
    lines += _commit_list(f"Commits to {env.path} this undoes", undone)
    lines += _notes(notes)
    return "\n".join(lines) + "\n"


def _rollback_notes(
    agent: Agent, env: EnvironmentConfig, workspace: Workspace, target: str, head: str, diff: str
) -> list[str]:
    """What restoring only ``env.path`` does not restore: changes to the bases it shares."""
    outside = sorted(p for p in agent.snapshots.source.changed_paths(target, head) if not _under(p, env.path))
    if not outside:
        return [] if diff else [f"{env.path} is already as it was at {target[:12]}."]
    restored = agent.snapshots.render_tree(workspace.root, env.path)
    wanted = agent.snapshot(env, target)
    if same_snapshot(restored, wanted):
        return []
    shown = ", ".join(outside[:5]) + (f" and {len(outside) - 5} more" if len(outside) > 5 else "")
    return [
        f"Files outside {env.path} changed since {target[:12]} ({shown}); this pull request restores "
        f"{env.path} only, so after it merges {env.name} still renders differently from {target[:12]}. "
        "Shared bases are left alone because other environments use them."
    ]


# --- shared steps -------------------------------------------------------------------------------


def _propose(workspace: Workspace, github: PullRequests | None, proposal: Proposal, message: str) -> Proposal:
    """Commit, push and open the pull request (or find the one already open for this branch)."""
    commit = workspace.commit(message)
    workspace.push(proposal.branch)
    done = replace(proposal, commit=commit)
    if github is None:
        note = f"no github: in the config: open a pull request from {proposal.branch} into {proposal.base} yourself"
        return replace(done, notes=(*done.notes, note))
    open_prs = github.list_pulls(head=proposal.branch, state="open")
    pr = open_prs[0] if open_prs else None
    if pr is None:
        pr = github.create_pull_request(
            title=proposal.title, head=proposal.branch, base=proposal.base, body=proposal.body
        )
    return replace(done, pull_request=int(pr["number"]), url=str(pr.get("html_url", "")))


def _fetch(agent: Agent) -> None:
    error = agent.fetch()
    if error is not None:
        raise error


def _commit_list(heading: str, commits: Sequence[CommitInfo]) -> list[str]:
    if not commits:
        return []
    lines = [f"### {heading}", ""]
    lines += [f"- `{c.sha[:12]}` {c.subject} — {c.author.split(' <')[0]}, {c.date:%Y-%m-%d}" for c in commits]
    if len(commits) >= COMMITS_SHOWN:
        lines.append(f"- … (the {COMMITS_SHOWN} newest are shown)")
    return [*lines, ""]


def _notes(notes: Sequence[str]) -> list[str]:
    return ["### Notes", "", *[f"- {n}" for n in notes], ""] if notes else []


def _title(text: str) -> str:
    return text if len(text) <= TITLE_LIMIT else text[: TITLE_LIMIT - 1] + "…"


def _env_dir(root: Path, env_path: str) -> Path:
    env_dir = (root / env_path).resolve()
    if not env_dir.is_relative_to(root.resolve()) or not env_dir.is_dir():
        raise RenderError(f"{env_path}: not a directory inside the repository")
    return env_dir


def _manifest_files(env_dir: Path) -> list[Path]:
    """Manifest files below the environment directory, symlinks not followed (never written through)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(env_dir):
        dirnames.sort()
        out += [Path(dirpath) / n for n in sorted(filenames) if is_manifest_path(n)]
    return out


def _read(path: Path, root: Path) -> str:
    if path.is_symlink():
        raise RenderError(f"{_rel(path, root)}: is a symlink; promotion edits regular files only")
    return path.read_text(encoding="utf-8")


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _under(path: str, directory: str) -> bool:
    directory = directory.strip("/")
    return path == directory or path.startswith(directory + "/")
