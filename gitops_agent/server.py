"""The daemon's HTTP side: GitHub push webhooks, probes, metrics and a status page.

The standard library's ``ThreadingHTTPServer``: five routes, no framework, no dependency to keep
up to date, and a request that blocks (a slow scrape) never blocks another. Nothing here runs a
pass: a webhook only asks the daemon for one, which coalesces a flood of pushes.

    POST /webhooks/github   push → fetch and pass the environments following the pushed branch;
                            pull_request (opened, synchronize, …) → preview the PR head;
                            check_run requested_action, issue_comment "/approve <env>" → approvals
    GET  /healthz           the process is alive
    GET  /readyz            config loaded, repo fetched once, clusters reachable (503 with reasons)
    GET  /metrics           Prometheus text
    GET  /status            JSON, or the HTML page when the client asks for text/html
    GET  /                  the HTML page

Webhooks are refused (503) when no secret is configured: an unauthenticated endpoint that makes
the agent fetch and apply is a denial-of-service lever, and GitHub always lets you set a secret.
"""

from __future__ import annotations

import html
import json
import logging
import threading
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gitops_agent.approvals import APPROVAL_EVENTS, Approvals
from gitops_agent.core.drift import DriftCounts
from gitops_agent.core.webhook import PREVIEW_ACTIONS, parse_pull_request, parse_push, verify_signature
from gitops_agent.errors import ConfigError
from gitops_agent.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gitops_agent.present import drift_counts_json, summarize
from gitops_agent.scheduler import EnvironmentView, Scheduler, SchedulerStatus

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/github"
MAX_WEBHOOK_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
_TEXT = "text/plain; charset=utf-8"


class AgentServer(ThreadingHTTPServer):
    """Serves one daemon; ``webhook_secret`` None refuses webhooks."""

    daemon_threads = True  # a hung client never holds up shutdown

    def __init__(
        self,
        address: tuple[str, int],
        daemon: Scheduler,
        *,
        webhook_secret: bytes | None,
        approvals: Approvals | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.agent_daemon = daemon
        self.webhook_secret = webhook_secret
        #: None without a github: section (approvals need GitHub to check who approves)
        self.approvals = approvals

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> threading.Thread:
        # polls for shutdown every 0.1s (not 0.5s): stopping the agent is not held up by the server
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="http", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def parse_listen(listen: str) -> tuple[str, int]:
    """``0.0.0.0:8080``, ``:8080`` (all interfaces), ``[::1]:8080`` -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"listen address {listen!r}: expected HOST:PORT, e.g. 0.0.0.0:8080")
    return host.strip("[]") or "0.0.0.0", int(port)


def read_webhook_secret(path: str | None) -> bytes | None:
    """The webhook secret from its file (a mounted Secret), without a trailing newline."""
    if path is None:
        return None
    try:
        secret = Path(path).read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the webhook secret (server.webhook_secret_file): {exc.strerror}"
        ) from exc
    if not secret:
        raise ConfigError(f"{path}: the webhook secret file is empty (server.webhook_secret_file)")
    return secret


class _Handler(BaseHTTPRequestHandler):
    server: AgentServer
    server_version = "gitops-agent"
    sys_version = ""

    # --- routing --------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        daemon = self.server.agent_daemon
        if path == "/healthz":
            self._send(HTTPStatus.OK, b"ok\n", _TEXT)
        elif path == "/readyz":
            self._readyz(daemon)
        elif path == "/metrics":
            self._send(HTTPStatus.OK, daemon.metrics.render(), METRICS_CONTENT_TYPE)
        elif path == "/status" and "text/html" not in self.headers.get("Accept", ""):
            self._json(HTTPStatus.OK, status_json(daemon.status()))
        elif path in ("/", "/status"):
            self._send(HTTPStatus.OK, status_html(daemon.status()).encode(), "text/html; charset=utf-8")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path}"})

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] == WEBHOOK_PATH:
            self._webhook()
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "POST webhooks to " + WEBHOOK_PATH})

    # --- routes ---------------------------------------------------------------------------------

    def _readyz(self, daemon: Scheduler) -> None:
        reasons = daemon.readiness()
        status = HTTPStatus.SERVICE_UNAVAILABLE if reasons else HTTPStatus.OK
        self._send(status, ("\n".join(reasons or ("ready",)) + "\n").encode(), _TEXT)

    def _webhook(self) -> None:
        delivery = self.headers.get("X-GitHub-Delivery", "?")
        secret = self.server.webhook_secret
        if secret is None:
            log.error("webhook %s refused: no webhook secret configured (set server.webhook_secret_file)", delivery)
            return self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "webhooks are disabled: no secret configured"})
        body = self._body()
        if body is None:
            return
        if not verify_signature(secret, body, self.headers.get("X-Hub-Signature-256")):
            log.warning("webhook %s refused: missing or wrong X-Hub-Signature-256", delivery)
            return self._json(HTTPStatus.UNAUTHORIZED, {"error": "missing or invalid X-Hub-Signature-256"})
        event = self.headers.get("X-GitHub-Event", "")
        if event == "pull_request":
            return self._pull_request(body, delivery)
        if event in APPROVAL_EVENTS:
            return self._approval(event, body, delivery)
        if event != "push":
            return self._json(HTTPStatus.ACCEPTED, {"event": event, "ignored": True})
        push = parse_push(body)
        if push is None:
            return self._json(HTTPStatus.BAD_REQUEST, {"error": "not a push payload: no ref"})
        daemon = self.server.agent_daemon
        outcome = daemon.push(push.ref)
        names = ", ".join(outcome.environments) or "no environment"
        via = " (relayed to the leader)" if outcome.relayed else ""
        log.info("webhook %s: push to %s triggers %s%s", delivery, push.ref, names, via)
        answer = {"event": "push", "ref": push.ref, "environments": list(outcome.environments)}
        self._json(HTTPStatus.ACCEPTED, {**answer, "leader": daemon.leading, "relayed": outcome.relayed})

    def _pull_request(self, body: bytes, delivery: str) -> None:
        event = parse_pull_request(body)
        if event is None:
            return self._json(HTTPStatus.BAD_REQUEST, {"error": "not a pull_request payload"})
        if event.action not in PREVIEW_ACTIONS:
            return self._json(HTTPStatus.ACCEPTED, {"event": "pull_request", "action": event.action, "ignored": True})
        queued = self.server.agent_daemon.preview(event.number, event.head_sha, event.base_ref)
        log.info("webhook %s: pull request #%d at %s: preview %s", delivery, event.number, event.head_sha[:12],
                 "queued" if queued else "not configured")  # fmt: skip
        answer = {"event": "pull_request", "number": event.number, "preview": queued}
        self._json(HTTPStatus.ACCEPTED, answer)

    def _approval(self, event: str, body: bytes, delivery: str) -> None:
        approvals = self.server.approvals
        if approvals is None:
            log.info("webhook %s: %s ignored: approvals need a github: section", delivery, event)
            why = "approvals need a github: section in the agent's config"
            return self._json(HTTPStatus.ACCEPTED, {"event": event, "ignored": True, "why": why})
        answer = approvals.handle(event, body, delivery)
        self._json(HTTPStatus(answer.status), {"event": event, **answer.body})

    def _body(self) -> bytes | None:
        """The raw request body, or None after answering 411/413."""
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._json(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length required"})
            return None
        if int(length) > MAX_WEBHOOK_BYTES:
            self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "payload too large"})
            return None
        return self.rfile.read(int(length))

    # --- plumbing -------------------------------------------------------------------------------

    def _json(self, status: HTTPStatus, data: Any) -> None:
        self._send(status, (json.dumps(data, indent=2) + "\n").encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Access lines go to our logger at DEBUG (probes every few seconds would drown the rest)."""
        log.debug("%s %s", self.address_string(), format % args)


# --- rendering (pure) ---------------------------------------------------------------------------


def status_json(status: SchedulerStatus) -> dict[str, Any]:
    """The stable JSON of ``GET /status`` (the README documents each field): ``leader``,
    ``identity``, ``ready``, ``not_ready``, ``fetch_error`` and ``environments``, each with its last
    pass: ``name, policy, branch, interval_s, running, pending, commit, outcome, ok, summary,
    drift: {expected, unexpected}, health: {status, message} | null, last_error, reason,
    finished_at, duration_s, last_success_at``."""
    return {
        "leader": status.leading,
        "identity": status.identity,
        "ready": not status.ready,
        "not_ready": list(status.ready),
        "fetch_error": status.fetch_error,
        "environments": [_environment_json(v) for v in status.environments],
    }


def _environment_json(v: EnvironmentView) -> dict[str, Any]:
    r = v.last
    return {
        "name": v.name,
        "policy": v.policy,
        "branch": v.branch,
        "interval_s": v.interval_s,
        "running": v.running,
        "pending": v.pending,
        "commit": r.commit if r else "",
        "outcome": r.outcome if r else "",
        "ok": r.ok if r else None,
        "summary": summarize(r) if r else "",
        "drift": drift_counts_json(DriftCounts.of(r.drift if r else ())),
        # the rollout of ``commit`` as the last pass saw it: null when it was not followed
        "health": {"status": r.health.status.value, "message": r.health.message} if r and r.health else None,
        "last_error": r.error if r else "",
        "reason": r.reason if r else "",
        "finished_at": _time(v.finished_at),
        "duration_s": round(v.duration_s, 3) if v.duration_s is not None else None,
        "last_success_at": _time(v.last_success_at),
    }


def _time(unix: float | None) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if unix is not None else ""


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<title>gitops-agent</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}}
.failed{{color:#b00020}}.ok{{color:#1b5e20}}code{{font-size:.95em}}</style></head>
<body><h1>gitops-agent</h1><p>{summary}</p>
<table><tr><th>environment</th><th>policy</th><th>branch</th><th>commit</th><th>outcome</th><th>changes</th>
<th>health</th><th>drift (unexpected / expected)</th><th>last success</th><th>last error</th></tr>
{rows}
</table></body></html>
"""


def status_html(status: SchedulerStatus) -> str:
    """The page for people; every value escaped (errors quote manifests, branch names are anyone's)."""
    role = "leader" if status.leading else "follower"
    ready = "ready" if not status.ready else "not ready: " + "; ".join(status.ready)
    summary = f"{role} {status.identity} — {ready}".strip()
    rows = "\n".join(_row(_environment_json(v)) for v in status.environments)
    return _PAGE.format(summary=html.escape(summary), rows=rows)


def _row(e: dict[str, Any]) -> str:
    state = "running" if e["running"] else (e["outcome"] or "not run yet")
    health = e["health"]
    css = "failed" if e["ok"] is False or (health and health["status"] == "Failed") else "ok"
    cells = [
        e["name"], e["policy"], e["branch"], e["commit"][:12], state, e["summary"],
        f"{health['status']}: {health['message']}" if health else "-",
        f"{e['drift']['unexpected']} / {e['drift']['expected']}", e["last_success_at"], e["last_error"],
    ]  # fmt: skip
    tds = "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
    return f'<tr class="{css}">{tds}</tr>'
