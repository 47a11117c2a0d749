"""``gitops-agent run`` as a process on loopback, over the real API server, attacked as issue 15 tried:
idle connections and a slowloris hold neither threads nor the probes; unsigned 20 MB POSTs are
refused unread; the status listener wants its token. Bounds are generous: behaviour, not benchmarks.
Figures are printed (``pytest -s``) for the record.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gitops_agent.core.webhook import signature
from tests.controlplane.harness import free_port
from tests.support.builders import ConfigRepo, config_yaml, configmap
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

SECRET = b"flood-secret"
TOKEN = "status-token-for-people"
MAX_CONNECTIONS = 128
BODY = 20_000_000


class Daemon:
    def __init__(self, proc: subprocess.Popen[str], port: int, status_port: int) -> None:
        self.proc, self.port = proc, port
        self.url = f"http://127.0.0.1:{port}"
        self.status_url = f"http://127.0.0.1:{status_port}"

    def proc_status(self, field: str) -> int:
        """A number from /proc/<pid>/status (Threads, VmRSS in kB)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)


@pytest.fixture
def daemon(repo: ConfigRepo, names: dict[str, str], tmp_path: Path, kubeconfig: str) -> Iterator[Daemon]:
    repo.write("environments/dev/app.yaml", [configmap("settings", {"mode": "one"})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"mode": "one"})])
    repo.commit()
    (tmp_path / "secret").write_bytes(SECRET + b"\n")
    (tmp_path / "token").write_text(TOKEN + "\n")
    config: dict[str, Any] = yaml.safe_load(config_yaml(repo, names, tmp_path))
    config["server"] = {
        "webhook_secret_file": str(tmp_path / "secret"),
        "status_token_file": str(tmp_path / "token"),
        "max_connections": MAX_CONNECTIONS,
    }
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(config))
    port, status_port = free_port(), free_port()
    command = [sys.executable, "-m", "gitops_agent", "run", "--config", str(tmp_path / "agent.yaml"),
               "--kubeconfig", kubeconfig, "--listen", f"127.0.0.1:{port}",
               "--status-listen", f"127.0.0.1:{status_port}", "--no-leader-election",
               "--log-format", "json"]  # fmt: skip
    with (tmp_path / "agent.log").open("w") as log:  # a file: a full pipe would stall the agent
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, text=True)
    d = Daemon(proc, port, status_port)
    try:
        wait_until(lambda: _get(d.url + "/readyz") == 200, timeout=60)
        yield d
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.TransportError:
        return 0


def _probe(url: str) -> tuple[int, float]:
    """Status and seconds of one probe on a fresh connection, as a kubelet makes it."""
    started = time.monotonic()
    try:
        status = httpx.get(url, timeout=1.0, headers={"Connection": "close"}).status_code
    except httpx.TransportError:
        status = 0
    return status, time.monotonic() - started


def _slowloris(daemon: Daemon, stop: threading.Event, closed: list[float]) -> None:
    """A request line, then one header line every 0.5s, never the blank line that ends the headers."""
    sock = daemon.connect()
    started = time.monotonic()
    sock.sendall(b"POST /webhooks/github HTTP/1.1\r\nHost: agent\r\n")
    while not stop.is_set():
        try:
            sock.sendall(b"X-Slow: " + b"a" * 10 + b"\r\n")
        except OSError:
            closed.append(time.monotonic() - started)
            return
        stop.wait(0.5)
    sock.close()


def test_idle_connections_and_a_slowloris_hold_no_thread_and_the_probes_keep_answering(daemon: Daemon) -> None:
    threads_before, fds_before = daemon.proc_status("Threads"), daemon.open_fds()
    stop, slow_closed = threading.Event(), []
    idle = [daemon.connect() for _ in range(300)]  # past max_connections: the oldest make room
    slow = [threading.Thread(target=_slowloris, args=(daemon, stop, slow_closed)) for _ in range(5)]
    for t in slow:  # newer than the idle ones: only the header deadline closes them
        t.start()
    try:
        probes = []
        for _ in range(20):  # ~6s under the flood; the slowloris lines keep coming meanwhile
            probes += [_probe(daemon.url + "/healthz"), _probe(daemon.url + "/readyz")]
            probes.append(_probe(daemon.status_url + "/readyz"))
            time.sleep(0.2)
        threads_during, fds_during = daemon.proc_status("Threads"), daemon.open_fds()
        wait_until(lambda: len(slow_closed) == 5, timeout=20)  # the header deadline (10s) closed each
    finally:
        stop.set()
        for t in slow:
            t.join()
        for sock in idle:
            sock.close()
    slowest = max(seconds for _, seconds in probes)
    print(f"\nthreads {threads_before} -> {threads_during}; fds {fds_before} -> {fds_during}; "
          f"slowest probe {slowest * 1000:.0f} ms; slowloris closed after {max(slow_closed):.1f}s")  # fmt: skip
    assert all(status == 200 for status, _ in probes), probes
    assert slowest < 1.0
    assert threads_during <= threads_before + 4  # the probe pool's threads, never one per connection
    assert fds_during <= fds_before + MAX_CONNECTIONS + 10  # 305 connections tried, at most 128 held
    assert min(slow_closed) > 5 and max(slow_closed) < 15  # the 10s deadline, not the connection limit


def _unsigned_post(daemon: Daemon, chunked: bool) -> tuple[int, int]:
    """An unsigned 20 MB push: the status answered before any body was sent, and how many body bytes
    the connection then took before it broke (kernel buffers, not the agent, take those)."""
    sock = daemon.connect()
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY}"
    sock.sendall(f"POST /webhooks/github HTTP/1.1\r\nHost: agent\r\nX-GitHub-Event: push\r\n{framing}\r\n\r\n".encode())
    head = sock.recv(4096)
    status = int(head.split()[1]) if head else 0
    chunk = (b"100000\r\n" + b"x" * 0x100000 + b"\r\n") if chunked else b"x" * 0x100000
    sent = 0
    sock.settimeout(2)
    try:
        while sent < BODY:
            sent += sock.send(chunk)
    except OSError:
        pass
    sock.close()
    return status, sent


def test_fifty_unsigned_20_mb_posts_are_refused_without_reading_their_bodies(daemon: Daemon) -> None:
    for _ in range(3):  # warm up: the code paths and pools the attack uses
        _unsigned_post(daemon, chunked=False)
    rss_before = daemon.proc_status("VmRSS")
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda i: _unsigned_post(daemon, chunked=i == 0), range(50)))
    grown_mb = (daemon.proc_status("VmRSS") - rss_before) / 1024
    accepted_mb = max(sent for _, sent in results) / 1e6
    print(f"\nRSS grew {grown_mb:.1f} MB after 50 unsigned 20 MB POSTs; at most {accepted_mb:.1f} MB of one "
          "body left the client before the connection broke")  # fmt: skip
    assert [status for status, _ in results] == [401] * 50  # the chunked one too: unsigned is decided first
    assert all(sent < BODY for _, sent in results)
    assert grown_mb < 20
    assert _probe(daemon.url + "/healthz")[0] == 200


def test_a_wrongly_signed_body_is_read_only_up_to_the_cap_and_memory_stays_bounded(daemon: Daemon) -> None:
    body = b"{" + b" " * (BODY - 2) + b"}"
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature(b"a guess", body)}
    rss_before = daemon.proc_status("VmRSS")
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: _post(daemon.url, body, headers), range(8)))
    grown_mb = (daemon.proc_status("VmRSS") - rss_before) / 1024
    print(f"\nRSS grew {grown_mb:.1f} MB after 8 wrongly signed 20 MB POSTs at once")
    assert set(codes) <= {401, 503} and 401 in codes
    assert grown_mb < 100  # at most 32 MiB of bodies held at once (and a copy while joined)
    over = _post(daemon.url, b"x" * 26 * 1024 * 1024, headers)
    assert over == 413


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    try:
        return httpx.post(url + "/webhooks/github", content=body, headers=headers, timeout=60).status_code
    except httpx.TransportError:
        return 0


def test_status_and_metrics_want_the_token_and_are_not_on_the_webhook_port(daemon: Daemon) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/status", "/metrics", "/api/v1/status", "/api/v1/environments/dev/health"):
        assert httpx.get(daemon.status_url + path, timeout=5).status_code == 401, path
        wrong = {"Authorization": "Bearer " + TOKEN[:-1]}
        assert httpx.get(daemon.status_url + path, headers=wrong, timeout=5).status_code == 401, path
        assert httpx.get(daemon.status_url + path, headers=bearer, timeout=5).status_code == 200, path
        assert httpx.get(daemon.url + path, headers=bearer, timeout=5).status_code == 404, path
    # the status board's page holds no data: a browser opens it, its script asks for the token
    page = httpx.get(daemon.status_url + "/", timeout=5)
    assert page.status_code == 200 and "/assets/board.js" in page.text and "prod" not in page.text
    status = httpx.get(daemon.status_url + "/status", headers=bearer, timeout=5).json()
    assert status["ready"] is True and [e["name"] for e in status["environments"]] == ["dev", "prod"]
    body = b'{"ref": "refs/heads/main"}'
    signed = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature(SECRET, body)}
    answer = httpx.post(daemon.url + "/webhooks/github", content=body, headers=signed, timeout=10)
    assert answer.status_code == 202 and answer.json()["environments"] == ["dev", "prod"]
