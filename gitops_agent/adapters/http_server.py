"""The daemon's HTTP transport: aiohttp's low-level server on one event-loop thread, with limits.

Routes are plain functions (a ``Request`` in, a ``Response`` out); nothing here knows what they
mean. Every listener is bounded:

- **headers** must arrive within ``header_timeout_s`` of connecting (or of the previous answer on a
  kept-alive connection): aiohttp's keep-alive timer runs from the connection's start and closes one
  still waiting for a complete request, so a slowloris holds a connection, never a thread, and not
  for long;
- **a body** is read only when declared within the route's cap (``core.http_limits``), never past
  its declared length, within ``body_timeout_s``, and at most ``body_budget`` bytes of bodies are
  held at once (more wait), so many large bodies cannot fill memory;
- **connections**: past ``max_connections``, a new connection closes the one that has waited
  longest without a request being handled (idle or sending headers first, then sending a body; the
  new one itself when all are being handled), so a flood of slow connections never locks out the
  kubelet's probes;
- **threads**: handlers run on fixed, named pools (they may block, e.g. on GitHub); ``inline`` ones
  (``/healthz``) run on the loop and answer even when every worker is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler

from gitops_agent.core.http_limits import Refusal, body_refusal, declared_length

log = logging.getLogger(__name__)

SMALL_BODY_BYTES = 16 * 1024  # what a route reads unless it says otherwise: none takes more
INLINE = "inline"  # a route's pool: run on the event loop (must not block)
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]  # by lower-case name
    body: bytes = b""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, data: Any, headers: Mapping[str, str] | None = None) -> Response:
        return cls(status, (json.dumps(data, indent=2) + "\n").encode(), "application/json", headers or {})


Handler = Callable[[Request], Response]
#: answers from the headers alone (before any body is read), or None to go on
Admit = Callable[[Mapping[str, str]], Response | None]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    pool: str  # the name of the thread pool it runs on, or INLINE
    cap: int = SMALL_BODY_BYTES
    body_required: bool = False
    admit: Admit | None = None


@dataclass(frozen=True)
class Limits:
    max_connections: int = 256
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    body_budget: int = 32 * 1024 * 1024


@dataclass(frozen=True)
class Listener:
    name: str
    address: tuple[str, int]
    routes: tuple[Route, ...]
    not_found: Handler  # inline
    limits: Limits = Limits()


class HttpServer:
    """Binds every listener at construction (a taken port fails here); serves after ``start``."""

    def __init__(self, listeners: Sequence[Listener], pools: Mapping[str, int]) -> None:
        self.listeners = tuple(listeners)
        self._sockets = [_bind(listener.address) for listener in self.listeners]
        self._pool_sizes = dict(pools)
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runners: list[web.ServerRunner] = []
        self._servers: list[_Connections] = []
        self._thread: threading.Thread | None = None

    def address(self, index: int) -> tuple[str, int]:
        host, port = self._sockets[index].getsockname()[:2]
        return str(host), int(port)

    def open_connections(self, index: int) -> int:
        """How many connections listener ``index`` holds now (0 before ``start``)."""
        return self._servers[index].open_connections() if index < len(self._servers) else 0

    def start(self) -> None:
        self._pools = {
            name: ThreadPoolExecutor(size, thread_name_prefix=f"http-{name}") for name, size in self._pool_sizes.items()
        }
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="http", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._cleanup(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
        for sock in self._sockets:
            sock.close()
        for pool in self._pools.values():
            # a handler blocked on GitHub finishes on its own (bounded by the client's timeouts)
            pool.shutdown(wait=False, cancel_futures=True)

    async def _serve(self) -> None:
        for listener, sock in zip(self.listeners, self._sockets, strict=True):
            server = _server_for(listener, self._pools)
            self._servers.append(server)
            runner = web.ServerRunner(server, shutdown_timeout=5.0)
            await runner.setup()
            await web.SockSite(runner, sock, backlog=listener.limits.max_connections).start()
            self._runners.append(runner)

    async def _cleanup(self) -> None:
        for runner in self._runners:
            await runner.cleanup()


def _bind(address: tuple[str, int]) -> socket.socket:
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=128)


def _server_for(listener: Listener, pools: Mapping[str, ThreadPoolExecutor]) -> _Connections:
    router = _Router(listener, pools)
    server = _Connections(
        router.answer,
        max_connections=listener.limits.max_connections,
        keepalive_timeout=listener.limits.header_timeout_s,
        lingering_time=0,  # a refused body is not read, not even to be thrown away: the connection closes
        max_headers=64,
        max_field_size=4096,  # with max_headers: at most ~256 KiB of headers buffered per connection
        access_log_class=_AccessLog,
        access_log=log,
    )
    router.connections = server
    return server


# --- connections ----------------------------------------------------------------------------------

_WAITING, _READING, _HANDLING = 0, 1, 2  # eviction order: waiting for a request first


@dataclass
class _Connection:
    transport: asyncio.Transport
    phase: int = _WAITING
    since: float = field(default_factory=time.monotonic)


class _Connections(web.Server):
    """aiohttp's server, knowing each connection's phase and making room past ``max_connections``."""

    def __init__(self, handler: Callable[[web.BaseRequest], Any], *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._max = max_connections
        self._phases: dict[RequestHandler, _Connection] = {}

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._phases[handler] = _Connection(transport)
        if len(self._phases) > self._max:
            self._make_room()

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        self._phases.pop(handler, None)
        super().connection_lost(handler, exc)

    def set_phase(self, handler: RequestHandler, phase: int) -> None:
        connection = self._phases.get(handler)
        if connection is not None:
            connection.phase, connection.since = phase, time.monotonic()

    def open_connections(self) -> int:
        return len(self._phases)

    def _make_room(self) -> None:
        candidates = [(c.phase, c.since, h) for h, c in self._phases.items() if c.phase != _HANDLING]
        if not candidates:
            return  # unreachable: the new connection is waiting
        _, _, victim = min(candidates, key=lambda c: (c[0], c[1]))
        log.debug("connection limit (%d) reached: closing the longest-waiting connection", self._max)
        self._phases.pop(victim).transport.close()


class _AccessLog(AbstractAccessLogger):
    """Access lines at DEBUG: probes every few seconds would drown the rest."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug("%s %s %s %d %.3fs", request.remote, request.method, request.path, response.status, time)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)


# --- requests -------------------------------------------------------------------------------------


class _BodyBudget:
    """At most ``total`` bytes of request bodies held at once, across a listener's connections."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._free = total
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, size: int, timeout_s: float) -> AsyncIterator[None]:
        """Raises TimeoutError when ``size`` bytes did not become free in time."""
        size = min(size, self._total)
        async with self._changed:
            async with asyncio.timeout(timeout_s):
                await self._changed.wait_for(lambda: self._free >= size)
            self._free -= size
        try:
            yield
        finally:
            async with self._changed:
                self._free += size
                self._changed.notify_all()


class _Router:
    def __init__(self, listener: Listener, pools: Mapping[str, ThreadPoolExecutor]) -> None:
        self.listener = listener
        self.pools = pools
        self.routes = {(r.method, r.path): r for r in listener.routes}
        self.budget = _BodyBudget(listener.limits.body_budget)
        self.connections: _Connections | None = None

    async def answer(self, request: web.BaseRequest) -> web.StreamResponse:
        headers = {name.lower(): value for name, value in request.headers.items()}
        route = self.routes.get((request.method, request.path))
        if route is None:
            return _web(self.listener.not_found(Request(request.method, request.path, headers)), close=True)
        early = route.admit(headers) if route.admit is not None else None
        refusal = body_refusal(headers, cap=route.cap, required=route.body_required)
        if early is None and refusal is not None:
            early = _refused(refusal)
        if early is not None:  # answered from the headers: the body is never read
            return _web(early, close=True)
        return await self._with_body(request, route, headers)

    async def _with_body(self, request: web.BaseRequest, route: Route, headers: dict[str, str]) -> web.StreamResponse:
        length = declared_length(headers)
        timeout_s = self.listener.limits.body_timeout_s
        try:
            async with self.budget.hold(length, timeout_s):
                self._phase(request, _READING)
                try:
                    body = await _read(request, length, timeout_s)
                except TimeoutError:
                    return _web(_refused(Refusal(408, f"the body did not arrive within {timeout_s:g}s")), close=True)
                self._phase(request, _HANDLING)
                try:
                    response = await self._run(route, Request(request.method, request.path, headers, body))
                finally:
                    self._phase(request, _WAITING)
                return _web(response, close=False)
        except TimeoutError:  # waiting for room in the budget
            return _web(Response.json(503, {"error": "too many request bodies at once; try again"}), close=True)

    async def _run(self, route: Route, request: Request) -> Response:
        try:
            if route.pool == INLINE:
                return route.handler(request)
            return await asyncio.get_running_loop().run_in_executor(self.pools[route.pool], route.handler, request)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return Response.json(500, {"error": "internal error; see the agent's log"})

    def _phase(self, request: web.BaseRequest, phase: int) -> None:
        if self.connections is not None:
            self.connections.set_phase(request.protocol, phase)


async def _read(request: web.BaseRequest, length: int, timeout_s: float) -> bytes:
    """Exactly the declared ``length`` bytes, never more; an early end is a timeout's answer too."""
    chunks: list[bytes] = []
    got = 0
    async with asyncio.timeout(timeout_s):
        while got < length:
            chunk = await request.content.read(min(_READ_CHUNK, length - got))
            if not chunk:
                raise TimeoutError  # the client stopped sending before its declared length
            chunks.append(chunk)
            got += len(chunk)
    return b"".join(chunks)


def _refused(refusal: Refusal) -> Response:
    return Response.json(refusal.status, {"error": refusal.error})


def _web(response: Response, *, close: bool) -> web.Response:
    headers = {"Content-Type": response.content_type, "Cache-Control": "no-store", "Server": "gitops-agent"}
    answer = web.Response(status=response.status, body=response.body, headers={**headers, **response.headers})
    if close:
        answer.force_close()
    return answer
