"""A real HTTP server on 127.0.0.1 for the reporting doubles: records every request, answers
through a subclass's ``handle``, and plays scripted faults first.

Real loopback HTTP (not an httpx MockTransport) so the clients are tested with their real
transport: connection errors, timeouts, headers and bodies as they go over a socket.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it; header names lower-cased."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"

    @classmethod
    def json(cls, status: int, data: Any, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(data).encode(), dict(headers or {}))


@dataclass(frozen=True)
class Fault:
    """A scripted answer played instead of the real one. ``delay`` longer than the client's timeout
    is a timeout; ``path`` limits the fault to requests whose path contains it."""

    status: int = 500
    body: bytes = b'{"message": "Server Error"}'
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    path: str = ""
    content_type: str = "application/json; charset=utf-8"


def server_error(status: int = 500, *, path: str = "") -> Fault:
    return Fault(status, path=path)


def retry_after(seconds: int, *, status: int = 429, path: str = "") -> Fault:
    """A secondary rate limit (GitHub) or Slack's 429: ``Retry-After`` seconds."""
    body = b'{"message": "You have exceeded a secondary rate limit."}'
    return Fault(status, body, {"Retry-After": str(seconds)}, path=path)


def rate_limited(reset_at: float, *, status: int = 403, path: str = "") -> Fault:
    """GitHub's primary rate limit: no requests left until ``reset_at`` (Unix seconds)."""
    headers = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-used": "5000",
               "x-ratelimit-reset": str(int(reset_at)), "x-ratelimit-resource": "core"}  # fmt: skip
    return Fault(status, b'{"message": "API rate limit exceeded."}', headers, path=path)


def malformed_json(status: int = 201, *, path: str = "") -> Fault:
    return Fault(status, b'{"id": 1, "state": "succ', path=path)


def hang(seconds: float, *, path: str = "") -> Fault:
    """Answers only after ``seconds``: longer than the client's timeout, that is a timeout."""
    return Fault(200, b"{}", delay=seconds, path=path)


class LoopbackServer:
    """Base of the doubles. Subclasses implement ``handle``; use as a context manager."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body leave in two writes: no 40 ms delayed-ACK stall

            def do_GET(self) -> None:
                double._serve(self)

            do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False  # a hanging fault must not hold up the test's teardown
        self._httpd = httpd
        serve = functools.partial(httpd.serve_forever, poll_interval=0.02)  # quick shutdown
        self._thread = threading.Thread(target=serve, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # --- scripting ---------------------------------------------------------------------------

    def inject(self, fault: Fault, times: int = 1) -> None:
        """The next ``times`` matching requests get ``fault`` instead of their real answer."""
        with self._lock:
            self._faults.extend([fault] * times)

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path in path:
                    self._faults.remove(fault)
                    return fault
        return None

    # --- serving -----------------------------------------------------------------------------

    def handle(self, request: Recorded) -> Reply:
        raise NotImplementedError

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        request = _read(handler)
        with self._lock:
            self.requests.append(request)
        fault = self._take_fault(request.path)
        if fault is not None:
            time.sleep(fault.delay)
            reply = Reply(fault.status, fault.body, fault.headers, fault.content_type)
        else:
            try:
                reply = self.handle(request)
            except Exception as exc:  # a bug in the double: fail the test, not the socket
                self.violate(f"{request.method} {request.path}: the double crashed: {exc!r}")
                reply = Reply.json(500, {"message": "double crashed"})
        _write(handler, reply)

    def violate(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)


def _read(handler: BaseHTTPRequestHandler) -> Recorded:
    parts = urllib.parse.urlsplit(handler.path)
    length = int(handler.headers.get("Content-Length") or 0)
    body = handler.rfile.read(length) if length else b""
    headers = {k.lower(): v for k, v in handler.headers.items()}
    return Recorded(handler.command, parts.path, urllib.parse.parse_qs(parts.query), headers, body)


def _write(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
    try:
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(reply.body)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up (a timeout fault): nothing to answer


class FakeClock:
    """Unix time that moves only when told or slept on; records every sleep."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds
