"""Helm, the imperative half: finding the binary, pulling charts into the agent's cache (verified by
digest), and running ``helm template`` in the render box.

Charts from a Helm repository are fetched by the agent itself (the index, then the archive it
names), so the archive's sha256 is checked against the index before helm ever reads it; an OCI
chart is pulled by ``helm pull`` in the box, with the network allowed for that pull only. Either
way the archive lands in the cache at ``<repo>/<name>/<version>/`` with its digest beside it and
is never fetched again; a cached archive whose bytes no longer match its digest is fetched anew.
``helm template`` then runs on the local archive with no network at all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import yaml

from gitops_agent.adapters import renderbox
from gitops_agent.core.helm import (
    ChartSource,
    IndexEntry,
    check_digest,
    index_entry,
    index_url,
)
from gitops_agent.core.render_box import RenderLimits
from gitops_agent.errors import RenderError

HELM_ENV_VAR = "GITOPS_AGENT_HELM"
#: a repository index (large public ones run to tens of MiB) and one chart archive, at most
MAX_INDEX_BYTES = 128 * 1024 * 1024
MAX_CHART_BYTES = 64 * 1024 * 1024
_CHUNK = 64 * 1024
_SHA_FILE = "sha256"
_ARCHIVE = "chart.tgz"


@dataclass(frozen=True)
class Helm:
    """The helm binary: ``binary`` (a path or command name), else ``$GITOPS_AGENT_HELM``, else
    ``helm`` on ``PATH``; looked up when a chart renders, so other environments never need it."""

    binary: str | None = None

    def locate(self) -> str:
        configured = self.binary or os.environ.get(HELM_ENV_VAR)
        found = shutil.which(configured or "helm")
        if found:
            return str(Path(found).absolute())
        if configured:
            raise RenderError(
                f"helm not found at {configured!r} (from agent.helm in the config or ${HELM_ENV_VAR}): install "
                "helm v3 or fix the path"
            )
        raise RenderError(f"helm not found: install helm v3, or set agent.helm in the config or ${HELM_ENV_VAR}")

    def run(
        self, argv: list[str], out: BinaryIO, *, cwd: Path, limits: RenderLimits, label: str, network: bool
    ) -> None:
        """Run helm in the box (a scratch HOME, its own HELM_* homes, no network unless ``network``)."""
        with tempfile.TemporaryDirectory(prefix="gitops-agent-helm-") as scratch:
            env = {**renderbox.environment(Path(scratch), network=network), **helm_homes(Path(scratch))}
            finished = renderbox.run(argv, cwd=cwd, env=env, out=out, limits=limits, label=label)
        if finished.returncode != 0:
            detail = trim(finished.text, cwd) or f"exit status {finished.returncode}"
            raise RenderError(f"{label}: helm {argv[1]} failed: {detail}")


def helm_homes(scratch: Path) -> dict[str, str]:
    """helm's cache, config and data homes: inside the scratch directory, never the agent's."""
    homes = {"HELM_CACHE_HOME": "cache/helm", "HELM_CONFIG_HOME": "config/helm", "HELM_DATA_HOME": "data/helm"}
    return {key: str(scratch / sub) for key, sub in homes.items()}


def trim(stderr: bytes, root: Path, lines: int = 15) -> str:
    """helm's complaint, with scratch paths cut and long output cut."""
    text = stderr.decode("utf-8", "replace").strip().replace(f"{root}/", "").replace(str(root), ".")
    kept = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    if len(kept) > lines:
        kept = [*kept[:lines], f"(and {len(kept) - lines} more lines)"]
    return "\n".join(kept).removeprefix("Error: ")[:4000]


@dataclass(frozen=True)
class PulledChart:
    archive: Path
    digest: str  # sha256:<hex>


class ChartCache:
    """Pulled chart archives by repository, name and version, each with its sha256."""

    def __init__(self, root: Path, helm: Helm | None = None) -> None:
        self.root = root
        self.helm = helm or Helm()

    def directory(self, source: ChartSource) -> Path:
        repo = hashlib.sha256(source.reference.encode()).hexdigest()[:16]
        return self.root / repo / _safe(source.name) / _safe(source.version)

    def pull(self, source: ChartSource, limits: RenderLimits) -> PulledChart:
        """The chart's archive, from the cache when it holds it intact, else fetched and verified."""
        if (cached := self.cached(source)) is not None:
            return cached
        with tempfile.TemporaryDirectory(prefix="gitops-agent-chart-") as tmp:
            archive = Path(tmp) / _ARCHIVE
            if source.oci:
                self._pull_oci(source, Path(tmp), archive, limits)
                expected = ""
            else:
                expected = self._download(source, archive, limits).digest
            actual = sha256_file(archive)
            check_digest(source, expected, actual)
            return self._keep(source, archive, actual)

    def cached(self, source: ChartSource) -> PulledChart | None:
        """The cached archive when its bytes still match the digest recorded when it was pulled."""
        directory = self.directory(source)
        try:
            digest = (directory / _SHA_FILE).read_text().strip()
        except OSError:
            return None
        archive = directory / _ARCHIVE
        if not archive.is_file() or sha256_file(archive) != digest:
            return None
        return PulledChart(archive, f"sha256:{digest}")

    def _keep(self, source: ChartSource, archive: Path, digest: str) -> PulledChart:
        """Into the cache by rename, the digest written last: a reader sees both or neither."""
        directory = self.directory(source)
        directory.mkdir(parents=True, exist_ok=True)
        staged = directory / f".{_ARCHIVE}.{os.getpid()}"
        shutil.copyfile(archive, staged)
        os.replace(staged, directory / _ARCHIVE)
        sha = directory / f".{_SHA_FILE}.{os.getpid()}"
        sha.write_text(digest)
        os.replace(sha, directory / _SHA_FILE)
        return PulledChart(directory / _ARCHIVE, f"sha256:{digest}")

    def _download(self, source: ChartSource, archive: Path, limits: RenderLimits) -> IndexEntry:
        url = index_url(source.repo)
        with tempfile.TemporaryFile() as raw:
            _fetch(url, raw, source, limits, MAX_INDEX_BYTES)
            raw.seek(0)
            try:
                # the C loader when built: large public indexes take seconds with the Python one
                index = yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            except yaml.YAMLError as exc:
                raise RenderError(f"{source.label}: {url} is not YAML: {str(exc)[:300]}") from None
        entry = index_entry(index, source, url)
        with open(archive, "wb") as out:
            _fetch(entry.url, out, source, limits, MAX_CHART_BYTES)
        return entry

    def _pull_oci(self, source: ChartSource, tmp: Path, archive: Path, limits: RenderLimits) -> None:
        """``helm pull oci://…`` in the box, with the network on for it (the config names the registry)."""
        dest = tmp / "pulled"
        dest.mkdir()
        argv = [self.helm.locate(), "pull", source.reference, "--version", source.version, "--destination", str(dest)]
        if _loopback(source.repo):
            argv.append("--plain-http")  # a registry on this machine (tests) speaks plain HTTP
        with tempfile.TemporaryFile() as out:
            self.helm.run(argv, out, cwd=tmp, limits=limits, label=source.label, network=True)
        pulled = sorted(dest.glob("*.tgz"))
        if len(pulled) != 1:
            raise RenderError(f"{source.label}: helm pull left no chart archive")
        os.replace(pulled[0], archive)


def _fetch(url: str, out: BinaryIO, source: ChartSource, limits: RenderLimits, cap: int) -> None:
    """GET ``url`` into ``out``, at most ``cap`` bytes, within the render's time limit."""
    if not url.startswith(("https://", "http://")):
        raise RenderError(f"{source.label}: {url!r} is not an http(s) URL")
    total = 0
    try:
        with urllib.request.urlopen(url, timeout=limits.timeout_s) as response:
            while chunk := response.read(_CHUNK):
                total += len(chunk)
                if total > cap:
                    raise RenderError(f"{source.label}: {url} is larger than {cap} bytes; refused")
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise RenderError(f"{source.label}: {url}: the repository answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise RenderError(f"{source.label}: cannot reach the repository ({url}): {reason}") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(directory: Path) -> str:
    """A chart directory's digest: its files' relative paths and bytes, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return f"sha256:{digest.hexdigest()}"


def untar_chart(archive: Path, dest: Path) -> None:
    """Unpack a chart archive (data filter: no links out, no devices, no absolute paths)."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise RenderError(f"{archive.name}: not a chart archive: {exc}") from None


def _loopback(url: str) -> bool:
    host = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost", "[::1]")


def _safe(part: str) -> str:
    """A path segment from a name or version (never ``..`` or a separator)."""
    cleaned = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in part)
    return cleaned if cleaned.strip(".") else "_"
