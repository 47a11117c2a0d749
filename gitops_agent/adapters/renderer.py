"""Rendering one environment of an exported tree: Kustomize when it has a kustomization, plain YAML otherwise.

This is the imperative half of rendering: it finds files, runs ``kustomize build`` and hands bytes
to the pure parser in :mod:`gitops_agent.core.render`. Its job is also to keep rendering inside
the repository: an environment path, a symlink or a Kustomize resource that leads outside the
exported tree is refused, because the agent runs with credentials and files a config repository
author should never be able to read into a cluster (``/etc``, the agent's own token).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from gitops_agent.core.render import (
    DEFAULT_LIMITS,
    KUSTOMIZATION_NAMES,
    ParseLimits,
    is_manifest_path,
    parse_manifests,
    parse_stream,
)
from gitops_agent.errors import RenderError
from gitops_agent.model import DesiredObject

KUSTOMIZE_ENV_VAR = "GITOPS_AGENT_KUSTOMIZE"
KUSTOMIZE_TIMEOUT_S = 120.0
#: ``kustomize build`` output is one stream for a whole environment, so it may be larger than a file.
KUSTOMIZE_OUTPUT_LIMITS = ParseLimits(max_file_bytes=64 * 1024 * 1024, max_nodes=20_000_000)
#: how much of kustomize's stderr goes into an error message
STDERR_LINES = 15
_REFERENCE_KEYS = ("resources", "bases", "components")


@dataclass(frozen=True)
class Kustomize:
    """Runs ``kustomize build DIR`` or ``kubectl kustomize DIR``.

    ``binary`` is a path or a command name; when None, ``$GITOPS_AGENT_KUSTOMIZE`` is used, then
    ``kustomize`` and ``kubectl`` from ``PATH``. It is looked up when a build runs, not when the
    runner is made, so an environment without a kustomization never needs the binary.
    ``LoadRestrictionsRootOnly`` (kustomize's default, stated so a user config cannot loosen it)
    keeps patches and generators from reading files outside their kustomization's directory.
    """

    binary: str | None = None
    load_restrictor: str = "LoadRestrictionsRootOnly"
    timeout_s: float = KUSTOMIZE_TIMEOUT_S
    extra_args: tuple[str, ...] = field(default=())

    def command(self, directory: Path) -> list[str]:
        """The argv that builds ``directory``; RenderError when no binary can be found."""
        binary = self._locate()
        verb = ["kustomize"] if Path(binary).name.startswith("kubectl") else ["build"]
        return [binary, *verb, str(directory), f"--load-restrictor={self.load_restrictor}", *self.extra_args]

    def build(self, directory: Path, *, tree_root: Path, label: str) -> bytes:
        """The rendered YAML stream of ``directory``; ``label`` (the env path) names it in errors."""
        argv = self.command(directory)
        try:
            done = subprocess.run(argv, cwd=tree_root, capture_output=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise RenderError(f"{label}: kustomize build timed out after {self.timeout_s:g}s") from None
        except OSError as exc:
            raise RenderError(f"{label}: cannot run {argv[0]}: {exc.strerror}") from None
        if done.returncode != 0:
            detail = _trim_stderr(done.stderr, tree_root) or f"exit status {done.returncode}"
            raise RenderError(f"{label}: kustomize build failed: {detail}")
        return done.stdout

    def _locate(self) -> str:
        configured = self.binary or os.environ.get(KUSTOMIZE_ENV_VAR)
        if configured:
            found = shutil.which(configured)
            if not found:
                raise RenderError(
                    f"kustomize not found at {configured!r} (from the agent config or ${KUSTOMIZE_ENV_VAR}): "
                    "install kustomize or kubectl, or fix the path"
                )
            return found
        for name in ("kustomize", "kubectl"):
            if found := shutil.which(name):
                return found
        raise RenderError(
            "kustomize not found: install kustomize or kubectl, or set agent.kustomize in the config "
            f"or ${KUSTOMIZE_ENV_VAR} to its path"
        )


def render_environment(
    tree_root: Path, env_path: str, *, kustomize: Kustomize | None, limits: ParseLimits = DEFAULT_LIMITS
) -> list[DesiredObject]:
    """The objects of the environment at ``env_path`` (relative to the exported ``tree_root``).

    With a kustomization file the directory is built by Kustomize (``kustomize=None`` means the
    default runner); without one, every manifest file below it is read, recursively.
    """
    root = Path(os.path.realpath(tree_root))
    prefix = _normalize(env_path)
    env_dir = _env_directory(root, prefix, env_path)
    if any((env_dir / name).is_file() for name in KUSTOMIZATION_NAMES):
        return _render_kustomize(root, env_dir, env_path, kustomize or Kustomize())
    return parse_manifests(dict(_read_manifests(root, env_dir, prefix, limits)), limits=limits)


def environment_sources(tree_root: Path, env_path: str) -> list[str]:
    """The repository paths whose files the environment's render reads, sorted: its directory, the
    local directories its kustomization references (``resources``, ``bases``, ``components``,
    followed recursively), and where symlinks below them lead. ``history`` lists the commits that
    touched them: a commit elsewhere in the repository changed nothing this environment renders."""
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


def _read_manifests(root: Path, env_dir: Path, prefix: str, limits: ParseLimits) -> Iterator[tuple[str, bytes]]:
    """(repo-relative path, content) of each manifest file below ``env_dir``, links checked."""
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
            path = here / name
            shown = _logical(path, env_dir, prefix)
            if is_manifest_path(name):
                yield shown, _read_file(path, shown, root, limits)


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


def _render_kustomize(root: Path, env_dir: Path, env_path: str, runner: Kustomize) -> list[DesiredObject]:
    _check_references(root, env_dir)
    output = runner.build(env_dir, tree_root=root, label=env_path)
    objects = parse_stream(output, f"{env_path} (kustomize output)", limits=KUSTOMIZE_OUTPUT_LIMITS)
    return [replace(o, source=env_path) for o in objects]


def _check_references(root: Path, env_dir: Path) -> None:
    """Refuse local resources/bases/components (followed recursively) that resolve outside the tree.

    Kustomize's load restrictor confines *files* to a kustomization's directory, but lets a
    kustomization include any other kustomization *directory*, wherever it is; this closes that.
    Entries that do not exist locally (remote URLs, typos) are left to Kustomize to fetch or report.
    """
    _referenced_dirs(root, env_dir)


def _referenced_dirs(root: Path, env_dir: Path) -> set[Path]:
    """``env_dir`` and every local directory its kustomization references, recursively; RenderError
    for one outside the tree."""
    pending, seen = [env_dir], {env_dir}
    while pending:
        directory = pending.pop()
        kfile = next((directory / n for n in sorted(KUSTOMIZATION_NAMES) if (directory / n).is_file()), None)
        if kfile is None:
            continue
        for entry in _references(kfile):
            target = Path(os.path.realpath(directory / entry))
            if not target.exists():
                continue
            if not _inside(target, root):
                raise RenderError(f"{_relative(kfile, root)}: {entry!r} points outside the repository")
            if target.is_dir() and target not in seen:
                seen.add(target)
                pending.append(target)
    return seen


def _references(kfile: Path) -> list[str]:
    try:
        data: Any = yaml.safe_load(kfile.read_bytes())
    except (yaml.YAMLError, OSError, ValueError):
        return []  # kustomize reports a broken kustomization in its own words
    if not isinstance(data, dict):
        return []
    entries = [data.get(key) for key in _REFERENCE_KEYS]
    return [e for group in entries if isinstance(group, list) for e in group if isinstance(e, str)]


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
