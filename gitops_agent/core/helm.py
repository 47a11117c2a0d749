"""Helm charts, the pure half: what an environment's ``helm:`` asks for, how a chart is detected,
the ``helm template`` argv, a repository index's entry and digest, and the provenance a render
carries to the ledger (chart name, version, digest, where it came from).

The imperative half (finding helm, pulling charts into the cache, running helm in the render box)
is :mod:`gitops_agent.adapters.helm`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from gitops_agent.errors import RenderError

#: an environment whose directory holds this file is a chart, as Argo CD detects it
CHART_FILE = "Chart.yaml"
#: a chart's own defaults, applied before the values files an environment names
DEFAULT_VALUES_FILE = "values.yaml"
CHART_SCHEMES = ("https://", "http://", "oci://")
#: an exact version (SemVer, an optional leading v): a range would let the repository choose
_EXACT_VERSION = re.compile(r"^v?\d+(\.\d+){0,2}(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
_RELEASE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$")


@dataclass(frozen=True)
class ChartSource:
    """A chart from a Helm repository (``https://…``) or an OCI registry (``oci://…``), pinned."""

    repo: str
    name: str
    version: str

    @property
    def oci(self) -> bool:
        return self.repo.startswith("oci://")

    @property
    def reference(self) -> str:
        """What ``helm pull`` is given for an OCI chart, and what provenance calls the source."""
        return f"{self.repo.rstrip('/')}/{self.name}" if self.oci else self.repo

    @property
    def label(self) -> str:
        return f"chart {self.name} {self.version} from {self.repo}"


@dataclass(frozen=True)
class HelmSpec:
    """An environment's ``helm:``: the release, the chart (None: the environment's directory is
    the chart), values files (relative to the environment's directory) and inline values (YAML)."""

    release: str | None = None
    chart: ChartSource | None = None
    values: tuple[str, ...] = ()
    values_inline: str = ""


@dataclass(frozen=True)
class Capabilities:
    """What ``.Capabilities`` says of the target cluster: its version and the API versions it serves."""

    kube_version: str
    api_versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChartRef:
    """Provenance of one rendered chart: kept in the ledger, shown by ``history`` and ``status``."""

    name: str
    version: str
    digest: str  # sha256:<hex> of the .tgz (of the chart's files, for a chart in the repository)
    source: str  # the repository URL, oci:// reference, or repository path

    @property
    def short(self) -> str:
        return f"{self.name} {self.version}"


# --- config checks ----------------------------------------------------------------------------


def version_problem(version: str) -> str | None:
    """Why ``version`` is not a pinned chart version, or None."""
    if not _EXACT_VERSION.match(version):
        return f"expected an exact chart version such as 1.2.3 (no ranges), got {version!r}"
    return None


def repo_problem(repo: str) -> str | None:
    if not repo.startswith(CHART_SCHEMES) or not repo.split("://", 1)[1].split("/", 1)[0]:
        return f"expected a Helm repository URL (https://…, http://…) or an OCI registry (oci://…), got {repo!r}"
    return None


def release_problem(release: str) -> str | None:
    if not _RELEASE_NAME.match(release):
        return f"expected a release name of lowercase letters, digits and '-' (at most 53), got {release!r}"
    return None


def values_path_problem(path: str) -> str | None:
    """A values file is read from the environment's own directory: no absolute path, no ``..``."""
    normal = posixpath.normpath(path)
    if posixpath.isabs(path) or normal == ".." or normal.startswith("../"):
        return f"expected a file inside the environment's directory, got {path!r}"
    return None


def allowed_prefix(source: ChartSource) -> str:
    """The render prefix a configured chart source allows: the config that names it trusts it."""
    base = source.reference if source.oci else source.repo
    return base if base.endswith("/") else f"{base}/"


# --- the template command ---------------------------------------------------------------------


def template_argv(
    helm: str,
    *,
    release: str,
    chart: str,
    namespace: str,
    values_files: Sequence[str],
    capabilities: Capabilities | None,
) -> list[str]:
    """``helm template``: CRDs included, test hooks left out, the target cluster's capabilities."""
    argv = [helm, "template", release, chart, "--namespace", namespace, "--include-crds", "--skip-tests"]
    for path in values_files:
        argv += ["--values", path]
    return argv + capability_flags(capabilities, "--kube-version", "--api-versions")


def capability_flags(capabilities: Capabilities | None, kube_flag: str, api_flag: str) -> list[str]:
    """The flags that set ``.Capabilities`` (none without a cluster: helm's defaults then)."""
    if capabilities is None:
        return []
    flags = [kube_flag, capabilities.kube_version]
    for version in capabilities.api_versions:
        flags += [api_flag, version]
    return flags


def api_versions(served: Iterable[tuple[str, str, str]]) -> tuple[str, ...]:
    """``group/version`` and ``group/version/Kind`` of every (group, version, kind) a cluster
    serves, as ``helm template --api-versions`` takes them (the core group is just ``v1``)."""
    out: set[str] = set()
    for group, version, kind in served:
        gv = f"{group}/{version}" if group else version
        out.update((gv, f"{gv}/{kind}"))
    return tuple(sorted(out))


def kube_version(git_version: str) -> str:
    """``v1.36.3`` (or ``v1.36.3-gke.1``) as helm's ``--kube-version`` takes it: major.minor.patch."""
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", git_version)
    if match is None:
        raise RenderError(f"the cluster reports version {git_version!r}, which is not a Kubernetes version")
    major, minor, patch = match.groups()
    return f"v{major}.{minor}.{patch or 0}"


# --- repository index -------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexEntry:
    url: str  # absolute
    digest: str  # the index's sha256 hex, "" when it has none


def index_entry(index: Any, source: ChartSource, index_url: str) -> IndexEntry:
    """The entry of ``source.name`` at ``source.version`` in a parsed ``index.yaml``."""
    entries = index.get("entries") if isinstance(index, dict) else None
    if not isinstance(entries, dict):
        raise RenderError(f"{source.label}: {index_url} is not a Helm repository index (no entries)")
    versions = entries.get(source.name)
    if not isinstance(versions, list) or not versions:
        raise RenderError(f"{source.label}: the repository has no chart named {source.name!r}")
    for item in versions:
        if isinstance(item, dict) and _same_version(str(item.get("version", "")), source.version):
            urls = item.get("urls")
            if not isinstance(urls, list) or not urls or not isinstance(urls[0], str):
                raise RenderError(f"{source.label}: the repository index lists no URL for it")
            digest = str(item.get("digest") or "").lower().removeprefix("sha256:")
            return IndexEntry(urljoin(index_url, urls[0]), digest)
    known = ", ".join(str(i.get("version")) for i in versions[:10] if isinstance(i, dict))
    raise RenderError(f"{source.label}: the repository has no version {source.version} of {source.name} (has: {known})")


def _same_version(a: str, b: str) -> bool:
    return a.removeprefix("v") == b.removeprefix("v")


def index_url(repo: str) -> str:
    return urljoin(repo if repo.endswith("/") else f"{repo}/", "index.yaml")


def check_digest(source: ChartSource, expected: str, actual: str) -> None:
    """The archive's sha256 must be the index's, when the index gives one."""
    if expected and expected != actual:
        raise RenderError(
            f"{source.label}: the archive's sha256 is {actual}, the repository index says {expected}; "
            "refused (a changed or corrupted chart)"
        )


# --- charts in a kustomization ----------------------------------------------------------------


@dataclass(frozen=True)
class KustomizeChart:
    """A ``helmCharts`` entry of a kustomization: pulled by the agent, placed where kustomize looks."""

    source: ChartSource
    chart_home: str  # relative to the kustomization's directory


def kustomize_charts(kfile: str, data: Any) -> Iterator[KustomizeChart]:
    """The remote ``helmCharts`` entries of a parsed kustomization; a missing version is an error."""
    charts = data.get("helmCharts") if isinstance(data, dict) else None
    home = data.get("helmGlobals", {}).get("chartHome") if isinstance(data.get("helmGlobals"), dict) else None
    for item in charts if isinstance(charts, list) else []:
        if not isinstance(item, dict) or not item.get("repo"):
            continue
        name, repo, version = str(item.get("name") or ""), str(item["repo"]), str(item.get("version") or "")
        if not name:
            raise RenderError(f"{kfile}: helmCharts entry from {repo} has no name")
        if not version:
            raise RenderError(f"{kfile}: helmCharts entry {name} from {repo} has no version; pin one (e.g. 1.2.3)")
        if problem := version_problem(version):
            raise RenderError(f"{kfile}: helmCharts entry {name}: {problem}")
        yield KustomizeChart(ChartSource(repo, name, version), str(home or "charts"))


def uses_helm(data: Any) -> bool:
    return isinstance(data, dict) and bool(data.get("helmCharts"))


# --- provenance -------------------------------------------------------------------------------


def chart_meta(data: Any, shown: str) -> tuple[str, str]:
    """(name, version) of a parsed ``Chart.yaml``."""
    if not isinstance(data, dict) or not data.get("name") or not data.get("version"):
        raise RenderError(f"{shown}: not a chart's Chart.yaml (name and version are required)")
    return str(data["name"]), str(data["version"])


def describe(charts: Sequence[ChartRef]) -> str:
    """``web 1.2.3, redis 18.0.1``: what a status line says of a snapshot's charts."""
    return ", ".join(c.short for c in charts)


def chart_refs(items: Any) -> tuple[ChartRef, ...]:
    """ChartRefs from the ledger's JSON (entries an older agent wrote have none)."""
    out = []
    for item in items if isinstance(items, list | tuple) else ():
        if isinstance(item, ChartRef):
            out.append(item)
        elif isinstance(item, dict):
            out.append(ChartRef(*(str(item.get(k, "")) for k in ("name", "version", "digest", "source"))))
    return tuple(out)
