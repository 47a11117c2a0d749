"""A real Kubernetes control plane for tests and demos: etcd, kube-apiserver, controller-manager,
scheduler and kwok (simulated nodes and pods), started from binaries that ``build.sh`` builds from
Go modules and caches per version.

    python -m tests.controlplane.harness up --dir .cluster     # background; kubeconfig in .cluster/
    python -m tests.controlplane.harness down --dir .cluster

In tests, ``ControlPlane`` is used as a context manager by a session fixture. Every process runs in
its own process group and, when started from a test, dies with the test process (PDEATHSIG), so a
crashed test run leaves nothing behind; ``down``/``stop`` also removes etcd's data.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

HERE = Path(__file__).resolve().parent
NODE_NAME = "kwok-node-0"
FAIL_ANNOTATION = "gitops-agent.test/fail"  # on a pod template: crashloop | exit (see stages.yaml)
_PR_SET_PDEATHSIG = 1


def bin_dir() -> Path:
    """The cached binaries, built on first use (minutes cold, instant warm)."""
    out = subprocess.run(["bash", str(HERE / "build.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- certificates ---------------------------------------------------------------------------------


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    signer: rsa.RSAPrivateKey,
    *,
    ca: bool,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def write_pki(pki: Path) -> None:
    """CA, apiserver serving cert, an admin client cert (system:masters), service-account keys."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_key, ca_name = _key(), _name("gitops-agent-test-ca")
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes.default.svc"),
    ]
    server_key = _key()
    server = _cert(_name("kube-apiserver"), server_key, ca_name, ca_key, ca=False, sans=sans)
    admin_key = _key()
    admin = _cert(_name("admin", "system:masters"), admin_key, ca_name, ca_key, ca=False)
    sa_key = _key()
    files = {
        "ca.crt": ca.public_bytes(serialization.Encoding.PEM),
        "apiserver.crt": server.public_bytes(serialization.Encoding.PEM),
        "apiserver.key": _pem_key(server_key),
        "admin.crt": admin.public_bytes(serialization.Encoding.PEM),
        "admin.key": _pem_key(admin_key),
        "sa.key": _pem_key(sa_key),
        "sa.pub": sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for name, data in files.items():
        (pki / name).write_bytes(data)


def kubeconfig_text(server: str, pki: Path) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")}}],
            "users": [
                {
                    "name": "admin",
                    "user": {"client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")},
                }
            ],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
            "current-context": "test",
        },
        indent=2,
    )


# --- processes ------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Runs in the child before exec: its own process group, and SIGKILL when the parent dies."""
    os.setpgrp()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class ControlPlane:
    """One control plane in ``state_dir``. ``start()`` then ``stop()``, or use ``with``."""

    state_dir: Path
    bins: Path | None = None
    detached: bool = False  # `up` from make: outlive the starting process
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    _commands: dict[str, list[str]] = field(default_factory=dict)

    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout_s: float = 120.0) -> None:
        started = time.monotonic()
        self.bins = self.bins or bin_dir()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "logs").mkdir(exist_ok=True)
        write_pki(self.pki)
        try:
            self._start_etcd()
            self._start_apiserver()
            self.kubeconfig.write_text(kubeconfig_text(self.server, self.pki))
            self._wait("kube-apiserver /readyz", self._apiserver_ready, timeout_s)
            self._start("kube-controller-manager", self._controller_manager_args())
            self._start("kube-scheduler", self._scheduler_args())
            self._start("kwok", self._kwok_args())
            self._register_node()
            self._wait("a Ready node", self._node_ready, timeout_s)
            self._wait("the default ServiceAccount", self._default_service_account, timeout_s)
        except BaseException:
            self.stop()
            raise
        self._save_pids()
        print(f"control plane ready at {self.server} in {time.monotonic() - started:.1f}s", file=sys.stderr)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self._kill(name)
        shutil.rmtree(self.state_dir / "etcd", ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / "pids.json").unlink()

    def restart_apiserver(self, down_s: float = 0.0, timeout_s: float = 60.0) -> None:
        """Stop the API server (clients get connection errors), then start it again on its port."""
        self.stop_apiserver()
        time.sleep(down_s)
        self.start_apiserver_again(timeout_s)

    def stop_apiserver(self, *, abruptly: bool = False) -> None:
        """SIGTERM lets the API server finish requests in flight; ``abruptly`` (SIGKILL) cuts them."""
        self._kill("kube-apiserver", signal.SIGKILL if abruptly else signal.SIGTERM)

    def start_apiserver_again(self, timeout_s: float = 60.0) -> None:
        self._start("kube-apiserver", self._commands["kube-apiserver"])
        self._wait("kube-apiserver /readyz", self._apiserver_ready, timeout_s)

    # --- the components --------------------------------------------------------------------------

    def _start_etcd(self) -> None:
        self.ports["etcd"], self.ports["etcd-peer"] = free_port(), free_port()
        client, peer = f"http://127.0.0.1:{self.ports['etcd']}", f"http://127.0.0.1:{self.ports['etcd-peer']}"
        self._start(
            "etcd",
            [
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync",  # tests: durability is not the point, speed is
                "--log-level=warn",
            ],
        )

    def _start_apiserver(self) -> None:
        self.ports["apiserver"] = free_port()
        pki = self.pki
        self._start(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                f"--secure-port={self.ports['apiserver']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",  # room for the bench's 5,000-object environments
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
            ],
        )

    def _controller_manager_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--root-ca-file={self.pki / 'ca.crt'}",
            f"--service-account-private-key-file={self.pki / 'sa.key'}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            "--controllers=*",
        ]

    def _scheduler_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
        ]

    def _kwok_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--config={HERE / 'stages.yaml'}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.1.0.1",
        ]

    def _register_node(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux", "type": "kwok"},
            },
            "status": {"capacity": {"cpu": "64", "memory": "256Gi", "pods": "500"}},
        }
        self._api("POST", "/api/v1/nodes", node)

    # --- plumbing -------------------------------------------------------------------------------

    def _start(self, name: str, args: list[str]) -> None:
        assert self.bins is not None
        cmd = [str(self.bins / name), *args]
        self._commands[name] = args
        log = open(self.state_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - the process owns it
        self.processes[name] = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=os.setpgrp if self.detached else _die_with_parent,
        )
        log.close()

    def _kill(self, name: str, how: signal.Signals = signal.SIGTERM) -> None:
        proc = self.processes.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, how)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def _save_pids(self) -> None:
        pids = {name: p.pid for name, p in self.processes.items()}
        (self.state_dir / "pids.json").write_text(json.dumps({"pids": pids, "server": self.server}))

    def _wait(self, what: str, ready: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    tail = (self.state_dir / "logs" / f"{name}.log").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{name} exited ({proc.returncode}) while waiting for {what}:\n{tail}")
            with contextlib.suppress(OSError, ValueError):
                if ready():
                    return
            time.sleep(0.25)
        raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what} (logs in {self.state_dir / 'logs'})")

    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def _api(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, context=self._ssl(), timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()

    def _apiserver_ready(self) -> bool:
        return bool(self._api("GET", "/readyz") == "ok")

    def _node_ready(self) -> bool:
        node = self._api("GET", f"/api/v1/nodes/{NODE_NAME}")
        conditions = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _default_service_account(self) -> bool:
        self._api("GET", "/api/v1/namespaces/default/serviceaccounts/default")
        return True

    def api_request_counts(self) -> dict[str, int]:
        """``apiserver_request_total`` summed by verb, from the API server's own metrics."""
        text = self._api("GET", "/metrics")
        counts: dict[str, int] = {}
        for line in str(text).splitlines():
            if line.startswith("apiserver_request_total{"):
                labels, value = line.rsplit(" ", 1)
                verb = labels.split('verb="', 1)[1].split('"', 1)[0]
                counts[verb] = counts.get(verb, 0) + int(float(value))
        return counts


def down(state_dir: Path) -> None:
    """Stop a control plane started by ``up`` (from another process)."""
    pids_file = state_dir / "pids.json"
    if pids_file.exists():
        pids = json.loads(pids_file.read_text())["pids"]
        for pid in reversed(list(pids.values())):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for pid in pids.values():
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        pids_file.unlink()
    shutil.rmtree(state_dir / "etcd", ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def running(state_dir: Path) -> bool:
    pids_file = state_dir / "pids.json"
    if not pids_file.exists():
        return False
    pids = json.loads(pids_file.read_text())["pids"]
    return all(_alive(pid) for pid in pids.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.controlplane.harness")
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--dir", default=".cluster")
    args = parser.parse_args(argv)
    state_dir = Path(args.dir).resolve()
    if args.command == "down":
        down(state_dir)
        print(f"control plane in {state_dir} stopped")
        return 0
    if args.command == "status":
        print("running" if running(state_dir) else "stopped")
        return 0 if running(state_dir) else 1
    if running(state_dir):
        print(f"control plane already running; kubeconfig: {state_dir / 'kubeconfig'}")
        return 0
    down(state_dir)  # leftovers of a crashed one
    ControlPlane(state_dir, detached=True).start()
    print(f"kubeconfig: {state_dir / 'kubeconfig'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
