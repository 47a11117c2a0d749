"""A real Kubernetes control plane for tests and demos: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (simulated nodes and pods), started from the binaries that ``build.sh`` builds
from Go modules and caches per version.

    python -m tests.controlplane.harness up --dir .cluster      # detached; kubeconfig in .cluster/
    python -m tests.controlplane.harness status --dir .cluster
    python -m tests.controlplane.harness down --dir .cluster

In tests, ``ControlPlane`` is a context manager (the session fixture in ``tests/conftest.py``).

Nothing is left behind. Every component runs in its own process group, recorded (pid and kernel
start time, so a reused pid is never signalled) in ``<dir>/pids.json`` as soon as it starts, which
is what ``down`` from another process reads. A control plane started from a test process also
  * dies with it: each component gets ``PR_SET_PDEATHSIG``/SIGKILL, so even ``kill -9`` of pytest
    takes etcd and the API server down;
  * is cleaned up after it: a small reaper process waits for EOF on a pipe only the test process
    holds, then kills whatever is still recorded and removes the data (etcd, keys, kubeconfig);
  * is stopped on normal exit by the context manager or, failing that, ``atexit``.
``<dir>/logs/`` stays for post-mortems.

Pods are driven by kwok Stages in ``stages.yaml``. By default a pod becomes Running and Ready, and
a Job's pod then Succeeds. The pod-template annotation ``gitops-agent.test/fail`` asks for trouble:
``crashloop`` keeps the pod Running but never Ready (container waiting in CrashLoopBackOff), and
``exit`` makes it Fail with exit code 1. ``gitops-agent.test/succeed: "true"`` makes a bare pod
Succeed like a Job's.

Counting the API requests a test causes (``apiserver_request_total`` from ``/metrics``)::

    before = plane.api_request_counts()        # or api_request_counts(api_client) for any cluster
    ...                                         # the agent does its work
    delta = plane.api_request_counts().since(before)
    assert delta.writes("deployments", group="apps") == 1   # POST/PUT/PATCH/APPLY/DELETE, not dry-run
    delta.by_verb()                                          # {"APPLY": 3, "GET": 12, ...}

The counters are cluster-wide and cumulative since the API server started, with no namespace or
client label: controllers and kwok keep writing pods, replicasets, events, leases and node status in
the background, so count the resources your test alone touches, as a difference. Server-side apply
is verb ``APPLY``; dry-run requests are counted apart (``RequestKey.dry_run``).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import ctypes
import ctypes.util
import datetime as dt
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

HERE = Path(__file__).resolve().parent
STAGES = HERE / "stages.yaml"
NODE_NAME = "kwok-node-0"  # the first fake node; more are kwok-node-1, ...
NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")  # what kwok is told to manage
FAIL_ANNOTATION = "gitops-agent.test/fail"  # on a pod (template): crashloop | exit
SUCCEED_ANNOTATION = "gitops-agent.test/succeed"  # "true" on a bare pod: Running, then Succeeded
SERVICE_CIDR = "10.96.0.0/16"  # a /16: the bench's 5,000-object environments need many ClusterIPs
POD_CIDR = "10.244.0.0/16"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})
STOP_GRACE_S = 10.0
START_TIMEOUT_S = 240.0  # generous: a 2-core CI machine under load
BIND_ATTEMPTS = 5
PROBE_TIMEOUT_S = 2.0  # one readiness probe; a server that accepted but hangs must not stall start-up
_PR_SET_PDEATHSIG = 1


def bin_dir() -> Path:
    """The cached binaries, built on first use by ``build.sh`` (minutes cold, instant warm)."""
    out = subprocess.run(["bash", str(HERE / "build.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def cached_bin_dir() -> Path | None:
    """The bin directory if ``build.sh`` has already built it, without ever building.

    Mirrors build.sh's cache layout (versions from the wrapper modules' go.mod files).
    """
    versions = []
    for module, wrapper in (
        ("k8s.io/kubernetes", "kubernetes"),
        ("go.etcd.io/etcd/server/v3", "etcd"),
        ("sigs.k8s.io/kwok", "kwok"),
    ):
        found = re.search(rf"^\s*{re.escape(module)} v(\S+)", (HERE / wrapper / "go.mod").read_text(), re.M)
        if not found:
            return None
        versions.append(found.group(1))
    if os.environ.get("GITOPS_AGENT_CACHE"):
        root = Path(os.environ["GITOPS_AGENT_CACHE"])
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gitops-agent"
    k8s, etcd, kwok = versions
    bins = root / "controlplane" / f"k8s-{k8s}-etcd-{etcd}-kwok-{kwok}" / "bin"
    wanted = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")
    return bins if all(os.access(bins / b, os.X_OK) for b in wanted) else None


def free_port() -> int:
    """A port free right now; someone may still take it before our server binds (hence retries)."""
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


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _cert(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    signer: rsa.RSAPrivateKey,
    *,
    ca: bool,
    usage: x509.ObjectIdentifier | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))  # tolerate a little clock skew
        .not_valid_after(now + dt.timedelta(days=30))  # `make cluster-up` may stay up for a while
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(signer, hashes.SHA256())


def write_pki(pki: Path) -> None:
    """A CA, the API server's serving cert, an admin client cert (O=system:masters) and the
    service-account signing key pair, as PEM files in ``pki``."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_key, ca_name = _key(), _name("gitops-agent-test-ca")
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    first_service_ip = next(ipaddress.IPv4Network(SERVICE_CIDR).hosts())  # in-cluster clients dial it
    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(first_service_ip),
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes"),
        x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"),
    ]
    server_key = _key()
    server = _cert(
        _name("kube-apiserver"), server_key, ca_name, ca_key, ca=False, usage=x509.OID_SERVER_AUTH, sans=sans
    )
    admin_key = _key()
    admin = _cert(_name("admin", "system:masters"), admin_key, ca_name, ca_key, ca=False, usage=x509.OID_CLIENT_AUTH)
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
        path = pki / name
        path.write_bytes(data)
        if name.endswith(".key"):
            path.chmod(0o600)


def kubeconfig_text(server: str, pki: Path) -> str:
    """An admin kubeconfig with the certificates inline, so a copy works anywhere (JSON is YAML)."""

    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")}}],
            "users": [
                {
                    "name": "admin",
                    "user": {"client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")},
                }
            ],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
            "current-context": "test",
        },
        indent=2,
    )


# --- API request counts ---------------------------------------------------------------------------


class RequestKey(NamedTuple):
    """One series of ``apiserver_request_total``, without the response code."""

    verb: str  # GET LIST WATCH POST PUT PATCH APPLY DELETE DELETECOLLECTION
    group: str  # "" for the core group
    resource: str  # plural, e.g. "deployments"
    subresource: str  # e.g. "status", "scale", or ""
    dry_run: bool


class RequestCounts(Counter[RequestKey]):
    """API requests served by the API server, by verb, group, resource and subresource."""

    def since(self, before: RequestCounts) -> RequestCounts:
        """The requests made after ``before`` was read (both from the same API server run)."""
        return RequestCounts({k: n - before.get(k, 0) for k, n in self.items() if n > before.get(k, 0)})

    def by_verb(self, *, dry_run: bool | None = None) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for key, n in self.items():
            if dry_run is None or key.dry_run == dry_run:
                totals[key.verb] += n
        return dict(totals)

    def count(
        self,
        verbs: Iterable[str] | None = None,
        resource: str | None = None,
        *,
        group: str | None = None,
        subresource: str | None = None,
        dry_run: bool | None = False,
    ) -> int:
        """Requests matching every given filter; ``None`` matches anything. Dry-run is excluded
        unless ``dry_run`` is True (only dry-run) or None (both)."""
        wanted = None if verbs is None else {v.upper() for v in verbs}
        return sum(
            n
            for key, n in self.items()
            if (wanted is None or key.verb in wanted)
            and (resource is None or key.resource == resource)
            and (group is None or key.group == group)
            and (subresource is None or key.subresource == subresource)
            and (dry_run is None or key.dry_run == dry_run)
        )

    def writes(self, resource: str | None = None, *, group: str | None = None, dry_run: bool | None = False) -> int:
        """Mutating requests (POST PUT PATCH APPLY DELETE DELETECOLLECTION), not dry-run by default."""
        return self.count(WRITE_VERBS, resource, group=group, dry_run=dry_run)


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_request_counts(metrics_text: str) -> RequestCounts:
    """``apiserver_request_total`` from Prometheus text exposition, summed over response codes."""
    counts = RequestCounts()
    for line in metrics_text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, _, value = line.rpartition("}")
        labels = dict(_LABEL.findall(labels_text))
        key = RequestKey(
            verb=labels.get("verb", ""),
            group=labels.get("group", ""),
            resource=labels.get("resource", ""),
            subresource=labels.get("subresource", ""),
            dry_run=bool(labels.get("dry_run")),
        )
        counts[key] += int(float(value.split()[0]))
    return counts


def api_request_counts(api_client: Any) -> RequestCounts:
    """The request counts of any cluster a ``kubernetes.client.ApiClient`` talks to (needs
    permission to GET ``/metrics``; the test admin has it)."""
    _, url, headers, _, _ = api_client.param_serialize(
        "GET", "/metrics", header_params={"Accept": "text/plain"}, auth_settings=["BearerToken"]
    )
    response = api_client.call_api("GET", url, header_params=headers)
    return parse_request_counts(response.read().decode())


# --- processes ------------------------------------------------------------------------------------


def _libc_prctl() -> Callable[..., int] | None:
    # Resolved once in the parent: loading a library in a forked child of a threaded process can deadlock.
    with contextlib.suppress(OSError, AttributeError, TypeError):
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    return None


_PRCTL = _libc_prctl()


def _die_with(parent_pid: int) -> Callable[[], None]:
    """A preexec_fn: SIGKILL this child when the thread that started it dies (Linux only)."""

    def preexec() -> None:
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return int(fields[19])


def _is_ours(pid: int, record: Any, name: str) -> bool:
    """Whether ``pid`` is still the process recorded, not a stranger that reused its pid."""
    if isinstance(record, dict):
        start = record.get("start")
        return start is not None and _start_time(pid) == start
    try:  # an older pids.json held bare pids: compare the executable's name
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except OSError:
        return False
    return Path(argv0).name == name


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:  # we started it as a group leader: take its children too
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    """Waits (bounded) for the pids to exit; reaps our own children. Returns those still alive."""
    deadline = time.monotonic() + timeout_s
    alive = list(pids)
    while alive:
        for pid in list(alive):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if _start_time(pid) is None or _zombie(pid):
                alive.remove(pid)
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return alive


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def _stop_pids(records: dict[str, Any]) -> None:
    """SIGTERM the recorded process groups, SIGKILL what is left after a grace period. etcd goes
    last: an API server whose etcd vanished hangs in its shutdown instead of exiting in a second."""
    pids = {name: (r["pid"] if isinstance(r, dict) else int(r)) for name, r in records.items()}
    ours = {name: pid for name, pid in pids.items() if _is_ours(pid, records[name], name)}
    for wave in ([pid for name, pid in ours.items() if name != "etcd"], [ours["etcd"]] if "etcd" in ours else []):
        for pid in wave:
            _signal_group(pid, signal.SIGTERM)
        for pid in _wait_gone(wave, STOP_GRACE_S):
            _signal_group(pid, signal.SIGKILL)
        _wait_gone(wave, STOP_GRACE_S)


def remove_data(state_dir: Path) -> None:
    """Everything but the logs: etcd's data, the keys, the kubeconfig, the pid record."""
    for sub in ("etcd", "pki"):
        shutil.rmtree(state_dir / sub, ignore_errors=True)
    for name in ("kubeconfig", "pids.json"):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / name).unlink()


def _read_pids(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / "pids.json").read_text())
    except (OSError, ValueError):
        return {}
    return dict(data.get("processes") or data.get("pids") or {})


def down(state_dir: Path) -> None:
    """Stops the control plane recorded in ``state_dir`` (from any process) and removes its data."""
    _stop_pids(_read_pids(state_dir))
    remove_data(state_dir)


def running(state_dir: Path) -> bool:
    records = _read_pids(state_dir)
    return bool(records) and all(
        _is_ours(r["pid"] if isinstance(r, dict) else int(r), r, name) for name, r in records.items()
    )


class ComponentExited(RuntimeError):
    def __init__(self, name: str, returncode: int, log_tail: str, waiting_for: str) -> None:
        super().__init__(f"{name} exited ({returncode}) while waiting for {waiting_for}:\n{log_tail}")
        self.name = name
        self.log_tail = log_tail


class ControlPlane:
    """One control plane in ``state_dir``: ``start()`` then ``stop()``, or ``with ControlPlane(d) as p``.

    ``detached`` (for ``up``) lets the processes outlive the starting process; otherwise they die
    with it — strictly, with the *thread* that started them (that is how PDEATHSIG works): start
    from the main thread, or one that lives as long as the control plane should. ``timings`` holds
    how long each start phase took, in seconds.
    """

    def __init__(self, state_dir: Path, *, bins: Path | None = None, detached: bool = False, nodes: int = 1) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.bins = bins
        self.detached = detached
        self.node_names = [f"kwok-node-{i}" for i in range(nodes)]
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.timings: dict[str, float] = {}
        self._args: dict[str, list[str]] = {}
        self._log_offsets: dict[str, int] = {}  # where each component's latest run starts in its log
        self._reaper: subprocess.Popen[bytes] | None = None
        self._reaper_pipe: int | None = None
        self._atexit = False

    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['kube-apiserver']}"

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        phase = t0

        def lap(name: str) -> None:
            nonlocal phase
            now = time.monotonic()
            self.timings[name] = now - phase
            phase = now

        self.bins = self.bins or bin_dir()
        lap("binaries")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        down(self.state_dir)  # leftovers of a crashed run in the same directory
        for old in self.logs.glob("*.log"):
            old.unlink()
        if not self.detached:
            self._start_reaper()
            atexit.register(self.stop)
            self._atexit = True
        try:
            write_pki(self.pki)
            lap("certificates")
            self._start_with_ports("etcd", self._etcd_args, self._etcd_ready, deadline)
            self._start_with_ports("kube-apiserver", self._apiserver_args, self._apiserver_ready, deadline)
            self.kubeconfig.write_text(kubeconfig_text(self.server, self.pki))
            lap("etcd and kube-apiserver ready")
            self._spawn("kube-controller-manager", self._controller_manager_args())
            self._spawn("kube-scheduler", self._scheduler_args())
            self._spawn("kwok", self._kwok_args())
            for name in self.node_names:
                self._register_node(name)
            self._wait("Ready nodes", self._nodes_ready, deadline)
            lap("nodes Ready")
            self._wait("the default ServiceAccount", self._default_service_account, deadline)
            lap("default ServiceAccount")
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = time.monotonic() - t0
        steps = ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items() if k != "total")
        print(f"control plane ready at {self.server} in {self.timings['total']:.1f}s ({steps})", file=sys.stderr)

    def stop(self) -> None:
        """Stops every process, removes the data (not the logs). Idempotent."""
        records = {name: self._record(p) for name, p in self.processes.items() if p.poll() is None}
        self.processes.clear()
        _stop_pids(records)
        remove_data(self.state_dir)
        self._stop_reaper()
        if self._atexit:
            atexit.unregister(self.stop)
            self._atexit = False

    def stop_component(self, name: str, *, abruptly: bool = False) -> None:
        """Stops one component (e.g. kube-apiserver: clients get connection errors until started).
        SIGTERM lets it finish what is in flight; ``abruptly`` (SIGKILL) cuts it, as in a crash."""
        proc = self.processes.pop(name, None)
        if proc is not None and proc.poll() is None:
            if abruptly:
                _signal_group(proc.pid, signal.SIGKILL)
                _wait_gone([proc.pid], STOP_GRACE_S)
            else:
                _stop_pids({name: self._record(proc)})
        self._save_pids()

    def start_component(self, name: str, timeout_s: float = 60.0) -> None:
        """Starts a stopped component again with the same flags (the API server on the same port)."""
        self._spawn(name, self._args[name])
        if name == "kube-apiserver":
            self._wait("kube-apiserver /readyz", self._apiserver_ready, time.monotonic() + timeout_s)

    def restart_apiserver(self, down_s: float = 0.0, timeout_s: float = 60.0) -> None:
        self.stop_apiserver()
        time.sleep(down_s)
        self.start_apiserver_again(timeout_s)

    def stop_apiserver(self, *, abruptly: bool = False) -> None:
        self.stop_component("kube-apiserver", abruptly=abruptly)

    def start_apiserver_again(self, timeout_s: float = 60.0) -> None:
        self.start_component("kube-apiserver", timeout_s)

    def api_request_counts(self) -> RequestCounts:
        """``apiserver_request_total`` now (see the module docstring for how to use it)."""
        return parse_request_counts(str(self.api("GET", "/metrics")))

    # --- the components --------------------------------------------------------------------------

    def _etcd_args(self) -> list[str]:
        self.ports["etcd"], self.ports["etcd-peer"] = free_port(), free_port()
        client, peer = f"http://127.0.0.1:{self.ports['etcd']}", f"http://127.0.0.1:{self.ports['etcd-peer']}"
        return [
            "--name=test",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=test={peer}",
            "--unsafe-no-fsync",  # tests: durability is not the point, speed is
            "--log-level=warn",
        ]

    def _apiserver_args(self) -> list[str]:
        self.ports["kube-apiserver"] = free_port()
        pki = self.pki
        return [
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            f"--secure-port={self.ports['kube-apiserver']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",  # needed when the machine has no default route
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            "--profiling=false",
            # Close watches on SIGTERM instead of waiting (~a minute) for clients to hang up, so a
            # graceful stop or restart_apiserver() takes a second.
            "--shutdown-watch-termination-grace-period=2s",
            # 127.0.0.1 may not be an Endpoints address: the default reconciler would fail (and log,
            # and count a failed write) every 10 seconds. Nothing here needs the kubernetes Service's
            # endpoints.
            "--endpoint-reconciler-type=none",
        ]

    def _controller_manager_args(self) -> list[str]:
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--root-ca-file={self.pki / 'ca.crt'}",  # published as kube-root-ca.crt in every namespace
            f"--service-account-private-key-file={self.pki / 'sa.key'}",  # signs legacy SA token secrets
            "--leader-elect=false",
            "--secure-port=0",  # no health endpoint to serve, so no port to race for
            "--controllers=*",  # all default controllers: deployment, replicaset, job, statefulset,
            # daemonset, namespace, serviceaccount, garbage collector, ...
            f"--cluster-cidr={POD_CIDR}",
        ]

    def _scheduler_args(self) -> list[str]:
        return [f"--kubeconfig={self.kubeconfig}", "--leader-elect=false", "--secure-port=0"]

    def _kwok_args(self) -> list[str]:
        key, value = NODE_ANNOTATION
        return [
            f"--kubeconfig={self.kubeconfig}",
            f"--config={STAGES}",  # only our Stages: kwok's defaults are replaced, not merged
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={key}={value}",
            "--node-lease-duration-seconds=40",  # heartbeats as Leases, like a kubelet
            f"--cidr={POD_CIDR}",
            "--node-ip=10.1.0.1",
        ]

    def _register_node(self, name: str) -> None:
        key, value = NODE_ANNOTATION
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {key: value},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            # The scheduler places pods by allocatable; kwok's node stage keeps these values.
            "status": {
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            },
        }
        self.api("POST", "/api/v1/nodes", node)

    # --- plumbing -------------------------------------------------------------------------------

    def _start_with_ports(
        self, name: str, make_args: Callable[[], list[str]], ready: Callable[[], bool], deadline: float
    ) -> None:
        """Starts a component on freshly chosen ports, again on new ports if one was taken meanwhile."""
        for attempt in range(1, BIND_ATTEMPTS + 1):
            self._spawn(name, make_args())
            try:
                self._wait(f"{name} to serve", ready, deadline)
                return
            except ComponentExited as exc:
                if exc.name != name or "address already in use" not in exc.log_tail or attempt == BIND_ATTEMPTS:
                    raise
                print(f"{name}: a port was taken, retrying on others (attempt {attempt + 1})", file=sys.stderr)
                self.processes.pop(name, None)

    def _spawn(self, name: str, args: list[str]) -> None:
        assert self.bins is not None
        self._args[name] = args
        log_path = self.logs / f"{name}.log"
        with open(log_path, "ab") as log:
            log.write(f"--- {dt.datetime.now(dt.UTC).isoformat()} starting {name} {' '.join(args)}\n".encode())
            log.flush()
            self._log_offsets[name] = log.tell()
            self.processes[name] = subprocess.Popen(
                [str(self.bins / name), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.state_dir,
                # Its own group, so stopping it stops its children; a new session when detached so
                # that closing the terminal that ran `make cluster-up` does not hang it up.
                start_new_session=self.detached,
                process_group=None if self.detached else 0,
                preexec_fn=None if self.detached else _die_with(os.getpid()),
            )
        self._save_pids()

    def _log_tail(self, name: str, limit: int = 4000) -> str:
        try:
            with open(self.logs / f"{name}.log", "rb") as log:
                log.seek(self._log_offsets.get(name, 0))
                return log.read().decode(errors="replace")[-limit:]
        except OSError:
            return ""

    def _record(self, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        return {"pid": proc.pid, "start": _start_time(proc.pid)}

    def _save_pids(self) -> None:
        data = {
            "processes": {name: self._record(p) for name, p in self.processes.items()},
            "server": self.server if "kube-apiserver" in self.ports else None,
            "kubeconfig": str(self.kubeconfig),
            "bins": str(self.bins),
        }
        tmp = self.state_dir / "pids.json.tmp"
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.state_dir / "pids.json")  # readers never see half a file

    def _start_reaper(self) -> None:
        """A process that outlives us just long enough to clean up if we die without stop()."""
        read_end, write_end = os.pipe()  # not inherited by the components (PEP 446), only by the reaper
        with open(self.logs / "reaper.log", "ab") as log:
            self._reaper = subprocess.Popen(
                [sys.executable, str(Path(__file__)), "_reap", "--dir", str(self.state_dir), "--fd", str(read_end)],
                pass_fds=(read_end,),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C on pytest must not kill it before it cleans up
            )
        os.close(read_end)
        self._reaper_pipe = write_end

    def _stop_reaper(self) -> None:
        if self._reaper_pipe is not None:
            os.close(self._reaper_pipe)  # EOF: the reaper finds nothing left and exits
            self._reaper_pipe = None
        if self._reaper is not None:
            try:
                self._reaper.wait(STOP_GRACE_S * 3)
            except subprocess.TimeoutExpired:
                self._reaper.kill()
                self._reaper.wait()
            self._reaper = None

    def _wait(self, what: str, ready: Callable[[], bool], deadline: float) -> None:
        while True:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise ComponentExited(name, proc.returncode, self._log_tail(name), what)
            with contextlib.suppress(OSError, ValueError, KeyError):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what} (logs in {self.logs})")
            time.sleep(0.2)

    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def api(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json", timeout_s: float = 10
    ) -> Any:
        """One request as the cluster admin; JSON responses decoded, others returned as text."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Content-Type", content_type)
        # No proxy: an HTTPS_PROXY in CI's environment must not capture loopback traffic.
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self._ssl())
        )
        with opener.open(req, timeout=timeout_s) as resp:
            raw = resp.read()
        return json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()

    def _etcd_ready(self) -> bool:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"http://127.0.0.1:{self.ports['etcd']}/health", timeout=PROBE_TIMEOUT_S) as resp:
            return bool(json.loads(resp.read()).get("health") == "true")

    def _apiserver_ready(self) -> bool:
        return bool(self.api("GET", "/readyz", timeout_s=PROBE_TIMEOUT_S) == "ok")

    def _nodes_ready(self) -> bool:
        for name in self.node_names:
            conditions = (
                self.api("GET", f"/api/v1/nodes/{name}", timeout_s=PROBE_TIMEOUT_S)
                .get("status", {})
                .get("conditions", [])
            )
            if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return False
        return True

    def _default_service_account(self) -> bool:
        # Pods are rejected in a namespace until its default ServiceAccount exists.
        self.api("GET", "/api/v1/namespaces/default/serviceaccounts/default", timeout_s=PROBE_TIMEOUT_S)
        return True


def _reap(state_dir: Path, fd: int) -> None:
    """The reaper: waits for EOF (its parent stopped or died), then cleans up what is left."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    while True:
        try:
            if not os.read(fd, 1):
                break
        except InterruptedError:
            continue
    leftovers = _read_pids(state_dir)
    if leftovers:
        print(f"reaper: the test process died; stopping {', '.join(leftovers)} in {state_dir}", flush=True)
    down(state_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.controlplane.harness")
    parser.add_argument("command", choices=("up", "down", "status", "_reap"))
    parser.add_argument("--dir", default=".cluster")
    parser.add_argument("--nodes", type=int, default=1, help="fake kwok nodes (up)")
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    state_dir = Path(args.dir).resolve()
    if args.command == "_reap":
        _reap(state_dir, args.fd)
        return 0
    if args.command == "down":
        down(state_dir)
        print(f"control plane in {state_dir} stopped")
        return 0
    if args.command == "status":
        is_running = running(state_dir)
        print("running" if is_running else "stopped")
        return 0 if is_running else 1
    if running(state_dir):
        print(f"control plane already running; kubeconfig: {state_dir / 'kubeconfig'}")
        return 0
    ControlPlane(state_dir, detached=True, nodes=args.nodes).start()
    print(f"kubeconfig: {state_dir / 'kubeconfig'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
