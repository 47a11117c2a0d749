"""What a render may do, decided before Kustomize runs: the pure rules of the render box.

A kustomization is input from anyone who can push to the config repository, and Kustomize runs in
the agent's pod. So before it runs, every kustomization the environment uses is read and refused
when it would reach past the repository:

- a remote reference (``resources``, ``bases``, ``components``, plugin entries, ``helmCharts``
  repos) whose URL does not start with a prefix of ``render.allow_remote``;
- a generator or transformer that is an exec or KRM function plugin, or any non-built-in plugin
  (only ``apiVersion: builtin`` runs; ``--enable-alpha-plugins``/``--enable-exec`` are never passed);
- an ``envs:``/``env:`` file line that is a bare variable name: Kustomize would read that variable
  from its own environment (the agent's token, once).

Each refusal is a :class:`RenderError` whose message starts with the file it is about. The
imperative half (reading files, following directories) is ``adapters.renderer``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from gitops_agent.errors import RenderError

#: kustomize takes about a minute of CPU for 3,600 objects on 2 cores: room for large environments
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_OUTPUT_BYTES = 8 * 1024 * 1024
#: kustomization keys whose entries are other kustomizations or files to include
REFERENCE_KEYS = ("resources", "bases", "components")
#: kustomization keys whose entries are plugin configs: files, directories or inline YAML
PLUGIN_KEYS = ("generators", "transformers", "validators")
GENERATOR_KEYS = ("configMapGenerator", "secretGenerator")
FUNCTION_ANNOTATIONS = ("config.kubernetes.io/function", "config.k8s.io/function")
_SCHEMES = ("https://", "http://", "ssh://", "git::", "git@", "gh:", "file://", "oci://")
#: ``github.com/acme/repo//path``: Kustomize's scheme-less remote form (a host, then a path)
_HOST_PATH = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z][A-Za-z0-9-]*)+(:\d+)?/")


@dataclass(frozen=True)
class RenderLimits:
    """How far one render may reach: the remote prefixes it may fetch, its time and output."""

    allow_remote: tuple[str, ...] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES


DEFAULT_RENDER_LIMITS = RenderLimits()


@dataclass(frozen=True)
class Kustomization:
    """What one kustomization file asks for, sorted by what the shell must do with it."""

    #: local entries to follow (directories) or include (files), as written
    local: tuple[str, ...] = ()
    #: plugin entries that are paths (files to check, or directories to follow)
    plugin_paths: tuple[str, ...] = ()
    #: (key, URL) of every remote entry: resources, bases, components, plugins, helmCharts repos
    remote: tuple[tuple[str, str], ...] = ()
    #: (key, document) of every inline plugin config
    inline_plugins: tuple[tuple[str, Any], ...] = ()
    #: env files of its generators, relative to its directory
    env_files: tuple[str, ...] = ()


# --- the allow-list ------------------------------------------------------------------------


def prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot be an ``allow_remote`` entry, or None. It must name a scheme, a host
    and end with ``/``, so ``https://github.com/acme`` cannot also allow ``acme-evil``."""
    if not prefix.startswith(("https://", "http://", "ssh://", "git@")):
        return f"expected a URL prefix starting with https://, http://, ssh:// or git@, got {prefix!r}"
    if not prefix.endswith("/"):
        return f"end the prefix with '/' so it names whole path segments, got {prefix!r}"
    host = prefix.split("://", 1)[-1].removeprefix("git@").split("/", 1)[0]
    if not host or any(c.isspace() for c in prefix) or _has_dot_segment(prefix):
        return f"expected a URL prefix with a host and no '..', got {prefix!r}"
    return None


def looks_remote(entry: str) -> bool:
    """Whether Kustomize would fetch ``entry`` (when no local path of that name exists)."""
    return entry.startswith(_SCHEMES) or bool(_HOST_PATH.match(entry))


def remote_allowed(entry: str, allow: Sequence[str]) -> bool:
    """An entry under one allowed prefix, with no ``..`` to climb out of it."""
    return not _has_dot_segment(entry) and any(entry.startswith(p) for p in allow)


def _has_dot_segment(url: str) -> bool:
    path = url.split("?", 1)[0].replace("\\", "/")
    return any(part in ("..", ".") for part in path.split("/")) or "%2e" in path.lower()


def refuse_remote(kfile: str, key: str, entry: str) -> RenderError:
    return RenderError(
        f"{kfile}: {key} entry {entry!r} is a remote URL, and this environment may fetch none that does "
        "not start with a prefix of render.allow_remote (in the agent config)"
    )


# --- reading a kustomization ---------------------------------------------------------------


def read_kustomization(data: Any, exists: Callable[[str], bool] = lambda entry: False) -> Kustomization:
    """What a parsed kustomization references, sorted into local, remote, plugins and env files.
    ``exists`` says whether an entry is a path in the repository: Kustomize reads those locally
    even when they look like a host name (``v1.example/``)."""
    if not isinstance(data, dict):
        return Kustomization()  # Kustomize reports a broken kustomization in its own words
    refs = [(key, e) for key in REFERENCE_KEYS for e in _entries(data, key)]
    plugins = [(key, e) for key in PLUGIN_KEYS for e in _entries(data, key)]
    inline = [(key, doc) for key, e in plugins if _is_inline(e) for doc in _inline_documents(e)]
    paths = [(key, e) for key, e in plugins if not _is_inline(e)]

    def remote(entry: str) -> bool:
        return looks_remote(entry) and not exists(entry)

    return Kustomization(
        local=tuple(e for _, e in refs if not remote(e)),
        plugin_paths=tuple(e for _, e in paths if not remote(e)),
        remote=tuple((k, e) for k, e in [*refs, *paths] if remote(e)) + tuple(_helm_repos(data)),
        inline_plugins=tuple(inline),
        env_files=tuple(env_files(data)),
    )


def check_kustomization(kfile: str, kustomization: Kustomization, allow: Sequence[str]) -> None:
    """Refuse a remote entry outside ``allow`` and an inline plugin that is not built in."""
    for key, url in kustomization.remote:
        if not remote_allowed(url, allow):
            raise refuse_remote(kfile, key, url)
    for key, doc in kustomization.inline_plugins:
        check_plugin_documents(f"{kfile} ({key}, inline)", [doc])


def _entries(data: dict[str, Any], key: str) -> list[str]:
    group = data.get(key)
    return [e for e in group if isinstance(e, str)] if isinstance(group, list) else []


def _helm_repos(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    charts = data.get("helmCharts")
    for chart in charts if isinstance(charts, list) else []:
        repo = chart.get("repo") if isinstance(chart, dict) else None
        if isinstance(repo, str) and repo:
            yield "helmCharts", repo


def env_files(data: Any) -> Iterator[str]:
    """The ``envs:``/``env:`` files of a kustomization's generators (or of one generator config)."""
    if not isinstance(data, dict):
        return
    items = [data] if data.get("kind") in _GENERATOR_KINDS else []
    for key in GENERATOR_KEYS:
        group = data.get(key)
        items.extend(g for g in (group if isinstance(group, list) else []) if isinstance(g, dict))
    for item in items:
        envs = item.get("envs")
        yield from (e for e in envs if isinstance(e, str)) if isinstance(envs, list) else ()
        if isinstance(item.get("env"), str):
            yield item["env"]


# --- plugins ---------------------------------------------------------------------------------

_GENERATOR_KINDS = ("ConfigMapGenerator", "SecretGenerator")


def _is_inline(entry: str) -> bool:
    """Kustomize reads a plugin entry with a newline (or a YAML mapping start) as inline YAML."""
    return "\n" in entry or entry.lstrip().startswith(("apiVersion:", "kind:", "{"))


def _inline_documents(entry: str) -> list[Any]:
    """The documents of an inline plugin config; none when it is not YAML (Kustomize says so)."""
    try:
        return [d for d in yaml.safe_load_all(entry) if d is not None]
    except yaml.YAMLError:
        return []


def check_plugin_documents(path: str, documents: Sequence[Any]) -> None:
    """Refuse a plugin config that is not one of Kustomize's built-ins (``apiVersion: builtin``):
    exec and container (KRM) functions run programs, legacy plugins run ``.so`` or executables."""
    for number, doc in enumerate(documents, start=1):
        if not isinstance(doc, dict):
            continue
        where = f"{path} (document {number})" if len(documents) > 1 else path
        kind = doc.get("kind") or "plugin"
        annotations = (doc.get("metadata") or {}).get("annotations") if isinstance(doc.get("metadata"), dict) else {}
        if isinstance(annotations, dict) and any(a in annotations for a in FUNCTION_ANNOTATIONS):
            raise RenderError(f"{where}: {kind} is an exec or KRM function plugin; the agent never runs plugins")
        if doc.get("apiVersion") != "builtin":
            raise RenderError(
                f"{where}: {kind} ({doc.get('apiVersion')}) is not a built-in generator or transformer "
                "(apiVersion: builtin); the agent never runs plugins"
            )


# --- env files --------------------------------------------------------------------------------


def check_env_file(path: str, text: str) -> None:
    """Refuse a line naming a variable without a value: Kustomize would read it from its process
    environment. (It gets none from the agent, but a silent empty value hides the mistake.)"""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or "=" in line:
            continue
        name = line.split()[0][:100]
        raise RenderError(
            f"{path}: line {number}: {name!r} has no value; write {name}=VALUE (a bare name would be read "
            "from the environment Kustomize runs in, which renders never inherit)"
        )


# --- paths ------------------------------------------------------------------------------------


def join_inside(directory: str, entry: str) -> str | None:
    """``directory/entry`` as a normalized repository path (``.`` for the root); None when it is
    absolute or climbs out of the repository."""
    if posixpath.isabs(entry) or entry.startswith("\\"):
        return None
    joined = posixpath.normpath(posixpath.join(directory, entry))
    return None if joined == ".." or joined.startswith("../") else joined
