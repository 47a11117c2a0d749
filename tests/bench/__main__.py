"""``make bench``: gitops-agent against kubectl on the same manifests, in the same run.

For each N it generates an environment of N objects across realistic kinds (Deployments, Services,
ConfigMaps, Secrets, ServiceAccounts, Roles and custom resources of a CRD installed beforehand),
then measures four scenarios, each as the median wall time of several runs of a whole process
(the agent's CLI, kubectl), with the API requests each sent (the agent's own count; kubectl's
``-v=6`` response lines) and each's peak RSS:

1. ``first-apply``:  ``gitops-agent sync --no-wait``  vs  ``kubectl apply --server-side -f DIR -R``
2. ``no-change``:    ``gitops-agent sync``  vs  ``kubectl diff --server-side -f DIR -R``
3. ``change-1pct``:  ``gitops-agent sync``  vs  ``kubectl diff`` + ``kubectl apply`` (1% changed)
4. ``drift-1pct``:   ``gitops-agent drift`` vs  ``kubectl diff --server-side`` (1% drifted by hand)
5. ``prune-10pct``:  ``gitops-agent sync`` vs  ``kubectl delete -f`` (10% removed from git), after
   which the live objects and the inventory are checked to be exactly what git holds (``make bench
   N=25000`` is issue 13's "25,000 objects applied, inventoried and pruned correctly")

Once per run, before them, ``render-max`` (``tests/bench/render.py``): the largest render the box
allows (a kustomize overlay whose output is just under the 8 MiB cap), rendered as a pass renders
it, with the peak RSS of the agent's process and of its kustomize, and ``kubectl kustomize``'s;
written to ``.bench/render.json`` (``--render-only`` runs just it, with no cluster).

Each tool works in namespaces of its own, so neither sees the other's objects. Figures are
printed as a table and written to ``.bench/latest.json``. Then the watch figures
(``tests/bench/watch.py``, ``.bench/watch.json``) and the scale figures (``tests/bench/scale.py``:
RSS at 5,000 and 20,000 objects, 100 environments converged by 1 and by 3 replicas), added to
``.bench/latest.json`` (records with ``"bench": "scale"``) and in ``.bench/scale.json``;
``--scale-only`` runs just those, ``--no-scale`` leaves them out. Not a test: nothing here asserts
speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from gitops_agent.adapters.kube import KubeClient
from gitops_agent.cluster.api import ClusterApi
from gitops_agent.cluster.state import StateStore
from gitops_agent.core.prepare import ENV_LABEL
from tests.bench.procfs import status_kib
from tests.bench.render import bench_render, print_render
from tests.bench.scale import bench_scale, print_scale
from tests.bench.watch import bench_watch
from tests.support.builders import widget_crd

ROOT = Path(__file__).resolve().parents[2]
GROUP = "bench.gitops-agent.dev"
CRD = widget_crd(GROUP)
# as the agent does: server-side apply under a manager of its own, taking fields from others
KUBECTL_SSA = ("--server-side", "--force-conflicts", "--field-manager=kubectl-bench")
_GROUPS = {"Deployment": "apps", "Role": "rbac.authorization.k8s.io"}
# per 20 objects: what a typical service namespace holds
MIX = [
    ("Deployment", 3),
    ("Service", 3),
    ("ConfigMap", 5),
    ("Secret", 3),
    ("ServiceAccount", 2),
    ("Role", 2),
    ("Widget", 2),
]


@dataclass(frozen=True)
class Record:
    scenario: str
    n: int
    agent_s: float
    kubectl_s: float
    ratio: float  # agent_s / kubectl_s: below 1 the agent is faster
    api_requests: int  # the agent's
    kubectl_api_requests: int
    peak_rss_mb: float  # the agent's
    kubectl_peak_rss_mb: float
    runs: int


@dataclass(frozen=True)
class Run:
    seconds: float
    requests: int
    peak_rss_mb: float


# --- manifests ------------------------------------------------------------------------------


def generate(n: int, version: int = 0, changed: int = 0) -> list[dict[str, Any]]:
    """N objects; the first ``changed`` ConfigMaps carry ``version`` (the 1% change)."""
    kinds: list[str] = []
    while len(kinds) < n:
        for kind, count in MIX:
            kinds.extend([kind] * count)
    objects = []
    configmaps = 0
    for i, kind in enumerate(kinds[:n]):
        name = f"{kind.lower()}-{i}"
        if kind == "ConfigMap":
            rev = version if configmaps < changed else 0
            configmaps += 1
            objects.append(_obj("v1", kind, name, data={"settings.json": json.dumps({"i": i, "rev": rev})}))
        else:
            objects.append(_build(kind, name, i))
    return objects


def _obj(api_version: str, kind: str, name: str, **body: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "labels": {"app": name}}, **body}


def _build(kind: str, name: str, i: int) -> dict[str, Any]:
    labels = {"app": name}
    if kind == "Deployment":
        container = {"name": "app", "image": f"registry.example/app:{i % 7}", "resources": {"limits": {"cpu": "100m"}}}
        pod = {"containers": [container]}
        template = {"metadata": {"labels": labels}, "spec": pod}
        spec = {"replicas": 1, "selector": {"matchLabels": labels}, "template": template}
        return _obj("apps/v1", kind, name, spec=spec)
    if kind == "Service":
        return _obj("v1", kind, name, spec={"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]})
    if kind == "Secret":
        return _obj("v1", kind, name, stringData={"password": f"not-a-real-secret-{i}"})
    if kind == "ServiceAccount":
        return _obj("v1", kind, name)
    if kind == "Role":
        rules = [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]
        return _obj("rbac.authorization.k8s.io/v1", kind, name, rules=rules)
    return _obj(f"{GROUP}/v1", "Widget", name, spec={"size": i % 5})


def write_manifests(directory: Path, objects: list[dict[str, Any]], namespace: str | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.yaml"):
        old.unlink()
    per_file = 50
    for start in range(0, len(objects), per_file):
        chunk = []
        for o in objects[start : start + per_file]:
            o = json.loads(json.dumps(o))
            if namespace:
                o["metadata"]["namespace"] = namespace
            chunk.append(o)
        (directory / f"part-{start // per_file:04d}.yaml").write_text(yaml.safe_dump_all(chunk))


# --- processes ------------------------------------------------------------------------------


def timed(
    cmd: list[str], *, env: dict[str, str] | None = None, ok_codes: tuple[int, ...] = (0,)
) -> tuple[float, int, str]:
    """Run a whole process; (seconds, peak RSS in KiB, stderr)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    peak = _HighWater(proc.pid)
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    _, status, _ = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode not in ok_codes:
        raise RuntimeError(f"{' '.join(cmd[:3])} … exited {proc.returncode}:\n{stderr[-2000:]}")
    return seconds, peak.kib(), stderr


class _HighWater:
    """A process's peak RSS, as its own address space saw it (``VmHWM``, read until it exits). Not
    ``wait4``'s ``ru_maxrss``: Linux carries the high-water mark across exec, so every child forked
    from this bench (itself ~100 MB) would report at least the bench's size."""

    def __init__(self, pid: int, every_s: float = 0.01) -> None:
        self._pid, self._every_s, self._kib = pid, every_s, 0
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while True:
            try:
                kib = status_kib(self._pid, "VmHWM")
            except OSError:  # exited and reaped
                return
            if kib is None:  # a zombie has no address space left: the last reading stands
                return
            self._kib = max(self._kib, kib)
            time.sleep(self._every_s)

    def kib(self) -> int:
        self._thread.join()
        return self._kib


class Bench:
    def __init__(self, kubeconfig: str, workdir: Path) -> None:
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        bin_dir = subprocess.run(
            ["bash", str(ROOT / "tests/controlplane/build.sh")], check=True, capture_output=True, text=True
        ).stdout.strip()
        self.kubectl = str(Path(bin_dir) / "kubectl")
        self.agent = str(Path(sys.executable).parent / "gitops-agent")

    def k(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.kubectl, "--kubeconfig", self.kubeconfig, *args], capture_output=True, text=True, check=check
        )

    def kubectl_apply(self, directory: Path) -> Run:
        return self.kubectl_run("apply", *KUBECTL_SSA, "-f", str(directory), "-R")

    def kubectl_diff(self, directory: Path, *, changes: bool) -> Run:
        return self.kubectl_run("diff", *KUBECTL_SSA, "-f", str(directory), "-R", ok_codes=(1,) if changes else (0,))

    def kubectl_run(self, *args: str, ok_codes: tuple[int, ...] = (0,)) -> Run:
        seconds, rss, stderr = timed([self.kubectl, "--kubeconfig", self.kubeconfig, "-v=6", *args], ok_codes=ok_codes)
        requests = sum(1 for line in stderr.splitlines() if '"Response"' in line or "Response Status" in line)
        return Run(seconds, requests, rss / 1024)

    def agent_run(self, config: Path, command: str) -> Run:
        stats = self.workdir / "stats.json"
        env = {**os.environ, "GITOPS_AGENT_STATS": str(stats)}
        cmd = [self.agent, command, "--config", str(config), "--kubeconfig", self.kubeconfig, "--env", "bench"]
        if command == "sync":
            cmd.append("--no-wait")  # kubectl apply does not wait for rollouts either
        seconds, rss, _ = timed(cmd, env=env, ok_codes=(0, 1) if command == "drift" else (0,))
        requests = sum(json.loads(stats.read_text())["requests"].values())
        return Run(seconds, requests, rss / 1024)

    def reset(self, *namespaces: str) -> None:
        for ns in namespaces:
            self.k("delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=600s")
        self.k("delete", "namespace", "bench-agent-state", "--ignore-not-found", "--wait=true", "--timeout=120s")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def agent_config(workdir: Path, repo: Path, namespace: str) -> Path:
    config = {
        "repo": {"url": str(repo), "branch": "main", "cache_dir": str(workdir / "cache")},
        "agent": {"namespace": "bench-agent-state"},
        "environments": [{"name": "bench", "path": "env", "namespace": namespace}],
    }
    path = workdir / "gitops-agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def median_run(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.seconds for r in runs),
        int(statistics.median(r.requests for r in runs)),
        max(r.peak_rss_mb for r in runs),
    )


def record(scenario: str, n: int, agent: list[Run], kubectl: list[Run]) -> Record:
    a, k = median_run(agent), median_run(kubectl)
    return Record(
        scenario,
        n,
        round(a.seconds, 3),
        round(k.seconds, 3),
        round(a.seconds / k.seconds, 2),
        a.requests,
        k.requests,
        round(a.peak_rss_mb, 1),
        round(k.peak_rss_mb, 1),
        len(agent),
    )


def bench_n(b: Bench, n: int, runs: int) -> list[Record]:
    work = b.workdir / f"n{n}"
    repo, kdir = work / "repo", work / "kubectl"
    ns_agent, ns_kubectl = f"bench-agent-{n}", f"bench-kubectl-{n}"
    changed = max(1, n // 100)
    out: list[Record] = []

    def fresh_repo() -> Path:
        if repo.exists():
            subprocess.run(["rm", "-rf", str(repo)], check=True)
        repo.mkdir(parents=True)
        git(repo, "init", "-q", "-b", "main")
        write_manifests(repo / "env", generate(n), None)
        git(repo, "add", "-A")
        git(repo, "-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qm", "v0")
        return agent_config(work, repo, ns_agent)

    # 1. first apply, from nothing, several times
    agent_runs, kubectl_runs = [], []
    for _ in range(runs):
        b.reset(ns_agent, ns_kubectl)
        config = fresh_repo()
        write_manifests(kdir, generate(n), ns_kubectl)
        b.k("create", "namespace", ns_kubectl)
        agent_runs.append(b.agent_run(config, "sync"))
        kubectl_runs.append(b.kubectl_apply(kdir))
    out.append(record("first-apply", n, agent_runs, kubectl_runs))

    # 2. no change
    agent_runs = [b.agent_run(config, "sync") for _ in range(runs)]
    kubectl_runs = [b.kubectl_diff(kdir, changes=False) for _ in range(runs)]
    out.append(record("no-change", n, agent_runs, kubectl_runs))

    # 3. 1% changed, diff + apply
    agent_runs, kubectl_runs = [], []
    for version in range(1, runs + 1):
        write_manifests(repo / "env", generate(n, version, changed), None)
        git(repo, "-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qam", f"v{version}")
        agent_runs.append(b.agent_run(config, "sync"))
        write_manifests(kdir, generate(n, version, changed), ns_kubectl)
        diff = b.kubectl_diff(kdir, changes=True)
        apply = b.kubectl_apply(kdir)
        kubectl_runs.append(
            Run(diff.seconds + apply.seconds, diff.requests + apply.requests, max(diff.peak_rss_mb, apply.peak_rss_mb))
        )
    out.append(record("change-1pct", n, agent_runs, kubectl_runs))

    # 4. 1% drifted by hand, detected
    drifted = [o["metadata"]["name"] for o in generate(n) if o["kind"] == "ConfigMap"][:changed]
    for name in drifted:
        for ns in (ns_agent, ns_kubectl):
            b.k(
                "patch",
                "configmap",
                name,
                "-n",
                ns,
                "--field-manager=kubectl-edit",
                "--type=merge",
                "-p",
                json.dumps({"data": {"settings.json": "edited"}}),
            )
    agent_runs = [b.agent_run(config, "drift") for _ in range(runs)]
    kubectl_runs = [b.kubectl_diff(kdir, changes=True) for _ in range(runs)]
    out.append(record("drift-1pct", n, agent_runs, kubectl_runs))

    # 5. 10% removed from git: the agent prunes them; kubectl deletes them by file. Then check that
    # what is live and what the inventory holds is exactly what git says.
    verify(b.kubeconfig, ns_agent, expected=n)
    kept, removed = split_every(generate(n, runs, changed), 10)
    write_manifests(repo / "env", kept, None)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qm", "remove 10%")
    agent_run = b.agent_run(config, "sync")
    gone = work / "kubectl-removed"  # not under kdir: later runs diff kdir
    write_manifests(gone, removed, ns_kubectl)
    kubectl_run = b.kubectl_run("delete", "-f", str(gone), "-R", "--wait=false")
    out.append(record("prune-10pct", n, [agent_run], [kubectl_run]))
    verify(b.kubeconfig, ns_agent, expected=len(kept))
    b.reset(ns_agent, ns_kubectl)
    return out


def split_every(objects: list[dict[str, Any]], k: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every k-th object removed; the rest kept."""
    return [o for i, o in enumerate(objects) if i % k], [o for i, o in enumerate(objects) if not i % k]


def verify(kubeconfig: str, namespace: str, *, expected: int) -> None:
    """Exactly ``expected`` objects carry the environment's label in its namespace, and the inventory
    holds exactly them (not the Namespace itself, which is never inventoried); raise otherwise."""
    kube = KubeClient.connect(kubeconfig=kubeconfig)
    try:
        api = ClusterApi(kube)
        live = 0
        for kind, _ in MIX:
            info = api.lookup(GROUP if kind == "Widget" else _GROUPS.get(kind, ""), kind)
            assert info is not None, kind
            live += len(kube.list(info, namespace=namespace, label_selector=f"{ENV_LABEL}=bench"))
        inventory = StateStore(api, namespace="bench-agent-state", field_manager="gitops-agent").read_inventory("bench")
        held = len(inventory.keys) if inventory else 0
    finally:
        kube.close()
    if (live, held) != (expected, expected):
        raise SystemExit(f"bench {namespace}: {live} live and {held} inventoried objects, expected {expected} of each")
    print(f"verified {namespace}: {live} objects live, {held} inventoried", flush=True)


def print_table(records: list[Record]) -> None:
    header = (
        f"{'scenario':<12} {'n':>5} {'agent s':>8} {'kubectl s':>9} {'ratio':>6} "
        f"{'agent req':>9} {'kubectl req':>11} {'agent MB':>8} {'kubectl MB':>10}"
    )
    print(header)
    for r in records:
        print(
            f"{r.scenario:<12} {r.n:>5} {r.agent_s:>8.2f} {r.kubectl_s:>9.2f} {r.ratio:>6.2f} {r.api_requests:>9} "
            f"{r.kubectl_api_requests:>11} {r.peak_rss_mb:>8.1f} {r.kubectl_peak_rss_mb:>10.1f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--n", default="100,1000,5000", help="comma-separated object counts")
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (median); 1 for N >= 5000")
    parser.add_argument("--out", default=str(ROOT / ".bench" / "latest.json"))
    parser.add_argument("--render-only", action="store_true", help="only the render-max scenario (no cluster)")
    parser.add_argument("--scale-only", action="store_true", help="only the scale figures (tests/bench/scale.py)")
    parser.add_argument("--no-scale", action="store_true", help="without the scale figures (several minutes)")
    args = parser.parse_args(argv)
    if args.scale_only:
        return run_scale(args.kubeconfig, Path(args.out), None)
    workdir = ROOT / ".bench" / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    b = Bench(args.kubeconfig, workdir)
    render = bench_render(workdir, b.kubectl, [o for o in generate(1000) if o["kind"] != "Widget"], timed)
    print_render(render)
    (ROOT / ".bench" / "render.json").write_text(json.dumps(asdict(render), indent=2))
    if args.render_only:
        return 0
    subprocess.run(
        [b.kubectl, "--kubeconfig", args.kubeconfig, "apply", "--server-side", "-f", "-"],
        input=json.dumps(CRD),
        text=True,
        check=True,
        capture_output=True,
    )
    b.k("wait", "--for=condition=Established", f"crd/widgets.{GROUP}", "--timeout=60s")
    records: list[Record] = []
    for n in (int(x) for x in args.n.split(",")):
        runs = 1 if n >= 5000 else args.runs
        records += bench_n(b, n, runs)
        print_table(records[-5:])
        print()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps([asdict(r) for r in records], indent=2))
    watched = bench_watch(args.kubeconfig)  # drift latency and a no-change pass's requests
    (Path(args.out).parent / "watch.json").write_text(json.dumps(watched, indent=2))
    print(f"watch: {watched}")
    print_table(records)
    if not args.no_scale:
        return run_scale(args.kubeconfig, Path(args.out), [asdict(r) for r in records])
    print(f"\nwritten to {args.out}")
    return 0


def run_scale(kubeconfig: str, out: Path, records: list[dict[str, Any]] | None) -> int:
    """The scale figures, to ``.bench/scale.json`` and into ``out`` beside ``records`` (alone: beside
    the records ``out`` holds, any earlier scale figures replaced)."""
    scale = [{"bench": "scale", **r} for r in bench_scale(kubeconfig)]
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.parent / "scale.json").write_text(json.dumps(scale, indent=2))
    if records is None:
        kept = json.loads(out.read_text()) if out.exists() else []
        records = [r for r in kept if r.get("bench") != "scale"]
    out.write_text(json.dumps(records + scale, indent=2))
    print_scale(scale)
    print(f"\nwritten to {out} and {out.parent / 'scale.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
