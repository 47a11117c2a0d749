"""What people and scripts read about passes: the CLI's text and ``--output json``, the daemon's log
summary and the drift counts of ``/status``.

Pure functions from result types to strings and JSON-ready dicts; nothing here prints. The JSON
field names are documented in the README and kept stable. "N unexpected, M expected" is said by
``drift_counts`` alone, and the objects are counted by ``core.drift.DriftCounts`` alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from gitops_agent.core.drift import CHANGED, DriftCounts, ObjectDrift
from gitops_agent.model import Action, HealthStatus, ObjectHealth, ObjectKey

if TYPE_CHECKING:
    from gitops_agent.cluster import ObjectPlan, SyncResult
    from gitops_agent.queries import EnvironmentStatus, HistoryEntry, PrEnvironmentStatus
    from gitops_agent.reconcile import PassResult
    from gitops_agent.rollout import RolloutProgress


# --- drift counts ---------------------------------------------------------------------------------


def drift_counts(counts: DriftCounts) -> str:
    """``1 unexpected, 2 expected`` (drifted objects)."""
    return f"{counts.unexpected} unexpected, {counts.expected} expected"


def drift_counts_json(counts: DriftCounts) -> dict[str, int]:
    return {"expected": counts.expected, "unexpected": counts.unexpected}


# --- JSON -----------------------------------------------------------------------------------------


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
        **drift_counts_json(DriftCounts.of(r.drift)),
        "objects": [_object_drift_json(d) for d in r.drift],
    }


def history_json(h: HistoryEntry) -> dict[str, Any]:
    return {
        **asdict(h.entry),
        "charts": [asdict(c) for c in h.entry.charts],
        "images": list(h.entry.images),
        "running": h.running,
        "since": h.since,
        "paths": list(h.paths),
        "commits": [
            {"sha": c.sha, "author": c.author, "date": c.date.isoformat(), "subject": c.subject} for c in h.commits
        ],
    }


def status_row_json(r: EnvironmentStatus) -> dict[str, Any]:
    """One environment of ``gitops-agent status``."""
    return {**asdict(r), "charts": list(r.charts)}


def pr_environment_json(p: PrEnvironmentStatus) -> dict[str, Any]:
    """One pull request's environment (``status --output json`` and ``/status``)."""
    return asdict(p)


def format_pr_environments(rows: Sequence[PrEnvironmentStatus]) -> str:
    """The PR environments under ``gitops-agent status``'s table ("" when there are none)."""
    if not rows:
        return ""
    header = ("PR ENVIRONMENT", "OF", "PR", "NAMESPACE", "HEAD", "HEALTH", "EXPIRES")
    table = [header] + [
        (p.name, p.environment, f"#{p.pull_request}", p.namespace, p.head[:12] or "-", p.health or "-", p.expires)
        for p in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table)


def health_json(
    environment: str, commit: str, overall: HealthStatus, objects: Sequence[ObjectHealth]
) -> dict[str, Any]:
    rows = [{**_key_json(o.key), "status": o.status.value, "message": o.message} for o in objects]
    return {"environment": environment, "commit": commit, "status": overall.value, "objects": rows}


def _key_json(key: ObjectKey) -> dict[str, str]:
    return {"group": key.group, "kind": key.kind, "namespace": key.namespace, "name": key.name}


def _object_drift_json(d: ObjectDrift) -> dict[str, Any]:
    return {
        **_key_json(d.key),
        "drift": d.state,
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


# --- text -----------------------------------------------------------------------------------------


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
        lines.append(f"  drift: {drift_counts(DriftCounts.of(r.drift))} (gitops-agent drift)")
    return "\n".join(lines)


def format_drift(r: PassResult) -> str:
    head = f"{r.environment} @ {r.commit[:12] or '?'}"
    if not r.ok:
        return f"{head}: error: {r.error}"
    if not r.drift:
        return f"{head}: no drift"
    lines = [f"{head}: {drift_counts(DriftCounts.of(r.drift))}"]
    for d in r.drift:
        label = "expected" if d.expected else "UNEXPECTED"
        if d.state != CHANGED:
            lines.append(f"  {label:<10} {d.key}: {d.state}")
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


def format_status(rows: Sequence[EnvironmentStatus]) -> str:
    header = ("ENVIRONMENT", "TARGET", "APPLIED", "OBJECTS", "IN SYNC", "HEALTH", "DRIFT", "LAST RESULT")
    table = [header] + [
        (
            r.environment,
            r.target_commit[:12] or "-",
            r.applied_commit[:12] or "-",
            str(r.objects),
            "yes" if r.in_sync else "no",
            r.health or "-",
            drift_counts(DriftCounts(unexpected=r.drift_unexpected, expected=r.drift_expected)),
            r.last_result,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in table]
    charts = [f"{r.environment}: chart {c}" for r in rows for c in r.charts]
    errors = [f"{r.environment}: {r.error}" for r in rows if r.error]
    return "\n".join(lines + charts + errors)


def format_history(environment: str, entries: Sequence[HistoryEntry]) -> str:
    if not entries:
        return f"{environment}: nothing applied yet"
    lines = []
    for h in entries:
        e = h.entry
        mark = "  <- running" if h.running else ""
        if e.rolled_back_from:  # `rollback --now`: held here until the rollback PR merges
            mark = f"  (rolled back from {e.rolled_back_from[:12]})" + mark
        if e.approved_by:  # a person's OK from GitHub (approvals)
            mark = f"  (approved by @{e.approved_by})" + mark
        rollout = f"; rollout {e.rollout}" if e.rollout else ""  # how far the apply's rollout got
        lines.append(f"{e.time}  {e.commit[:12]}  {e.result:<8} {e.summary or e.message}{rollout}{mark}")
        lines += [f"    chart {c.short} {c.digest} from {c.source}" for c in e.charts]  # provenance
        lines += _rolled_forward(h)
        lines += [f"    {c.sha[:12]} {c.date:%Y-%m-%d %H:%M} {c.author}: {c.subject}" for c in h.commits]
    return "\n".join(lines)


#: how many of the objects not yet Current a progress line names
PROGRESS_NAMED = 3
#: the worst first: what a person waiting should read about first
_WAITING_ORDER = (HealthStatus.FAILED, HealthStatus.IN_PROGRESS, HealthStatus.UNKNOWN)


def format_progress(environment: str, progress: RolloutProgress) -> str:
    """One plain line while a rollout is followed (stderr, on a terminal and in CI logs alike):
    ``dev: rollout 1/3 Current, 12s of 630s; waiting for Deployment/dev/api: 0/2 replicas available;
    …``. The objects named are the worst ones still waiting, with their health messages."""
    objects = progress.objects
    current = sum(1 for o in objects if o.status is HealthStatus.CURRENT)
    head = (
        f"{environment}: rollout {current}/{len(objects)} Current, "
        f"{progress.elapsed_s:.0f}s of {progress.timeout_s:.0f}s"
    )
    waiting = [o for status in _WAITING_ORDER for o in objects if o.status is status]
    if not waiting:
        return head
    named = "; ".join(f"{o.key}: {o.message}" for o in waiting[:PROGRESS_NAMED])
    more = f"; and {len(waiting) - PROGRESS_NAMED} more" if len(waiting) > PROGRESS_NAMED else ""
    return f"{head}; waiting for {named}{more}"


def _rolled_forward(h: HistoryEntry) -> list[str]:
    """``    89abcdef0123..0123456789ab: 2 commits changed environments/dev, bases/web`` (none when
    the entry re-ran the commit before it, or its paths are unknown)."""
    if not h.paths or h.since == h.entry.commit:
        return []
    span = f"{h.since[:12]}..{h.entry.commit[:12]}" if h.since else f"first apply, up to {h.entry.commit[:12]}"
    n = len(h.commits)
    count = "no commit" if not n else f"{n} commit{'s' if n != 1 else ''}"
    return [f"    {span}: {count} changed {', '.join(h.paths)}"]


def format_health(environment: str, commit: str, overall: HealthStatus, objects: Sequence[ObjectHealth]) -> str:
    if not commit:
        return f"{environment}: nothing applied yet"
    lines = [f"{environment} @ {commit[:12]}: {overall.value}"]
    lines += [f"  {o.status.value:<10} {o.key}: {o.message}" for o in objects]
    return "\n".join(lines)


def summarize(result: PassResult) -> str:
    """``2 created, 1 configured; drift: 1 unexpected, 0 expected`` for one log line."""
    parts = [result.sync.changes.summary()] if result.sync else []
    if result.repaired:
        parts.append(f"repaired {result.repaired.changes.summary()}")
    if result.drift:
        parts.append(f"drift: {drift_counts(DriftCounts.of(result.drift))}")
    if result.message:
        parts.append(result.message)
    return "; ".join(parts) or "nothing to do"
