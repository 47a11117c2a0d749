"""The HTTP transport's limits over real loopback sockets: header and body deadlines, body caps
decided from the headers, the connection bound, bounded worker threads, the body budget."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping

import httpx
import pytest

from gitops_agent.adapters.http_server import INLINE, HttpServer, Limits, Listener, Request, Response, Route

LIMITS = Limits(max_connections=8, header_timeout_s=0.5, body_timeout_s=0.5, body_budget=1000)


class App:
    """The routes under test, and what they saw."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.release = threading.Event()
        self.blocked = 0
        self.lock = threading.Lock()

    def echo(self, request: Request) -> Response:
        self.bodies.append(request.body)
        return Response(200, str(len(request.body)).encode(), "text/plain")

    def block(self, request: Request) -> Response:
        with self.lock:
            self.blocked += 1
        self.release.wait(10)
        return Response(200, b"done", "text/plain")

    def admit(self, headers: Mapping[str, str]) -> Response | None:
        return None if headers.get("x-ok") == "yes" else Response.json(401, {"error": "no"})

    def routes(self) -> tuple[Route, ...]:
        return (
            Route("POST", "/echo", self.echo, "work", cap=1000, body_required=True),
            Route("POST", "/guarded", self.echo, "work", cap=1000, body_required=True, admit=self.admit),
            Route("GET", "/block", self.block, "work"),
            Route("POST", "/block", self.block, "work", cap=1000, body_required=True),
            Route("GET", "/boom", boom, "work"),
            Route("GET", "/healthz", lambda r: Response(200, b"ok\n", "text/plain"), INLINE),
        )


def boom(request: Request) -> Response:
    raise RuntimeError("a bug")


def not_found(request: Request) -> Response:
    return Response.json(404, {"error": "no such page"})


@pytest.fixture
def app() -> App:
    return App()


@pytest.fixture
def server(app: App) -> Iterator[HttpServer]:
    server = HttpServer([Listener("t", ("127.0.0.1", 0), app.routes(), not_found, LIMITS)], {"work": 2})
    server.start()
    yield server
    app.release.set()
    server.stop()


def connect(server: HttpServer, data: bytes = b"") -> socket.socket:
    sock = socket.create_connection(server.address(0), timeout=5)
    if data:
        sock.sendall(data)
    return sock


def response(sock: socket.socket) -> tuple[int, bytes]:
    """The status and body of one response (with its Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1]), body


def closed(sock: socket.socket, within_s: float = 5) -> bool:
    """True when the server closes the connection within ``within_s`` (whatever it sent first)."""
    sock.settimeout(within_s)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


def post(path: str, length: int, extra: str = "") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n{extra}\r\n".encode()


def test_a_connection_without_a_complete_request_is_closed_within_the_header_timeout(server: HttpServer) -> None:
    idle = connect(server)
    slow = connect(server, b"GET /healthz HTTP/1.1\r\n")
    started = time.monotonic()
    for _ in range(8):  # a slowloris: a header line every 0.1s, never the blank line
        time.sleep(0.1)
        try:
            slow.sendall(b"X-a: b\r\n")
        except OSError:
            break
    assert closed(idle) and closed(slow)
    assert time.monotonic() - started < 3


def test_a_kept_alive_connection_is_closed_after_the_header_timeout(server: HttpServer) -> None:
    sock = connect(server, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response(sock) == (200, b"ok\n")
    assert closed(sock, within_s=3)


def test_a_body_over_the_cap_is_refused_from_its_content_length_before_it_is_sent(server: HttpServer, app: App) -> None:
    sock = connect(server, post("/echo", 20_000_000))
    status, body = response(sock)
    assert status == 413 and b"at most 1000 bytes" in body
    assert closed(sock) and app.bodies == []


@pytest.mark.parametrize(
    "head",
    [
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\n\r\n",
    ],
    ids=["chunked", "no-length"],
)
def test_a_body_without_a_declared_length_is_refused_with_411(server: HttpServer, app: App, head: bytes) -> None:
    sock = connect(server, head + (b"3e8\r\n" + b"x" * 1000 + b"\r\n" if b"chunked" in head else b""))
    assert response(sock)[0] == 411
    assert closed(sock) and app.bodies == []


def test_admission_answers_before_the_body_is_read(server: HttpServer, app: App) -> None:
    sock = connect(server, post("/guarded", 1000))  # the body is never sent: the answer comes first
    assert response(sock)[0] == 401
    assert closed(sock) and app.bodies == []
    allowed = connect(server, post("/guarded", 3, "X-Ok: yes\r\n") + b"abc")
    assert response(allowed) == (200, b"3")


def test_a_body_is_read_to_its_declared_length_and_no_further(server: HttpServer, app: App) -> None:
    sock = connect(server, post("/echo", 5) + b"hello")
    assert response(sock) == (200, b"5")
    sock.sendall(b"x" * 5000)  # past the declared length: not a body but a bad next request
    assert response(sock)[0] == 400
    assert closed(sock) and app.bodies == [b"hello"]


def test_a_body_that_does_not_arrive_in_time_is_refused_with_408(server: HttpServer, app: App) -> None:
    sock = connect(server, post("/echo", 100) + b"only ten b")
    status, body = response(sock)
    assert status == 408 and b"within 0.5s" in body
    assert closed(sock) and app.bodies == []


def test_past_max_connections_the_longest_waiting_are_closed_and_probes_still_answer(server: HttpServer) -> None:
    idle = [connect(server) for _ in range(40)]
    with httpx.Client(base_url=_url(server), timeout=1) as client:
        for _ in range(5):
            assert client.get("/healthz").status_code == 200
    assert server.open_connections(0) <= LIMITS.max_connections
    assert sum(closed(sock, within_s=0.2) for sock in idle[:30]) == 30  # the oldest made room
    for sock in idle:
        sock.close()


def test_handlers_run_on_a_bounded_pool_and_inline_probes_answer_while_it_is_busy(server: HttpServer, app: App) -> None:
    before = threading.active_count()
    socks = [connect(server, b"GET /block HTTP/1.1\r\nHost: t\r\n\r\n") for _ in range(6)]
    deadline = time.monotonic() + 5
    while app.blocked < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert app.blocked == 2  # two workers; the other four requests wait for them
    assert threading.active_count() <= before + 2
    assert httpx.get(_url(server) + "/healthz", timeout=1).status_code == 200
    app.release.set()
    assert all(response(sock) == (200, b"done") for sock in socks)


def test_a_handler_that_raises_answers_500(server: HttpServer) -> None:
    answer = httpx.get(_url(server) + "/boom", timeout=5)
    assert answer.status_code == 500 and answer.json() == {"error": "internal error; see the agent's log"}


def test_bodies_held_at_once_are_bounded_by_the_budget(server: HttpServer, app: App) -> None:
    first = connect(server, post("/block", 800) + b"x" * 800)  # its handler holds 800 of the 1000 bytes
    deadline = time.monotonic() + 5
    while app.blocked < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    second = connect(server, post("/echo", 800) + b"y" * 800)
    status, body = response(second)
    assert status == 503 and b"too many request bodies" in body
    assert app.bodies == []
    app.release.set()
    assert response(first) == (200, b"done")
    third = connect(server, post("/echo", 800) + b"z" * 800)  # room again once the first let go
    assert response(third) == (200, b"800")


def test_unknown_routes_and_a_taken_port(server: HttpServer) -> None:
    assert httpx.get(_url(server) + "/nope", timeout=5).status_code == 404
    with pytest.raises(OSError):
        HttpServer([Listener("t", server.address(0), (), not_found)], {})


def _url(server: HttpServer) -> str:
    host, port = server.address(0)
    return f"http://{host}:{port}"
