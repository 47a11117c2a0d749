"""Rendering one environment of an exported tree: Kustomize when it has a kustomization, plain YAML otherwise.

This is the imperative half of rendering: it finds files, runs ``kustomize build`` in the box of
:mod:`gitops_agent.adapters.renderbox` and hands its output to the pure parser in
:mod:`gitops_agent.core.render`. Its job is also to keep rendering inside the repository: an
environment path, a symlink or a Kustomize reference that leads outside the exported tree, a remote
reference not allowed, a plugin or an env file line without a value are refused before Kustomize
runs (rules in :mod:`gitops_agent.core.render_box`), because the agent runs with credentials and
files a config repository author should never be able to read into a cluster (``/etc``, the
agent's own token).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from gitops_agent.adapters import renderbox
from gitops_agent.adapters.helm import ChartCache, Helm
from gitops_agent.adapters.helm_render import HelmContext, is_chart, ready_kustomize_charts, render_chart
from gitops_agent.core.helm import ChartRef
from gitops_agent.core.render import (
    DEFAULT_LIMITS,
    KUSTOMIZATION_NAMES,
    ParseLimits,
    is_manifest_path,
    load_documents,
    parse_stream,
    parse_stream_file,
)
from gitops_agent.core.render_box import (
    DEFAULT_RENDER_LIMITS,
    Kustomization,
    RenderLimits,
    check_env_file,
    check_kustomization,
    check_plugin_documents,
    read_kustomization,
)
from gitops_agent.errors import RenderError
from gitops_agent.model import DesiredObject

KUSTOMIZE_ENV_VAR = "GITOPS_AGENT_KUSTOMIZE"
#: kustomize output is one stream for a whole environment: its cap is RenderLimits.max_output_bytes
KUSTOMIZE_OUTPUT_LIMITS = ParseLimits(max_file_bytes=DEFAULT_RENDER_LIMITS.max_output_bytes, max_nodes=20_000_000)
#: how much of kustomize's stderr goes into an error message
STDERR_LINES = 15


@dataclass(frozen=True)
class Kustomize:
    """Runs ``kustomize build DIR`` or ``kubectl kustomize DIR``, in the box of ``renderbox``.

    ``binary`` is a path or a command name; when None, ``$GITOPS_AGENT_KUSTOMIZE`` is used, then
    ``kustomize`` and ``kubectl`` from ``PATH``. It is looked up when a build runs, not when the
    runner is made, so an environment without a kustomization never needs the binary.
    ``LoadRestrictionsRootOnly`` (kustomize's default, stated so a user config cannot loosen it)
    keeps patches and generators from reading files outside their kustomization's directory. Never
    ``--enable-alpha-plugins`` nor ``--enable-exec``; ``--enable-helm`` (with our helm) only for a
    kustomization with ``helmCharts``, whose charts the agent has pulled and placed beforehand.
    """

    binary: str | None = None
    load_restrictor: str = "LoadRestrictionsRootOnly"

    def command(self, directory: Path, flags: Sequence[str] = ()) -> list[str]:
        """The argv that builds ``directory``; RenderError when no binary can be found."""
        binary = self._locate()
        verb = ["kustomize"] if Path(binary).name.startswith("kubectl") else ["build"]
        return [binary, *verb, str(directory), f"--load-restrictor={self.load_restrictor}", *flags]

    def build(
        self,
        directory: Path,
        out: BinaryIO,
        *,
        tree_root: Path,
        label: str,
        limits: RenderLimits,
        flags: Sequence[str] = (),
    ) -> None:
        """Write the rendered YAML stream of ``directory`` into ``out``, at most
        ``limits.max_output_bytes`` of it; ``label`` (the kustomization file) names it in errors."""
        argv = self.command(directory, flags)
        with tempfile.TemporaryDirectory(prefix="gitops-agent-render-") as scratch:
            env = renderbox.environment(Path(scratch), network=bool(limits.allow_remote))
            stderr = renderbox.run(argv, cwd=tree_root, env=env, out=out, limits=limits, label=label)
        if stderr.returncode != 0:
            detail = _trim_stderr(stderr.text, tree_root) or f"exit status {stderr.returncode}"
            raise RenderError(f"{label}: kustomize build failed: {detail}")

    def _locate(self) -> str:
        configured = self.binary or os.environ.get(KUSTOMIZE_ENV_VAR)
        if configured:
            found = shutil.which(configured)
            if not found:
                raise RenderError(
                    f"kustomize not found at {configured!r} (from the agent config or ${KUSTOMIZE_ENV_VAR}): "
                    "install kustomize or kubectl, or fix the path"
                )
            return str(Path(found).absolute())
        for name in ("kustomize", "kubectl"):
            if found := shutil.which(name):
                return str(Path(found).absolute())
        raise RenderError(
            "kustomize not found: install kustomize or kubectl, or set agent.kustomize in the config "
            f"or ${KUSTOMIZE_ENV_VAR} to its path"
        )


@dataclass(frozen=True)
class Rendered:
    """A render's objects and the charts they came from (provenance, for the ledger)."""

    objects: list[DesiredObject]
    charts: tuple[ChartRef, ...] = ()


def render_environment(
    tree_root: Path,
    env_path: str,
    *,
    kustomize: Kustomize | None,
    limits: ParseLimits = DEFAULT_LIMITS,
    box: RenderLimits = DEFAULT_RENDER_LIMITS,
    helm: HelmContext | None = None,
) -> list[DesiredObject]:
    """The objects of the environment at ``env_path``: :func:`render_snapshot`'s, without provenance."""
    return render_snapshot(tree_root, env_path, kustomize=kustomize, limits=limits, box=box, helm=helm).objects


def render_snapshot(
    tree_root: Path,
    env_path: str,
    *,
    kustomize: Kustomize | None,
    limits: ParseLimits = DEFAULT_LIMITS,
    box: RenderLimits = DEFAULT_RENDER_LIMITS,
    helm: HelmContext | None = None,
) -> Rendered:
    """The objects of the environment at ``env_path`` (relative to the exported ``tree_root``).

    A chart (``helm.chart`` in the config, or a directory holding ``Chart.yaml``) is templated by
    helm; with a kustomization file the directory is built by Kustomize (``kustomize=None`` means
    the default runner) within ``box``; without either, every manifest file below it is read,
    recursively, at most ``box.max_output_bytes`` of them in all.
    """
    root = Path(os.path.realpath(tree_root))
    prefix = _normalize(env_path)
    env_dir = _env_directory(root, prefix, env_path)
    if is_chart(env_dir, helm):
        objects, charts = render_chart(root, env_dir, env_path, helm or default_helm(env_path), box, limits)
        return Rendered(objects, charts)
    if helm is not None and helm.spec is not None:
        raise RenderError(
            f"{env_path}: the environment has helm: in the config, but no chart: set helm.chart (repo, name, "
            f"version), or add the chart's Chart.yaml to {env_path}"
        )
    if _kustomization_file(env_dir) is not None:
        return _render_kustomize(root, env_dir, env_path, kustomize or Kustomize(), box, helm)
    return Rendered(_render_plain(root, env_dir, prefix, limits, box))


def default_helm(env_path: str) -> HelmContext:
    """Rendering a chart with no context given (tests, tools): helm from the environment, a
    temporary cache, the directory's name as the release, namespace ``default``."""
    cache = Path(tempfile.gettempdir()) / "gitops-agent-charts"
    return HelmContext(
        Helm(), ChartCache(cache), release=posixpath.basename(env_path) or "release", namespace="default"
    )


def environment_sources(tree_root: Path, env_path: str) -> list[str]:
    """The repository paths whose files the environment's render reads, sorted: its directory, the
    local directories its kustomization references (``resources``, ``bases``, ``components`` and
    plugin entries, followed recursively), and where symlinks below them lead. ``history`` lists
    the commits that touched them; the export for a render writes only them."""
    root = Path(os.path.realpath(tree_root))
    env_dir = _env_directory(root, _normalize(env_path), env_path)
    directories = _referenced_dirs(root, env_dir)
    linked = {target for d in directories for target in _link_targets(root, d)}
    return sorted({_relative(d, root) for d in directories} | linked)


def _link_targets(root: Path, directory: Path) -> Iterator[str]:
    """Repository paths of what symlinks below ``directory`` lead to, outside it (inside the tree:
    the render refuses the rest)."""
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            if not path.is_symlink():
                continue
            real = Path(os.path.realpath(path))
            if _inside(real, root) and not _inside(real, directory):
                yield _relative(real, root)


# --- the environment directory ------------------------------------------------------------------


def _normalize(env_path: str) -> str:
    """``./environments//dev/`` -> ``environments/dev``; refusing absolute paths and ``..`` escapes."""
    normal = posixpath.normpath(env_path.replace("\\", "/")) if env_path else "."
    if posixpath.isabs(normal) or normal == ".." or normal.startswith("../"):
        raise RenderError(f"{env_path}: environment path escapes the repository; use a path relative to its root")
    return normal


def _env_directory(root: Path, normal: str, env_path: str) -> Path:
    """The real directory of ``root/normal``, refusing a symlink that leaves the tree."""
    candidate = root / normal
    real = Path(os.path.realpath(candidate))
    if not _inside(real, root):
        raise RenderError(f"{env_path}: environment path leads outside the repository (through a symlink)")
    if not real.is_dir():
        what = "is not a directory" if real.exists() else "does not exist in the repository at this commit"
        raise RenderError(f"{env_path}: environment path {what}")
    return real


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if _inside(path, root) else str(path)


# --- plain YAML directories ---------------------------------------------------------------------


def _render_plain(
    root: Path, env_dir: Path, prefix: str, limits: ParseLimits, box: RenderLimits
) -> list[DesiredObject]:
    """Each manifest file read and parsed in turn (only one file's bytes held at a time), in sorted
    path order; all of them at most ``box.max_output_bytes``, as a kustomize render."""
    files = dict(_manifest_files(root, env_dir, prefix))
    total = 0
    objects: list[DesiredObject] = []
    for shown in sorted(files):
        data = _read_file(files[shown], shown, root, limits)
        total += len(data)
        if total > box.max_output_bytes:
            raise RenderError(
                f"{shown}: the environment's manifests pass the limit of {box.max_output_bytes} bytes in all "
                "(render.max_output in the agent config)"
            )
        objects.extend(parse_stream(data, shown, limits=limits))
    return objects


def _manifest_files(root: Path, env_dir: Path, prefix: str) -> Iterator[tuple[str, Path]]:
    """(repo-relative path, path on disk) of each manifest file below ``env_dir``, links checked."""
    seen_dirs: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(env_dir, followlinks=True):
        here = Path(dirpath)
        real_dir = os.path.realpath(here)
        if not _inside(Path(real_dir), root):
            raise RenderError(f"{_logical(here, env_dir, prefix)}: directory symlink points outside the repository")
        if real_dir in seen_dirs:  # a link back to a directory already read
            dirnames.clear()
            continue
        seen_dirs.add(real_dir)
        dirnames.sort()
        for name in sorted(filenames):
            if is_manifest_path(name):
                yield _logical(here / name, env_dir, prefix), here / name


def _logical(path: Path, env_dir: Path, prefix: str) -> str:
    """The path as the repository names it (through links, not resolved): ``environments/dev/app.yaml``."""
    return posixpath.normpath(posixpath.join(prefix, path.relative_to(env_dir).as_posix()))


def _read_file(path: Path, shown: str, root: Path, limits: ParseLimits) -> bytes:
    real = Path(os.path.realpath(path))
    if not _inside(real, root):
        raise RenderError(f"{shown}: symlink points outside the repository")
    if not real.is_file():
        raise RenderError(f"{shown}: not a regular file (a broken symlink?)")
    size = real.stat().st_size
    if size > limits.max_file_bytes:
        raise RenderError(f"{shown}: file is {size} bytes, over the limit of {limits.max_file_bytes}")
    return real.read_bytes()


# --- Kustomize ------------------------------------------------------------------------------------


def _render_kustomize(
    root: Path, env_dir: Path, env_path: str, runner: Kustomize, box: RenderLimits, helm: HelmContext | None
) -> Rendered:
    """Check every kustomization the environment uses, ready its ``helmCharts`` (pulled, verified,
    placed), then build it into a capped file and parse that file as a stream: the output is never
    held whole, as bytes or as text."""
    directories = _check_kustomizations(root, env_dir, box)
    flags, charts = ready_kustomize_charts(root, directories, helm or default_helm(env_path), box)
    kfile = _relative(_kustomization_file(env_dir) or env_dir, root)
    limits = replace(KUSTOMIZE_OUTPUT_LIMITS, max_file_bytes=box.max_output_bytes)
    with tempfile.TemporaryFile(prefix="gitops-agent-render-") as out:
        runner.build(env_dir, out, tree_root=root, label=kfile, limits=box, flags=flags)
        out.seek(0)
        objects = parse_stream_file(out, f"{env_path} (kustomize output)", limits=limits)
    return Rendered([replace(o, source=env_path) for o in objects], charts)


def _check_kustomizations(root: Path, env_dir: Path, box: RenderLimits) -> set[Path]:
    """Refuse, before Kustomize runs, what each kustomization the environment uses must not do:
    a reference outside the repository or missing from it, a remote one not allowed, a plugin, an
    env file line without a value, a symlink out of the repository. The directories checked."""
    directories = _referenced_dirs(root, env_dir, box)
    for directory in sorted(directories):
        _check_links(root, directory)
    return directories


def _referenced_dirs(root: Path, env_dir: Path, box: RenderLimits | None = None) -> set[Path]:
    """``env_dir`` and every local directory its kustomization references, recursively; RenderError
    for one outside the tree. With ``box``, each kustomization is also checked against it (see
    :func:`_check_kustomizations`); without, entries that do not exist are skipped (``history``)."""
    pending, seen = [env_dir], {env_dir}
    while pending:
        directory = pending.pop()
        kfile = _kustomization_file(directory)
        if kfile is None:
            continue
        shown = _relative(kfile, root)
        kustomization = _read_kustomization(kfile, shown, strict=box is not None)
        if box is not None:
            check_kustomization(shown, kustomization, box.allow_remote)
            _check_env_files(root, directory, kustomization)
        for entry in (*kustomization.local, *kustomization.plugin_paths):
            target = _local_target(root, directory, shown, entry, strict=box is not None)
            if target is not None and target.is_dir() and target not in seen:
                seen.add(target)
                pending.append(target)
            elif target is not None and target.is_file() and box is not None and entry in kustomization.plugin_paths:
                _check_plugin_file(root, target)
    return seen


def _kustomization_file(directory: Path) -> Path | None:
    return next((directory / n for n in sorted(KUSTOMIZATION_NAMES) if (directory / n).is_file()), None)


def _read_kustomization(kfile: Path, shown: str, *, strict: bool) -> Kustomization:
    """What the kustomization references; a file that is not YAML is Kustomize's to report, except
    when checking, where its first document must load within the parse limits (no YAML bomb)."""
    try:
        documents = load_documents(kfile.read_bytes(), shown)
    except (RenderError, OSError):
        if strict:
            raise
        return Kustomization()
    directory = kfile.parent
    return read_kustomization(documents[0] if documents else None, lambda e: os.path.lexists(directory / e))


def _local_target(root: Path, directory: Path, kfile: str, entry: str, *, strict: bool) -> Path | None:
    """Where a local entry leads: inside the tree, or a RenderError naming the kustomization. One
    that does not exist is None, or (checking) an error: Kustomize would try to fetch it."""
    target = Path(os.path.realpath(directory / entry))
    if posixpath.isabs(entry) or not _inside(target, root):
        raise RenderError(f"{kfile}: {entry!r} points outside the repository")
    if target.exists():
        return target
    if strict:
        raise RenderError(
            f"{kfile}: {entry!r} does not exist in the repository at this commit (a remote URL must "
            "start with a prefix of render.allow_remote)"
        )
    return None


def _check_env_files(root: Path, directory: Path, kustomization: Kustomization) -> None:
    for entry in kustomization.env_files:
        path = Path(os.path.realpath(directory / entry))
        shown = _relative(directory / entry, root)
        if not _inside(path, root):
            raise RenderError(f"{shown}: env file points outside the repository")
        if path.is_file():
            check_env_file(shown, path.read_bytes()[: DEFAULT_LIMITS.max_file_bytes].decode("utf-8", "replace"))


def _check_plugin_file(root: Path, path: Path) -> None:
    """A generator or transformer config: built in, and its own env files without bare names."""
    shown = _relative(path, root)
    documents = load_documents(path.read_bytes(), shown)
    check_plugin_documents(shown, documents)
    for doc in documents:
        _check_env_files(root, path.parent, read_kustomization(doc))


def _check_links(root: Path, directory: Path) -> None:
    """A symlink below a kustomization directory that leaves the repository is named here, rather
    than as a path kustomize cannot read."""
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            if path.is_symlink() and not _inside(Path(os.path.realpath(path)), root):
                raise RenderError(f"{_relative(path, root)}: symlink points outside the repository")


def _trim_stderr(stderr: bytes, root: Path) -> str:
    """Kustomize's complaint, with the temporary export directory cut from paths and long output cut."""
    text = stderr.decode("utf-8", "replace").strip()
    text = text.replace(f"{root}/", "").replace(str(root), ".")
    for prefix in ("Error: ", "error: "):
        text = text.removeprefix(prefix)
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    if len(lines) > STDERR_LINES:
        lines = [*lines[:STDERR_LINES], f"(and {len(lines) - STDERR_LINES} more lines)"]
    return "\n".join(lines)[:4000]
