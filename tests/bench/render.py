"""``make bench``'s render scenario: the largest render the box allows (just under the output cap),
rendered the way a pass renders it, with the peak RSS of the agent's process and of kustomize.

The render runs in a process of its own (``python -m tests.bench.render PROBE-ARGS``) so its
figures are its own: ``RUSAGE_SELF`` is the agent's process (export, scan, streamed parse, the
objects), ``RUSAGE_CHILDREN`` is the largest child, i.e. kustomize. ``kubectl kustomize`` on the
same directory is kubectl's figure (it is the same kustomize, printing instead of parsing).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.bench.procfs import status_kib

#: how close under the cap the render is made: a few objects' worth
MARGIN_BYTES = 64 * 1024


@dataclass(frozen=True)
class RenderRecord:
    scenario: str
    output_bytes: int
    cap_bytes: int
    objects: int
    agent_s: float
    agent_peak_rss_mb: float  # while it renders
    agent_process_peak_rss_mb: float  # the whole process: imports and the git fetch too
    agent_rss_before_render_mb: float  # the process with everything imported and fetched, before it renders
    kustomize_peak_rss_mb: float
    kubectl_kustomize_s: float
    kubectl_kustomize_peak_rss_mb: float


def build_repo(repo: Path, objects: list[dict[str, Any]], kubectl: str, cap: int) -> int:
    """A config repo whose ``env`` overlay renders to just under ``cap`` bytes: a base of realistic
    objects, then one ConfigMap padded to fill the rest. Returns the rendered size."""
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        git("init", "-q", "-b", "main")
    base = repo / "base"
    base.mkdir(parents=True, exist_ok=True)
    (base / "objects.yaml").write_text(yaml.safe_dump_all(objects))
    (base / "kustomization.yaml").write_text(yaml.safe_dump({"resources": ["objects.yaml", "padding.yaml"]}))
    (repo / "env").mkdir(exist_ok=True)
    overlay = {"resources": ["../base"], "labels": [{"pairs": {"env": "bench"}}]}
    (repo / "env/kustomization.yaml").write_text(yaml.safe_dump(overlay))
    size = 0
    for pad in (0, None):
        room = 0 if pad == 0 else max(0, cap - MARGIN_BYTES - size)
        (base / "padding.yaml").write_text(yaml.safe_dump_all(_padding(room), width=1 << 30))
        size = len(subprocess.run([kubectl, "kustomize", str(repo / "env")], check=True, capture_output=True).stdout)
    git("add", "-A")
    git("-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qm", "largest render", "--allow-empty")
    return size


def _padding(room: int) -> list[dict[str, Any]]:
    """ConfigMaps of about 100 KiB (a bundled dashboard, a CA bundle) adding up to ``room`` bytes."""
    chunk = 100 * 1024
    sizes = [chunk] * (room // chunk) + ([room % chunk] if room % chunk else [])
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"padding-{i}"},
            "data": {"p": "x" * max(0, n - 120)},
        }
        for i, n in enumerate(sizes or [0])
    ]


def bench_render(workdir: Path, kubectl: str, objects: list[dict[str, Any]], timed: Any) -> RenderRecord:
    """Render the largest allowed environment in a probe process, and ``kubectl kustomize`` it."""
    from gitops_agent.core.render_box import DEFAULT_MAX_OUTPUT_BYTES

    repo = workdir / "render" / "repo"
    size = build_repo(repo, objects, kubectl, DEFAULT_MAX_OUTPUT_BYTES)
    env = {"GITOPS_AGENT_KUSTOMIZE": kubectl, "PATH": "/usr/bin:/bin"}
    probe = subprocess.run(
        [sys.executable, "-m", "tests.bench.render", str(repo), str(workdir / "render" / "cache")],
        check=True, capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    figures = json.loads(probe.stdout)
    k_seconds, k_rss, _ = timed([kubectl, "kustomize", str(repo / "env")])
    return RenderRecord(
        "render-max",
        size,
        DEFAULT_MAX_OUTPUT_BYTES,
        figures["objects"],
        round(figures["seconds"], 3),
        round(figures["self_kib"] / 1024, 1),
        round(figures["process_kib"] / 1024, 1),
        round(figures["self_before_kib"] / 1024, 1),
        round(figures["children_kib"] / 1024, 1),
        round(k_seconds, 3),
        round(k_rss / 1024, 1),
    )


def print_render(r: RenderRecord) -> None:
    print(
        f"{r.scenario}: {r.output_bytes / 2**20:.2f} MiB rendered (cap {r.cap_bytes / 2**20:g} MiB), {r.objects} "
        f"objects in {r.agent_s:.2f}s; peak RSS: agent {r.agent_peak_rss_mb:.1f} MB "
        f"({r.agent_rss_before_render_mb:.1f} before rendering, {r.agent_process_peak_rss_mb:.1f} for the whole "
        f"process), its kustomize "
        f"{r.kustomize_peak_rss_mb:.1f} MB; kubectl kustomize {r.kubectl_kustomize_peak_rss_mb:.1f} MB "
        f"in {r.kubectl_kustomize_s:.2f}s",
        flush=True,
    )


def probe(repo: str, cache: str) -> dict[str, float]:
    """One render as a pass does it (fetch, export the environment, scan, kustomize, parse, validate)."""
    from gitops_agent.adapters.git_source import GitSource
    from gitops_agent.adapters.renderer import Kustomize
    from gitops_agent.config import parse_config
    from gitops_agent.snapshots import Snapshots

    config = parse_config(
        yaml.safe_dump(
            {
                "repo": {"url": repo, "cache_dir": cache},
                "environments": [{"name": "bench", "path": "env", "namespace": "bench"}],
            }
        ),
        source="bench",
    )
    source = GitSource(repo, Path(cache))
    source.fetch()
    snapshots = Snapshots(config, source, Kustomize())
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM: the peak from here on is the render's
    start = time.perf_counter()
    objects = snapshots.render(config.environments[0], source.resolve("main"))
    seconds = time.perf_counter() - start
    return {
        "objects": len(objects),
        "seconds": seconds,
        "self_kib": _status_kib("VmHWM"),
        "process_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "self_before_kib": before,
        "children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    }


def _status_kib(field: str) -> int:
    """A figure of this process, in KiB (VmRSS: now; VmHWM: peak since the last reset)."""
    kib = status_kib("self", field)
    return kib if kib is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1], sys.argv[2])))
