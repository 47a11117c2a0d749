"""``make bench-flux``: gitops-agent against Flux (source-controller + kustomize-controller) on the
same cluster and the same config repository, one after the other.

The repository (served over loopback by ``git http-backend``, token required, as GitHub would) holds
N environments, ``envs/eNNN``, each the same small app: a Deployment, a Service and a ConfigMap,
with a kustomization. Flux gets a GitRepository and N Kustomizations (``targetNamespace``,
``prune``, ``wait``); the agent gets N environments (``policy: enforce``). Both poll at the same
interval, and both are told of a commit the same way, at once: Flux by
``reconcile.fluxcd.io/requestedAt`` on its GitRepository, the agent by its signed push webhook.
Each tool works in namespaces of its own (``ff-…`` / ``fa-…``), so neither sees the other's.

Scenarios, for each N and each tool, timed from outside by listing the cluster:

- ``first-applied`` / ``first-current``: from declaring N environments (Flux: creating its objects;
  the agent: starting its process) until every object is applied / every Deployment is Current;
- ``all-applied`` / ``all-current``: one commit changing every environment (its ConfigMap and its
  pod template, so each Deployment rolls out);
- ``one-applied`` / ``one-current``: one commit changing one environment of N;
- ``no-change``: one interval with no commit (time is the interval: requests, CPU and memory count);
- ``live-edit``: a ConfigMap edited by hand in one environment, until it is back as git says (Flux
  at its next interval, the agent when its watch sees it: ``enforce`` repairs it).

For each: wall time, API requests (each tool's own client counters: Flux's
``rest_client_requests_total``, the agent's ``gitops_agent_kubernetes_requests_total``; and the API
server's total over the scenario less this bench's own reads, background included), CPU seconds
and peak RSS (Flux: both controllers summed; the agent's process, its kustomize children's CPU
included). Printed as a table and written to ``.bench/flux.json``. Not a test: nothing asserts speed.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.bench.flux_procs import ROOT, Agent, Flux, Tool, Usage
from tests.controlplane.harness import api_request_counts
from tests.integration.git_http import serve_git

LABEL = "bench-flux"
ENV_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Outcome:
    """One tool in one scenario."""

    seconds: float
    usage: Usage
    cluster_requests: int  # the API server's count over the scenario, less the bench's own reads
    note: str = ""


@dataclass(frozen=True)
class Record:
    scenario: str
    n: int
    agent_s: float
    flux_s: float
    ratio: float  # agent_s / flux_s: below 1 the agent is faster
    agent_requests: int
    flux_requests: int
    agent_rss_mb: float
    flux_rss_mb: float
    agent_cpu_s: float
    flux_cpu_s: float
    agent_cluster_requests: int
    flux_cluster_requests: int
    note: str = ""  # e.g. a tool that did not converge: its time is then a lower bound


# --- the repository ---------------------------------------------------------------------------


def app(i: int, rev: int) -> list[dict[str, Any]]:
    labels = {"app": "web", LABEL: "app"}
    meta = {"name": "web", "labels": labels}
    container = {"name": "web", "image": f"registry.example/web:{i % 5}", "resources": {"limits": {"cpu": "100m"}}}
    template = {
        "metadata": {"labels": labels, "annotations": {"bench/rev": str(rev)}},
        "spec": {"containers": [container]},
    }
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {**meta, "name": "web-config"},
         "data": {"rev": str(rev), "env": str(i)}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": template}},
    ]  # fmt: skip


class Repo:
    """The config repository: a work tree pushed to the bare repository the server serves."""

    def __init__(self, work: Path, bare: Path, n: int) -> None:
        self.work, self.bare, self.n = work, bare, n
        self.revs = [0] * n
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")
        self.git("remote", "add", "origin", str(bare))
        for i in range(n):
            self._write(i)

    def git(self, *args: str) -> str:
        cmd = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args]
        return subprocess.run(cmd, cwd=self.work, check=True, capture_output=True, text=True).stdout

    def _write(self, i: int) -> None:
        d = self.work / "envs" / f"e{i:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "app.yaml").write_text(yaml.safe_dump_all(app(i, self.revs[i])))
        (d / "kustomization.yaml").write_text(yaml.safe_dump({"resources": ["app.yaml"]}))

    def change(self, which: range | list[int]) -> str:
        for i in which:
            self.revs[i] += 1
            self._write(i)
        return self.commit(f"change {len(which)}")

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        self.git("push", "-q", "-f", "origin", "main")
        return self.git("rev-parse", "HEAD").strip()


# --- the cluster ------------------------------------------------------------------------------


class Cluster:
    def __init__(self, kubeconfig: str, kubectl: str) -> None:
        self.kubeconfig, self.kubectl = kubeconfig, kubectl
        self.api = k8s_config.new_client_from_config(kubeconfig)  # type: ignore[no-untyped-call]
        self.core, self.apps = k8s.CoreV1Api(self.api), k8s.AppsV1Api(self.api)
        self.custom = k8s.CustomObjectsApi(self.api)
        self.own_requests = 0  # this bench's reads, taken out of the API server's counts

    def k(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [self.kubectl, "--kubeconfig", self.kubeconfig, *args], input=stdin, capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(f"kubectl {' '.join(args[:3])}: {done.stderr[-2000:]}")
        return done.stdout

    def apply(self, objects: list[dict[str, Any]]) -> None:
        for start in range(0, len(objects), 200):
            chunk = {"apiVersion": "v1", "kind": "List", "items": objects[start : start + 200]}
            self.k("apply", "--server-side", "--field-manager=bench", "-f", "-", stdin=json.dumps(chunk))

    def namespaces(self, names: list[str]) -> None:
        self.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in names])

    def get(self, path: str, **query: str) -> Any:
        _, url, headers, _, _ = self.api.param_serialize(
            "GET", path, query_params=list(query.items()), header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )  # fmt: skip
        return json.loads(self.api.call_api("GET", url, header_params=headers).read())

    def delete_namespaces(self, prefix: str) -> None:
        """Deleted and gone: the next run makes namespaces of the same names."""

        def left() -> list[str]:
            names = (ns["metadata"]["name"] for ns in self.get("/api/v1/namespaces")["items"])
            return [name for name in names if name.startswith(prefix)]

        for name in left():
            self.core.delete_namespace(name)
        deadline = time.monotonic() + 600
        while left() and time.monotonic() < deadline:
            time.sleep(1)

    def server_requests(self) -> int:
        return sum(api_request_counts(self.api).values())

    def by_namespace(self, path: str) -> dict[str, Any]:
        self.own_requests += 1
        items = self.get(path, labelSelector=f"{LABEL}=app")["items"]
        return {o["metadata"]["namespace"]: o for o in items}

    def state(self, prefix: str, n: int, revs: list[int]) -> tuple[bool, bool]:
        """(every object applied at its rev, every Deployment also Current)."""
        configs = self.by_namespace("/api/v1/configmaps")
        services = self.by_namespace("/api/v1/services")
        deploys = self.by_namespace("/apis/apps/v1/deployments")
        current = True
        for i in range(n):
            ns, rev = f"{prefix}{i:03d}", str(revs[i])
            c, d = configs.get(ns), deploys.get(ns)
            if c is None or d is None or ns not in services or c.get("data", {}).get("rev") != rev:
                return False, False
            if d["spec"]["template"]["metadata"].get("annotations", {}).get("bench/rev") != rev:
                return False, False
            s, want = d.get("status", {}), d["spec"]["replicas"]
            done = s.get("observedGeneration", 0) >= d["metadata"]["generation"] and all(
                s.get(k, 0) == want for k in ("updatedReplicas", "replicas", "availableReplicas")
            )
            current = current and done
        return True, current


def wait_state(
    cluster: Cluster, tool: Tool, prefix: str, n: int, revs: list[int], timeout_s: float = ENV_TIMEOUT_S
) -> tuple[float, float]:
    """Seconds until every object is applied, and until every Deployment is Current."""
    start = time.monotonic()
    applied_at: float | None = None
    while True:
        applied, current = cluster.state(prefix, n, revs)
        now = time.monotonic() - start
        if applied and applied_at is None:
            applied_at = now
        if current:
            return applied_at or now, now
        if now > timeout_s:
            raise TimeoutError(f"{tool.name}: {prefix}* not converged within {timeout_s:.0f}s")
        tool.check_alive()
        time.sleep(0.25)


# --- one tool through every scenario ----------------------------------------------------------


class Driver:
    """Runs one tool through the scenarios; ``out[scenario]`` holds its outcomes."""

    def __init__(self, cluster: Cluster, repo: Repo, tool_name: str, prefix: str, interval_s: float) -> None:
        self.cluster, self.repo, self.prefix, self.interval_s = cluster, repo, prefix, interval_s
        self.tool_name = tool_name
        self.out: dict[str, Outcome] = {}

    def measure(self, tool: Tool, names: tuple[str, str], start: Callable[[], None], *, fresh: bool = False) -> None:
        before_server, before_own = self.cluster.server_requests(), self.cluster.own_requests
        mark = (0.0, 0) if fresh else tool.usage_mark()
        started = time.monotonic()
        start()
        lead = time.monotonic() - started
        note = ""
        try:
            applied, current = wait_state(self.cluster, tool, self.prefix, self.repo.n, self.repo.revs)
        except TimeoutError as exc:  # recorded, the time a lower bound; the next scenarios go on
            applied = current = ENV_TIMEOUT_S
            note = str(exc)
        usage = tool.usage_since(mark)
        server = self.cluster.server_requests() - before_server - (self.cluster.own_requests - before_own) - 1
        self.out[names[0]] = Outcome(round(lead + applied, 2), usage, server, note)
        self.out[names[1]] = Outcome(round(lead + current, 2), usage, server, note)
        print(f"  {tool.name}: {names[0]} {lead + applied:.1f}s, {names[1]} {lead + current:.1f}s, {usage}", flush=True)

    def scenarios(self, tool: Tool, notify: Callable[[str], None]) -> None:
        def change(which: range | list[int]) -> Callable[[], None]:
            return lambda: notify(self.repo.change(which))

        self.measure(tool, ("all-applied", "all-current"), change(range(self.repo.n)))
        self.measure(tool, ("one-applied", "one-current"), change([self.repo.n // 2]))
        time.sleep(2)  # the last rollout's stragglers settle before the quiet interval
        before_server, before_own = self.cluster.server_requests(), self.cluster.own_requests
        mark = tool.usage_mark()
        time.sleep(self.interval_s)
        server = self.cluster.server_requests() - before_server - (self.cluster.own_requests - before_own) - 1
        self.out["no-change"] = Outcome(self.interval_s, tool.usage_since(mark), server)
        print(f"  {tool.name}: no-change {self.out['no-change'].usage}", flush=True)
        self.live_edit(tool)

    def live_edit(self, tool: Tool) -> None:
        ns = f"{self.prefix}000"
        before_server, before_own = self.cluster.server_requests(), self.cluster.own_requests
        mark = tool.usage_mark()
        body = {"data": {"rev": "edited-by-hand"}}
        self.cluster.core.patch_namespaced_config_map("web-config", ns, body, field_manager="kubectl-edit")
        start = time.monotonic()
        want = str(self.repo.revs[0])
        while (self.cluster.core.read_namespaced_config_map("web-config", ns).data or {}).get("rev") != want:
            self.cluster.own_requests += 1
            if time.monotonic() - start > 3 * self.interval_s + 60:
                raise TimeoutError(f"{tool.name}: the live edit in {ns} was not corrected")
            tool.check_alive()
            time.sleep(0.1)
        seconds = time.monotonic() - start
        server = self.cluster.server_requests() - before_server - (self.cluster.own_requests - before_own) - 1
        self.out["live-edit"] = Outcome(round(seconds, 2), tool.usage_since(mark), server)
        print(f"  {tool.name}: live-edit corrected in {seconds:.1f}s", flush=True)


def flux_objects(n: int, ns: str, url: str, token: str, interval_s: float, wait: bool) -> list[dict[str, Any]]:
    every = f"{int(interval_s)}s"
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "git", "namespace": ns},
              "stringData": {"username": "x-access-token", "password": token}}  # fmt: skip
    source = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "config", "namespace": ns},
        "spec": {"interval": every, "url": url, "ref": {"branch": "main"}, "secretRef": {"name": "git"}},
    }
    kustomizations = [
        {
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": f"e{i:03d}", "namespace": ns},
            "spec": {
                "interval": every,
                "path": f"./envs/e{i:03d}",
                "prune": True,
                "wait": wait,
                "timeout": "5m",
                "targetNamespace": f"ff-n{n}-{i:03d}",
                "sourceRef": {"kind": "GitRepository", "name": "config"},
            },
        }
        for i in range(n)
    ]
    return [secret, source, *kustomizations]


def run_flux(
    cluster: Cluster, bins: dict[str, str], n: int, url: str, token: str, work: Path, args: argparse.Namespace
) -> dict[str, Outcome]:
    ns, prefix = f"flux-n{n}", f"ff-n{n}-"
    repo = Repo(work / "repo", work.parent / "git" / "config.git", n)
    repo.commit("first")
    cluster.delete_namespaces(prefix)  # a run cut short may have left them
    cluster.namespaces([ns] + [f"{prefix}{i:03d}" for i in range(n)])
    flux = Flux(bins, cluster.kubeconfig, work)
    driver = Driver(cluster, repo, "flux", prefix, args.interval)

    def request(commit: str) -> None:
        now = datetime.now(UTC).isoformat()
        patch = {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": now}}}
        cluster.custom.patch_namespaced_custom_object(
            "source.toolkit.fluxcd.io", "v1", ns, "gitrepositories", "config", patch
        )

    try:
        objects = flux_objects(n, ns, f"{url}/config.git", token, args.interval, not args.flux_no_wait)
        driver.measure(flux, ("first-applied", "first-current"), lambda: cluster.apply(objects))
        driver.scenarios(flux, request)
        # cleanup while the controllers run: their finalizers prune what they applied
        cluster.k("delete", "kustomizations.kustomize.toolkit.fluxcd.io", "--all", "-n", ns, "--timeout=600s")
        cluster.k("delete", "gitrepositories.source.toolkit.fluxcd.io", "--all", "-n", ns, "--timeout=120s")
    finally:
        flux.stop()
    cluster.delete_namespaces(prefix)
    return driver.out


def run_agent(
    cluster: Cluster, n: int, url: str, token: str, work: Path, args: argparse.Namespace, kustomize: str
) -> dict[str, Outcome]:
    prefix, state = f"fa-n{n}-", f"fa-state-n{n}"
    repo = Repo(work / "repo", work.parent / "git" / "config.git", n)
    repo.commit("first")
    cluster.delete_namespaces(prefix)  # a run cut short may have left them
    cluster.delete_namespaces(state)
    cluster.namespaces([state] + [f"{prefix}{i:03d}" for i in range(n)])
    secret = secrets.token_hex(16)
    (work / "token").write_text(token)
    (work / "webhook-secret").write_text(secret)
    every = f"{int(args.interval)}s"
    environments = [
        {"name": f"e{i:03d}", "path": f"envs/e{i:03d}", "namespace": f"{prefix}{i:03d}", "policy": "enforce",
         "interval": every, "create_namespace": False}
        for i in range(n)
    ]  # fmt: skip
    config = {
        "repo": {"url": f"{url}/config.git", "branch": "main", "poll_interval": every,
                 "token_file": str(work / "token"), "cache_dir": str(work / "cache")},
        "agent": {"namespace": state},
        "server": {"webhook_secret_file": str(work / "webhook-secret")},
        "environments": environments,
    }  # fmt: skip
    path = work / "gitops-agent.yaml"
    path.write_text(yaml.safe_dump(config))
    driver = Driver(cluster, repo, "agent", prefix, args.interval)
    agent: Agent | None = None

    def start() -> None:
        nonlocal agent
        agent = Agent(path, cluster.kubeconfig, work, secret, {"GITOPS_AGENT_KUSTOMIZE": kustomize})
        driver_tool.processes = agent.processes

    driver_tool = _Pending()
    try:
        driver.measure(driver_tool, ("first-applied", "first-current"), start, fresh=True)
        assert agent is not None
        # the first scenario's usage, read now that the agent's metrics serve
        first = driver.out["first-current"]
        usage = Usage(first.usage.cpu_s, first.usage.peak_rss_mb, agent.requests())
        for key in ("first-applied", "first-current"):
            driver.out[key] = Outcome(driver.out[key].seconds, usage, driver.out[key].cluster_requests)
        driver.scenarios(agent, agent.push)
    finally:
        if agent is not None:
            agent.stop()
    cluster.delete_namespaces(prefix)
    cluster.delete_namespaces(state)
    return driver.out


class _Pending(Tool):
    """The agent before its process exists: its usage is read once it serves."""

    name = "agent"

    def requests(self) -> int:
        return 0


# --- the run ----------------------------------------------------------------------------------


def build_flux() -> dict[str, str]:
    out = subprocess.run(
        ["bash", str(ROOT / "tests/controlplane/build-flux.sh")], check=True, capture_output=True, text=True
    ).stdout.split()
    return {"source-controller": out[0], "kustomize-controller": out[1]}


def install_crds(cluster: Cluster) -> None:
    """The CRDs of the very module versions built (config/crd/bases in each module's zip)."""
    for name, module in (
        ("source", "github.com/fluxcd/source-controller"),
        ("kustomize", "github.com/fluxcd/kustomize-controller"),
    ):
        wrapper = ROOT / "tests/controlplane" / f"flux-{name}-controller"
        info = json.loads(
            subprocess.run(
                ["go", "mod", "download", "-json", module], cwd=wrapper, check=True, capture_output=True, text=True
            ).stdout
        )
        for crd in sorted(Path(info["Dir"], "config/crd/bases").glob("*.yaml")):
            cluster.k("apply", "--server-side", "--force-conflicts", "--field-manager=bench", "-f", str(crd))
    cluster.k("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")


def record(scenario: str, n: int, agent: Outcome, flux: Outcome) -> Record:
    return Record(
        scenario, n, agent.seconds, flux.seconds, round(agent.seconds / flux.seconds, 2) if flux.seconds else 0.0,
        agent.usage.requests, flux.usage.requests, agent.usage.peak_rss_mb, flux.usage.peak_rss_mb,
        agent.usage.cpu_s, flux.usage.cpu_s, agent.cluster_requests, flux.cluster_requests,
    )  # fmt: skip


SCENARIOS = ("first-applied", "first-current", "all-applied", "all-current", "one-applied", "one-current",
             "no-change", "live-edit")  # fmt: skip


def print_table(records: list[Record]) -> None:
    print(
        f"{'scenario':<14} {'n':>4} {'agent s':>8} {'flux s':>8} {'ratio':>6} {'agent req':>9} {'flux req':>9} "
        f"{'agent MB':>8} {'flux MB':>8} {'agent cpu':>9} {'flux cpu':>9}"
    )
    for r in records:
        print(
            f"{r.scenario:<14} {r.n:>4} {r.agent_s:>8.2f} {r.flux_s:>8.2f} {r.ratio:>6.2f} {r.agent_requests:>9} "
            f"{r.flux_requests:>9} {r.agent_rss_mb:>8.1f} {r.flux_rss_mb:>8.1f} {r.agent_cpu_s:>9.2f} "
            f"{r.flux_cpu_s:>9.2f}" + (f"  ({r.note})" if r.note else "")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.flux")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--n", default="10,100,500", help="comma-separated environment counts")
    parser.add_argument("--interval", type=float, default=60.0, help="both tools' poll interval, seconds")
    parser.add_argument(
        "--only", choices=("agent", "flux"), help="run one tool; its figures go to .bench/flux-TOOL.json for --combine"
    )
    parser.add_argument("--combine", action="store_true", help="records from the two --only runs' figures")
    parser.add_argument("--flux-no-wait", action="store_true", help="Kustomizations without wait: true")
    parser.add_argument("--out", default=str(ROOT / ".bench" / "flux.json"))
    parser.add_argument("--workdir", default=str(ROOT / ".bench" / "flux-work"), help="emptied first")
    args = parser.parse_args(argv)
    if args.combine:
        return combine(Path(args.out))
    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    (workdir / "git").mkdir(parents=True)
    bins = build_flux() if args.only != "agent" else {}
    kubectl = str(Path(subprocess.run(["bash", str(ROOT / "tests/controlplane/build.sh")], check=True,
                                      capture_output=True, text=True).stdout.strip()) / "kubectl")  # fmt: skip
    cluster = Cluster(args.kubeconfig, kubectl)
    if args.only != "agent":
        install_crds(cluster)
    token = secrets.token_hex(16)
    records: list[Record] = []
    with serve_git(workdir / "git", token) as server:
        server.bare("config.git")
        for n in (int(x) for x in args.n.split(",")):
            print(f"N={n}", flush=True)
            got: dict[str, dict[str, Outcome]] = {}
            if args.only != "agent":
                got["flux"] = run_flux(cluster, bins, n, server.url, token, _fresh(workdir / f"flux-n{n}"), args)
            if args.only != "flux":
                got["agent"] = run_agent(cluster, n, server.url, token, _fresh(workdir / f"agent-n{n}"), args, kubectl)
            if len(got) == 2:
                records += [record(s, n, got["agent"][s], got["flux"][s]) for s in SCENARIOS]
                print_table(records[-len(SCENARIOS) :])
            else:
                tool, outcomes = next(iter(got.items()))
                saved = Path(args.out).with_name(f"flux-{tool}.json")
                kept = json.loads(saved.read_text()) if saved.exists() else {}
                kept[str(n)] = {s: asdict(o) for s, o in outcomes.items()}
                saved.parent.mkdir(parents=True, exist_ok=True)
                saved.write_text(json.dumps(kept, indent=2))
            print(flush=True)
    if records:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps([asdict(r) for r in records], indent=2))
        print_table(records)
        print(f"\nwritten to {args.out}")
    return 0


def combine(out: Path) -> int:
    """Records of every N both ``--only`` runs measured (the tools one after the other, as in one run)."""
    got = {tool: json.loads(out.with_name(f"flux-{tool}.json").read_text()) for tool in ("agent", "flux")}

    def outcome(d: dict[str, Any]) -> Outcome:
        return Outcome(d["seconds"], Usage(**d["usage"]), d["cluster_requests"], d.get("note", ""))

    records = [
        replace(
            record(s, int(n), outcome(got["agent"][n][s]), outcome(got["flux"][n][s])),
            note="; ".join(x for x in (got["agent"][n][s].get("note"), got["flux"][n][s].get("note")) if x),
        )
        for n in sorted(set(got["agent"]) & set(got["flux"]), key=int)
        for s in SCENARIOS
        if s in got["agent"][n] and s in got["flux"][n]  # a run cut short measured fewer
    ]
    out.write_text(json.dumps([asdict(r) for r in records], indent=2))
    print_table(records)
    print(f"\nwritten to {out}")
    return 0


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


if __name__ == "__main__":
    sys.exit(main())
