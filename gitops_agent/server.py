"""The daemon's HTTP side: GitHub webhooks, probes, metrics and a status page.

The standard library's ``ThreadingHTTPServer``. What a webhook means is ``webhooks``'s; what the
status page says is ``status_page``'s; this module only routes and reads bodies.

    POST /webhooks/github   push → fetch and pass the environments following the pushed branch;
                            pull_request (opened, synchronize, …) → preview the PR head;
                            check_run requested_action, issue_comment "/approve <env>" → approvals
    GET  /healthz           the process is alive
    GET  /readyz            config loaded, repo fetched once, clusters reachable (503 with reasons)
    GET  /metrics           Prometheus text
    GET  /status            JSON, or the HTML page when the client asks for text/html
    GET  /                  the HTML page
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from gitops_agent.approvals import Approvals
from gitops_agent.errors import ConfigError
from gitops_agent.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gitops_agent.scheduler import Scheduler
from gitops_agent.status_page import status_html, status_json
from gitops_agent.webhooks import MAX_WEBHOOK_BYTES, WEBHOOK_PATH, Webhooks

log = logging.getLogger(__name__)

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
        self.webhooks = Webhooks(daemon, secret=webhook_secret, approvals=approvals)

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
        body = self._body()
        if body is None:
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer = self.server.webhooks.handle(headers, body)
        self._json(answer.status, answer.body)

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
