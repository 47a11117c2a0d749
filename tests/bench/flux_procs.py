"""``make bench-flux``'s processes: Flux's two controllers and ``gitops-agent run``, each started
against the bench's cluster, with what is read of them: their own API request counters (Prometheus
text on their metrics ports), and their CPU seconds and peak RSS from /proc."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.bench.procfs import status_kib
from tests.controlplane.harness import free_port
from tests.support.webhooks import post_push

ROOT = Path(__file__).resolve().parents[2]
_TICKS = os.sysconf("SC_CLK_TCK")
# controller-runtime's client-go adapter: one series per response code, method and host
_REST = re.compile(r"^rest_client_requests_total\{([^}]*)\} ([0-9.e+]+)$", re.M)
_AGENT = re.compile(r'^gitops_agent_kubernetes_requests_total\{verb="([^"]*)"\} ([0-9.e+]+)$', re.M)


@dataclass(frozen=True)
class Usage:
    """What a tool's processes used between two reads (``since``)."""

    cpu_s: float
    peak_rss_mb: float  # the sum of each process's peak since the last reset
    requests: int


class Process:
    """One long-running process whose CPU (its own and its reaped children's) and peak RSS are read
    from /proc; ``reset_peak`` restarts the peak (``clear_refs``), so each scenario has its own."""

    def __init__(self, name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return sum(int(f) for f in fields[11:15]) / _TICKS  # utime stime cutime cstime

    def peak_rss_mb(self) -> float:
        return (status_kib(self.proc.pid, "VmHWM") or 0) / 1024

    def reset_peak(self) -> None:
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def tail(self, limit: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-limit:]


class Tool:
    """A tool under test: its processes and its request counter."""

    name = ""

    def __init__(self) -> None:
        self.processes: list[Process] = []

    def requests(self) -> int:
        raise NotImplementedError

    def usage_mark(self) -> tuple[float, int]:
        for p in self.processes:
            p.reset_peak()
        return sum(p.cpu_s() for p in self.processes), self.requests()

    def usage_since(self, mark: tuple[float, int]) -> Usage:
        cpu, requests = mark
        now_cpu = sum(p.cpu_s() for p in self.processes)
        rss = sum(p.peak_rss_mb() for p in self.processes)
        return Usage(round(now_cpu - cpu, 2), round(rss, 1), self.requests() - requests)

    def check_alive(self) -> None:
        for p in self.processes:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited {p.proc.returncode}:\n{p.tail()}")

    def stop(self) -> None:
        for p in self.processes:
            p.stop()


def _scrape(url: str) -> str:
    return httpx.get(url, timeout=10).text


def wait_for(what: str, ready: object, timeout_s: float, tool: Tool | None = None) -> float:
    """Polls ``ready()`` until true; the seconds it took."""
    start = time.monotonic()
    while True:
        try:
            if ready():  # type: ignore[operator]
                return time.monotonic() - start
        except httpx.TransportError:
            pass
        if tool is not None:
            tool.check_alive()
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f}s")
        time.sleep(0.2)


class Flux(Tool):
    """source-controller and kustomize-controller as local processes (leader election off, every
    namespace watched); source-controller serves its artifacts to kustomize-controller on loopback."""

    name = "flux"

    def __init__(self, bins: dict[str, str], kubeconfig: str, workdir: Path) -> None:
        super().__init__()
        env = {**os.environ, "KUBECONFIG": kubeconfig, "RUNTIME_NAMESPACE": "flux-system"}
        storage = free_port()
        self.metrics: list[str] = []
        self.health: list[str] = []
        for name in ("source-controller", "kustomize-controller"):
            metrics, health = free_port(), free_port()
            args = [
                bins[name],
                f"--metrics-addr=127.0.0.1:{metrics}",
                f"--health-addr=127.0.0.1:{health}",
                "--enable-leader-election=false",
                "--watch-all-namespaces=true",
                "--log-level=error",
            ]
            if name == "source-controller":
                path = workdir / "flux-storage"
                path.mkdir(parents=True, exist_ok=True)
                args += [
                    f"--storage-path={path}",
                    f"--storage-addr=127.0.0.1:{storage}",
                    f"--storage-adv-addr=127.0.0.1:{storage}",
                ]
            self.processes.append(Process(name, args, workdir / f"{name}.log", env))
            self.metrics.append(f"http://127.0.0.1:{metrics}/metrics")
            self.health.append(f"http://127.0.0.1:{health}/readyz")
        wait_for("Flux ready", lambda: all(httpx.get(u, timeout=2).status_code == 200 for u in self.health), 120, self)

    def requests(self) -> int:
        return int(sum(float(v) for url in self.metrics for _, v in _REST.findall(_scrape(url))))


class Agent(Tool):
    """``gitops-agent run`` with the bench's config (one replica, no leader election); pushes reach
    it as GitHub's would, signed, on its webhook."""

    name = "agent"

    def __init__(self, config: Path, kubeconfig: str, workdir: Path, secret: str, extra_env: dict[str, str]) -> None:
        super().__init__()
        self.port, self.status_port = free_port(), free_port()
        self.secret = secret
        # BENCH_FLUX_AGENT_WRAP: a script run by this Python in the agent's place, which wraps it
        # (counts its requests, say) and then calls gitops_agent.cli.main: for profiling by hand
        wrap = os.environ.get("BENCH_FLUX_AGENT_WRAP")
        entry = [sys.executable, wrap] if wrap else [str(Path(sys.executable).parent / "gitops-agent")]
        cmd = [*entry, "run", "--config", str(config), "--kubeconfig", kubeconfig, "--no-leader-election",
               "--listen", f"127.0.0.1:{self.port}", "--status-listen", f"127.0.0.1:{self.status_port}",
               "--log-format", "json"]  # fmt: skip
        self.processes.append(Process("gitops-agent", cmd, workdir / "agent.log", {**os.environ, **extra_env}))

    def requests(self) -> int:
        text = _scrape(f"http://127.0.0.1:{self.status_port}/metrics")
        return int(sum(float(v) for _, v in _AGENT.findall(text)))

    def status(self) -> dict[str, object]:
        return dict(httpx.get(f"http://127.0.0.1:{self.status_port}/status", timeout=10).json())

    def push(self, commit: str) -> None:
        post_push(f"http://127.0.0.1:{self.port}", self.secret, commit).raise_for_status()
