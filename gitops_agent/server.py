"""The daemon's HTTP side: two listeners, so what GitHub must reach is all that is exposed to it.

What a webhook means is ``webhooks``'s; what the status page says is ``status_page``'s; the transport
and its limits (timeouts, connections, body caps, thread pools) are ``adapters.http_server``'s. This
module only says which route is served where.

``server.listen`` (default ``0.0.0.0:8080``), for GitHub and the kubelet:

    POST /webhooks/github   push → fetch and pass the environments following the pushed branch;
                            pull_request (opened, synchronize, …) → preview the PR head;
                            check_run requested_action, issue_comment "/approve <env>" → approvals
    GET  /healthz           the process is alive
    GET  /readyz            config loaded, repo fetched once, clusters reachable (503 with reasons)

``server.status_listen`` (default ``0.0.0.0:9090``), for people and Prometheus, behind a bearer token
when ``server.status_token_file`` is set (the probes answer without it):

    GET  /metrics           Prometheus text
    GET  /status            JSON, or the HTML table when the client asks for text/html
    GET  /api/v1/status     the status board's data: which commit runs where (``core.board``)
    GET  /api/v1/environments/<env>/health   its objects' health, read now
    GET  /                  the status board (``static/``: a page holding no data; its script reads
                            the API, asking for the token when one is set), or the HTML table
    GET  /healthz, /readyz  as above
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from http import HTTPStatus
from pathlib import Path

from gitops_agent.adapters.http_server import INLINE, HttpServer, Limits, Listener, Request, Response, Route
from gitops_agent.approvals import Approvals
from gitops_agent.core.http_limits import bearer_refusal
from gitops_agent.errors import ConfigError
from gitops_agent.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gitops_agent.scheduler import Scheduler
from gitops_agent.status_board import BOARD_ASSETS, StatusBoard, board_asset
from gitops_agent.status_page import status_html, status_json
from gitops_agent.webhooks import MAX_WEBHOOK_BYTES, WEBHOOK_PATH, Webhooks

_TEXT = "text/plain; charset=utf-8"
_HTML = "text/html; charset=utf-8"
#: worker threads per kind of route: webhooks may block on GitHub; probes never wait behind them
POOLS = {"webhooks": 4, "status": 2, "probes": 2}
STATUS_ROUTES = ("/status", "/", "/metrics")


class AgentServer:
    """Serves one daemon; ``webhook_secret`` None refuses webhooks; ``status_address`` None serves no
    status listener; ``status_token`` None serves it without a token."""

    def __init__(
        self,
        address: tuple[str, int],
        daemon: Scheduler,
        *,
        webhook_secret: bytes | None,
        approvals: Approvals | None = None,
        status_address: tuple[str, int] | None = None,
        status_token: bytes | None = None,
        max_connections: int = Limits.max_connections,
        watch_cache: Callable[[], Mapping[str, int]] | None = None,
        board: StatusBoard | None = None,
    ) -> None:
        self.agent_daemon = daemon
        self._watch_cache = watch_cache  # objects the watch cache holds per environment
        self.board = board
        self.webhooks = Webhooks(daemon, secret=webhook_secret, approvals=approvals)
        self.status_token = status_token
        listeners = [self._webhook_listener(address, Limits(max_connections=max_connections))]
        if status_address is not None:
            listeners.append(self._status_listener(status_address))
        self._http = HttpServer(listeners, POOLS)

    @property
    def url(self) -> str:
        """The webhook listener's."""
        return _url(self._http.address(0))

    @property
    def status_url(self) -> str | None:
        return _url(self._http.address(1)) if len(self._http.listeners) > 1 else None

    def start(self) -> None:
        self._http.start()

    def stop(self) -> None:
        self._http.stop()

    # --- listeners --------------------------------------------------------------------------------

    def _webhook_listener(self, address: tuple[str, int], limits: Limits) -> Listener:
        webhook = Route(
            "POST", WEBHOOK_PATH, self._webhook, "webhooks", MAX_WEBHOOK_BYTES, body_required=True,
            admit=self._admit_webhook,
        )  # fmt: skip
        return Listener("webhooks", address, (webhook, *self._probes()), _not_found, limits)

    def _status_listener(self, address: tuple[str, int]) -> Listener:
        pages = tuple(Route("GET", path, self._status, "status", admit=self._admit_status) for path in STATUS_ROUTES)
        if self.board is not None:
            pages = (*(r for r in pages if r.path != "/"), *self._board_routes())
        # people and one Prometheus: few connections; the probes are there too for a kubelet that uses them
        return Listener("status", address, (*pages, *self._probes()), _not_found, Limits(max_connections=64))

    def _board_routes(self) -> tuple[Route, ...]:
        """The page and its assets hold no data, so they need no token (a browser cannot send one
        to open a page); the API they read does."""
        assets = tuple(Route("GET", path, _asset, INLINE) for path in BOARD_ASSETS)
        envs = [env.name for env in self.agent_daemon.config.environments]
        health = tuple(
            Route("GET", f"/api/v1/environments/{name}/health", self._health, "status", admit=self._admit_status)
            for name in envs
        )
        return (*assets, Route("GET", "/api/v1/status", self._board, "status", admit=self._admit_status), *health)

    def _probes(self) -> tuple[Route, ...]:
        return Route("GET", "/healthz", _healthz, INLINE), Route("GET", "/readyz", self._readyz, "probes")

    # --- routes -----------------------------------------------------------------------------------

    def _admit_webhook(self, headers: Mapping[str, str]) -> Response | None:
        answer = self.webhooks.admit(headers)
        return None if answer is None else Response.json(answer.status, answer.body)

    def _webhook(self, request: Request) -> Response:
        answer = self.webhooks.handle(request.headers, request.body)
        return Response.json(answer.status, answer.body)

    def _readyz(self, request: Request) -> Response:
        reasons = self.agent_daemon.readiness()
        status = HTTPStatus.SERVICE_UNAVAILABLE if reasons else HTTPStatus.OK
        return Response(status, ("\n".join(reasons or ("ready",)) + "\n").encode(), _TEXT)

    def _admit_status(self, headers: Mapping[str, str]) -> Response | None:
        refusal = bearer_refusal(headers, self.status_token)
        if refusal is None:
            return None
        return Response.json(refusal.status, {"error": refusal.error}, {"WWW-Authenticate": "Bearer"})

    def _status(self, request: Request) -> Response:
        daemon = self.agent_daemon
        if request.path == "/metrics":
            return Response(HTTPStatus.OK, daemon.metrics.render(), METRICS_CONTENT_TYPE)
        if request.path == "/status" and "text/html" not in request.headers.get("accept", ""):
            return Response.json(HTTPStatus.OK, {**status_json(daemon.status()), "watch_cache": self._cache_json()})
        return Response(HTTPStatus.OK, status_html(daemon.status()).encode(), _HTML)

    def _board(self, request: Request) -> Response:
        assert self.board is not None  # routed only with a board
        return Response.json(HTTPStatus.OK, self.board.view())

    def _health(self, request: Request) -> Response:
        assert self.board is not None
        return Response.json(HTTPStatus.OK, self.board.health(request.path.split("/")[4]))

    def _cache_json(self) -> dict[str, object] | None:
        """``watch_cache``: ``{objects, environments: {name: objects}}`` this replica's watches hold."""
        if self._watch_cache is None:
            return None
        sizes = dict(sorted(self._watch_cache().items()))
        return {"objects": sum(sizes.values()), "environments": sizes}


def _asset(request: Request) -> Response:
    body, content_type = board_asset(request.path)
    return Response(HTTPStatus.OK, body, content_type, BOARD_HEADERS)


#: the page runs only its own script and style, sends data nowhere else, and is framed by no one
BOARD_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _healthz(request: Request) -> Response:
    return Response(HTTPStatus.OK, b"ok\n", _TEXT)


def _not_found(request: Request) -> Response:
    if request.method == "POST":
        return Response.json(HTTPStatus.NOT_FOUND, {"error": "POST webhooks to " + WEBHOOK_PATH})
    return Response.json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {request.path}"})


def _url(address: tuple[str, int]) -> str:
    host, port = address
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def parse_listen(listen: str) -> tuple[str, int]:
    """``0.0.0.0:8080``, ``:8080`` (all interfaces), ``[::1]:8080`` -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"listen address {listen!r}: expected HOST:PORT, e.g. 0.0.0.0:8080")
    return host.strip("[]") or "0.0.0.0", int(port)


def read_webhook_secret(path: str | None) -> bytes | None:
    """The webhook secret from its file (a mounted Secret), without a trailing newline."""
    return _read_secret(path, "the webhook secret", "server.webhook_secret_file")


def read_status_token(path: str | None) -> bytes | None:
    """The status listener's bearer token from its file, without a trailing newline."""
    return _read_secret(path, "the status token", "server.status_token_file")


def _read_secret(path: str | None, what: str, key: str) -> bytes | None:
    if path is None:
        return None
    try:
        secret = Path(path).read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({key}): {exc.strerror}") from exc
    if not secret:
        raise ConfigError(f"{path}: {what} file is empty ({key})")
    return secret
