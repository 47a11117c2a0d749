"""What ``GET /status`` says: the stable JSON for scripts and the HTML page for people, rendered
from the scheduler's view (pure: no I/O)."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

from gitops_agent.core.drift import DriftCounts
from gitops_agent.core.ledger import MESSAGE_CHARS, SUMMARY_CHARS, clip
from gitops_agent.present import drift_counts_json, pr_environment_json, summarize
from gitops_agent.reconcile import PassResult
from gitops_agent.scheduler import EnvironmentView, SchedulerStatus


def status_json(status: SchedulerStatus) -> dict[str, Any]:
    """The stable JSON of ``GET /status`` (the README documents each field): ``leader``,
    ``identity``, ``members`` (the live replicas sharing the environments; empty unless sharded),
    ``ready``, ``not_ready``, ``fetch_error``, ``git_cache: {bytes, pull_refs} | null``,
    ``pull_request_environments`` (``environment, name, namespace, pull_request, head, applied,
    health, expires``) and ``environments``, each with its last
    pass: ``name, owner, policy, branch, interval_s, running, pending, commit, outcome, ok, summary,
    drift: {expected, unexpected}, health: {status, message} | null, last_error, reason,
    finished_at, duration_s, last_success_at``."""
    return {
        "leader": status.leading,
        "identity": status.identity,
        "members": list(status.members),
        "ready": not status.ready,
        "not_ready": list(status.ready),
        "fetch_error": clip(status.fetch_error, MESSAGE_CHARS),
        "git_cache": {"bytes": c.bytes, "pull_refs": c.pull_refs} if (c := status.git_cache) else None,
        "environments": [environment_json(v) for v in status.environments],
        "pull_request_environments": [pr_environment_json(p) for p in status.pull_request_environments],
    }


def environment_json(v: EnvironmentView) -> dict[str, Any]:
    """One environment of ``/status`` (also each environment's ``last_pass`` on ``/api/v1/status``)."""
    r = v.last
    return {
        "name": v.name,
        "owner": v.owner,  # the replica running its passes
        "policy": v.policy,
        "branch": v.branch,
        "interval_s": v.interval_s,
        "running": v.running,
        "pending": v.pending,
        "commit": r.commit if r else "",
        "outcome": r.outcome if r else "",
        "ok": r.ok if r else None,
        "summary": clip(summarize(r), SUMMARY_CHARS) if r else "",
        "drift": drift_counts_json(DriftCounts.of(r.drift if r else ())),
        # the rollout of ``commit`` as the last pass saw it: null when it was not followed
        "health": _health(r),
        # texts are clipped as the ledger clips them: an error can name every object of a snapshot
        "last_error": clip(r.error, MESSAGE_CHARS) if r else "",
        "reason": r.reason if r else "",
        "finished_at": _time(v.finished_at),
        "duration_s": round(v.duration_s, 3) if v.duration_s is not None else None,
        "last_success_at": _time(v.last_success_at),
    }


def _health(r: PassResult | None) -> dict[str, str] | None:
    if r is None or r.health is None:
        return None
    return {"status": r.health.status.value, "message": clip(r.health.message, MESSAGE_CHARS)}


def _time(unix: float | None) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if unix is not None else ""


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<title>gitops-agent</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}}
.failed{{color:#b00020}}.ok{{color:#1b5e20}}code{{font-size:.95em}}</style></head>
<body><h1>gitops-agent</h1><p>{summary} — <a href="/">the status board</a></p>
<table><tr><th>environment</th><th>owner</th><th>policy</th><th>branch</th><th>commit</th><th>outcome</th><th>changes</th>
<th>health</th><th>drift (unexpected / expected)</th><th>last success</th><th>last error</th></tr>
{rows}
</table></body></html>
"""


def status_html(status: SchedulerStatus) -> str:
    """The page for people; every value escaped (errors quote manifests, branch names are anyone's)."""
    role = "leader" if status.leading else "follower"
    ready = "ready" if not status.ready else "not ready: " + "; ".join(status.ready)
    members = f" — members: {', '.join(status.members)}" if status.members else ""
    summary = f"{role} {status.identity}{members} — {ready}".strip()
    rows = "\n".join(_row(environment_json(v)) for v in status.environments)
    return _PAGE.format(summary=html.escape(summary), rows=rows)


def _row(e: dict[str, Any]) -> str:
    state = "running" if e["running"] else (e["outcome"] or "not run yet")
    health = e["health"]
    css = "failed" if e["ok"] is False or (health and health["status"] == "Failed") else "ok"
    cells = [
        e["name"], e["owner"] or "-", e["policy"], e["branch"], e["commit"][:12], state, e["summary"],
        f"{health['status']}: {health['message']}" if health else "-",
        f"{e['drift']['unexpected']} / {e['drift']['expected']}", e["last_success_at"], e["last_error"],
    ]  # fmt: skip
    tds = "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
    return f'<tr class="{css}">{tds}</tr>'
