"""Rendering an environment that is a Helm chart, and readying a kustomization's ``helmCharts``.

A chart environment is ``helm template`` on a local chart: the environment's own directory (it
holds ``Chart.yaml``) or an archive pulled into the chart cache (``helm.chart`` in the config),
with the values files the environment names, read from its directory, and its inline values. A
kustomization's remote ``helmCharts`` are pulled into the cache too and unpacked where kustomize
looks for them (``<chartHome>/<name>-<version>/<name>``), so kustomize's helm never fetches
anything and every chart is verified and recorded the same way.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from gitops_agent.adapters.helm import ChartCache, Helm, sha256_tree, untar_chart
from gitops_agent.core.helm import (
    CHART_FILE,
    DEFAULT_VALUES_FILE,
    Capabilities,
    ChartRef,
    HelmSpec,
    capability_flags,
    chart_meta,
    kustomize_charts,
    template_argv,
)
from gitops_agent.core.render import KUSTOMIZATION_NAMES, ParseLimits, load_documents, parse_stream_file
from gitops_agent.core.render_box import RenderLimits
from gitops_agent.errors import RenderError
from gitops_agent.model import DesiredObject


@dataclass(frozen=True)
class HelmContext:
    """What rendering a chart needs beyond the files: helm, the cache, the environment's
    ``helm:``, its release and namespace, and the target cluster's capabilities (read only when a
    chart renders; None: helm's defaults, for ``validate`` without a cluster)."""

    helm: Helm
    cache: ChartCache
    release: str
    namespace: str
    spec: HelmSpec | None = None
    capabilities: Callable[[], Capabilities | None] = field(default=lambda: None, compare=False)


def is_chart(env_dir: Path, context: HelmContext | None) -> bool:
    """A chart from the config, or a directory holding ``Chart.yaml`` (as Argo CD detects one)."""
    configured = context is not None and context.spec is not None and context.spec.chart is not None
    return configured or (env_dir / CHART_FILE).is_file()


def render_chart(
    root: Path, env_dir: Path, env_path: str, context: HelmContext, box: RenderLimits, limits: ParseLimits
) -> tuple[list[DesiredObject], tuple[ChartRef, ...]]:
    """The environment's chart, templated in the box, and its provenance."""
    spec = context.spec or HelmSpec()
    if spec.chart is not None:
        pulled = context.cache.pull(spec.chart, box)
        chart, ref = pulled.archive, ChartRef(spec.chart.name, spec.chart.version, pulled.digest, spec.chart.reference)
        label = f"chart {ref.short}"
    else:
        name, version = _chart_yaml(root, env_dir)
        chart, ref = env_dir, ChartRef(name, version, sha256_tree(env_dir), env_path)
        label = f"chart {ref.short} ({env_path})"
        _check_values(env_dir / DEFAULT_VALUES_FILE, f"{env_path}/{DEFAULT_VALUES_FILE}", label, required=False)
    with tempfile.TemporaryDirectory(prefix="gitops-agent-values-") as tmp:
        files = list(_values_files(env_dir, env_path, spec, label))
        if spec.values_inline:
            inline = Path(tmp) / "values-inline.yaml"
            inline.write_text(spec.values_inline)
            files.append(inline)
        argv = template_argv(
            context.helm.locate(),
            release=spec.release or context.release,
            chart=str(chart),
            namespace=context.namespace,
            values_files=[str(f) for f in files],
            capabilities=context.capabilities(),
        )
        with tempfile.TemporaryFile(prefix="gitops-agent-render-") as out:
            context.helm.run(argv, out, cwd=root, limits=box, label=_shown(label, spec), network=False)
            out.seek(0)
            objects = parse_stream_file(out, f"{env_path} ({label} output)", limits=limits)
    return [replace(o, source=env_path) for o in objects], (ref,)


def _shown(label: str, spec: HelmSpec) -> str:
    """The chart and its values files, as every error of its render names them."""
    return f"{label}, values {', '.join(spec.values)}" if spec.values else label


def _chart_yaml(root: Path, env_dir: Path) -> tuple[str, str]:
    path = env_dir / CHART_FILE
    shown = path.relative_to(root).as_posix()
    documents = load_documents(path.read_bytes(), shown)
    return chart_meta(documents[0] if documents else None, shown)


def _values_files(env_dir: Path, env_path: str, spec: HelmSpec, label: str) -> Iterator[Path]:
    for name in spec.values:
        path = env_dir / name
        _check_values(path, f"{env_path}/{name}", label, required=True)
        yield path


def _check_values(path: Path, shown: str, label: str, *, required: bool) -> None:
    """A values file must exist (when named) and be one YAML mapping: said here, naming the chart
    and the file, rather than by helm about a scratch path."""
    if not path.is_file():
        if required:
            raise RenderError(f"{label}: values file {shown} does not exist in the repository at this commit")
        return
    try:
        documents = load_documents(path.read_bytes(), shown)
    except RenderError as exc:
        raise RenderError(f"{label}: values file {exc}") from None
    if documents and not isinstance(documents[0], dict):
        raise RenderError(f"{label}: values file {shown}: expected a mapping of values")


# --- kustomize helmCharts ---------------------------------------------------------------------


def ready_kustomize_charts(
    root: Path, directories: Iterable[Path], context: HelmContext, box: RenderLimits
) -> tuple[list[str], tuple[ChartRef, ...]]:
    """Pull every remote ``helmCharts`` entry of the kustomizations in ``directories`` and unpack
    it where kustomize looks; the flags that enable helm (with our binary and the cluster's
    capabilities) and the charts' provenance. No ``helmCharts``: no flags, helm stays off."""
    refs: list[ChartRef] = []
    found_any = False
    for directory in sorted(directories):
        kfile = next((directory / n for n in sorted(KUSTOMIZATION_NAMES) if (directory / n).is_file()), None)
        if kfile is None:
            continue
        shown = kfile.relative_to(root).as_posix()
        documents = load_documents(kfile.read_bytes(), shown)
        data = documents[0] if documents else None
        if not (isinstance(data, dict) and data.get("helmCharts")):
            continue
        found_any = True
        for chart in kustomize_charts(shown, data):
            pulled = context.cache.pull(chart.source, box)
            home = directory / chart.chart_home / f"{chart.source.name}-{chart.source.version}"
            if not home.resolve().is_relative_to(root.resolve()):
                raise RenderError(f"{shown}: helmGlobals.chartHome points outside the repository")
            untar_chart(pulled.archive, home)
            source = chart.source
            refs.append(ChartRef(source.name, source.version, pulled.digest, source.reference))
    if not found_any:
        return [], ()
    flags = ["--enable-helm", f"--helm-command={context.helm.locate()}"]
    flags += capability_flags(context.capabilities(), "--helm-kube-version", "--helm-api-versions")
    return flags, tuple(refs)
