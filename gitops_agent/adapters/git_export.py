"""Writing the tree of one commit (or only what one environment renders from) into a directory,
refusing what could reach outside it.

Entries git itself would refuse on checkout (``..``, ``.git``, absolute or backslashed paths) are
a :class:`RenderError` naming the path. Symlinks are written last and kept only when they stay
inside the tree; one that leaves it is written pointing at :data:`REFUSED_LINK_TARGET`, so reading
through it fails and the renderer, which checks every link it reads, names it.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Iterator
from pathlib import Path

import git

from gitops_agent.core.render import KUSTOMIZATION_NAMES, load_documents
from gitops_agent.core.render_box import join_inside, read_kustomization
from gitops_agent.errors import RenderError

_MODE_SYMLINK = 0o120000
_MODE_GITLINK = 0o160000
_MODE_TREE = 0o040000
#: as Linux's MAXSYMLINKS: a chain of links longer than this is a loop
_MAX_LINK_HOPS = 40

#: where an exported symlink that leaves the repository points instead: nowhere readable
REFUSED_LINK_TARGET = "/dev/null/symlink-outside-the-repository-refused"


def subtree(tree: git.Tree, subdir: str, display: str, commit: str) -> git.Tree:
    path = posixpath.normpath(subdir.strip("/"))
    if path.startswith("..") or posixpath.isabs(subdir):
        raise RenderError(f"{subdir}: path escapes the repository")
    try:
        sub = tree / path
    except KeyError:
        raise RenderError(f"{subdir}: no such directory in {display} at {commit[:12]}") from None
    if not isinstance(sub, git.Tree):
        raise RenderError(f"{subdir}: not a directory in {display} at {commit[:12]}")
    return sub


def write_files(tree: git.Tree, dest: Path) -> list[tuple[str, str]]:
    """Write the directories and regular files below ``tree`` into ``dest``; return the symlinks
    as (path, target), for :func:`write_links` once every file is written."""
    links: list[tuple[str, str]] = []
    for item in _walk(tree):
        path = str(item.path)
        _check_entry_path(path)
        if item.mode == _MODE_SYMLINK:
            links.append((path, item.data_stream.read().decode("utf-8", "surrogateescape")))
        else:
            _write_entry(item, dest / path)
    return links


def _walk(tree: git.Tree) -> Iterator[git.Blob | git.Tree | git.Submodule]:
    """Every entry below ``tree``, parents before children."""
    for item in tree.traverse():
        if isinstance(item, (git.Blob, git.Tree, git.Submodule)):
            yield item


def _write_entry(item: git.Blob | git.Tree | git.Submodule, target: Path) -> None:
    """A directory or a regular file; submodules are skipped (their content lives elsewhere)."""
    if item.mode == _MODE_TREE:
        target.mkdir(parents=True, exist_ok=True)
    elif item.mode != _MODE_GITLINK and isinstance(item, git.Blob):
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            shutil.copyfileobj(item.data_stream, out)


def _check_entry_path(path: str) -> None:
    """Git refuses ``..`` and ``.git`` entries on checkout; we refuse them on export, too."""
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") or p.lower() == ".git" or "\\" in p for p in parts):
        raise RenderError(f"{path}: unsafe path in the repository tree; refusing to export it")


def write_links(dest: Path, links: list[tuple[str, str]]) -> None:
    """Create symlinks last (so no file is written through one). A link that leaves the tree is
    not an error here: the commit is shared by every environment, and only one that reads the
    link should fail. It is written pointing at a path that cannot exist, so reading through it
    fails and the renderer, which checks every link it reads, names it."""
    for path, target in links:
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        escapes = posixpath.isabs(target) or resolved == ".." or resolved.startswith("../")
        link = dest / path
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(REFUSED_LINK_TARGET if escapes else target, link)
    root = os.path.realpath(dest)
    for path, _ in links:  # through chains of links, too
        real = os.path.realpath(dest / path)
        if real != root and not real.startswith(root + os.sep):
            os.unlink(dest / path)
            os.symlink(REFUSED_LINK_TARGET, dest / path)


# --- only what an environment renders from ------------------------------------------------------


def write_environment(tree: git.Tree, dest: Path, env_path: str) -> list[tuple[str, str]]:
    """Write only what the environment at ``env_path`` renders from (:func:`environment_paths`)
    into ``dest``, keeping their paths; return the symlinks, for :func:`write_links`. A path the
    environment names that does not exist is simply not written: the renderer, reading the export,
    refuses it with the file that names it."""
    links: list[tuple[str, str]] = []
    for path in _outermost(environment_paths(tree, env_path)):
        item = _lookup(tree, path)
        if path != ".":
            _check_entry_path(path)
        if isinstance(item, git.Tree):
            (dest / path).mkdir(parents=True, exist_ok=True)
            links.extend(write_files(item, dest))
        elif item is not None and item.mode == _MODE_SYMLINK:
            links.append((path, item.data_stream.read().decode("utf-8", "surrogateescape")))
        elif item is not None:
            _write_entry(item, dest / path)
    return links


def environment_paths(tree: git.Tree, env_path: str) -> set[str]:
    """The repository paths the environment renders from, read from git objects (nothing written):
    its directory, every local directory or file its kustomizations reference (followed
    recursively), where symlinks below those lead, and the links passed on the way. The same walk
    as ``renderer.environment_sources``, before there is a tree on disk to walk."""
    start, wanted = _resolve(tree, env_path)
    pending = [start] if start is not None and isinstance(_lookup(tree, start), git.Tree) else []
    seen: set[str] = set()
    while pending:
        directory = pending.pop()
        if directory in seen:
            continue
        seen.add(directory)
        wanted.add(directory)
        for target, via in _reached_from(tree, directory):
            wanted |= via
            if target is None:
                continue
            if isinstance(_lookup(tree, target), git.Tree):
                pending.append(target)
            else:
                wanted.add(target)
    return wanted


def _reached_from(tree: git.Tree, directory: str) -> Iterator[tuple[str | None, set[str]]]:
    """(real path or None, links passed) of each kustomization entry of ``directory`` and of each
    symlink below it that leads out of it."""
    for entry in _kustomization_entries(tree, directory):
        joined = join_inside(directory, entry)
        if joined is not None:
            yield _resolve(tree, joined)
    sub = _lookup(tree, directory)
    for item in sub.traverse() if isinstance(sub, git.Tree) else ():
        if isinstance(item, git.Blob) and item.mode == _MODE_SYMLINK:
            target, via = _resolve(tree, str(item.path))
            inside = target is not None and (directory == "." or f"{target}/".startswith(f"{directory}/"))
            yield (None if inside else target), via


def _kustomization_entries(tree: git.Tree, directory: str) -> list[str]:
    """The local entries of the directory's kustomization (none when it has none, or it is broken:
    the renderer refuses that, naming the file)."""
    for name in sorted(KUSTOMIZATION_NAMES):
        item = _lookup(tree, posixpath.join(directory, name) if directory != "." else name)
        if not isinstance(item, git.Blob) or item.mode == _MODE_SYMLINK:
            continue
        try:
            documents = load_documents(item.data_stream.read(), str(item.path))
        except RenderError:
            return []
        found = read_kustomization(documents[0] if documents else None, lambda e: _exists(tree, directory, e))
        return [*found.local, *found.plugin_paths]
    return []


def _exists(tree: git.Tree, directory: str, entry: str) -> bool:
    joined = join_inside(directory, entry)
    return joined is not None and _resolve(tree, joined)[0] is not None


def _resolve(tree: git.Tree, path: str) -> tuple[str | None, set[str]]:
    """``path`` with every symlink on it followed, as the file system would: (its real repository
    path, or None when it is missing or leaves the repository; the links passed)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    real: list[str] = []
    links: set[str] = set()
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if not real:
                return None, links
            real.pop()
            continue
        here = "/".join([*real, part])
        item = _lookup(tree, here)
        if item is None:
            return None, links
        if item.mode != _MODE_SYMLINK:
            real.append(part)
            continue
        hops += 1
        target = item.data_stream.read().decode("utf-8", "surrogateescape")
        links.add(here)
        if hops > _MAX_LINK_HOPS or posixpath.isabs(target):
            return None, links
        parts = [p for p in target.split("/") if p not in ("", ".")] + parts
    return "/".join(real) or ".", links


def _lookup(tree: git.Tree, path: str) -> git.Blob | git.Tree | git.Submodule | None:
    if path in ("", "."):
        return tree
    try:
        item = tree / path
    except (KeyError, TypeError, AttributeError):
        return None
    return item if isinstance(item, (git.Blob, git.Tree, git.Submodule)) else None


def _outermost(paths: set[str]) -> list[str]:
    """The paths not inside another of them, sorted: a directory is written once, with all below it."""
    if "." in paths:
        return ["."]
    kept: list[str] = []
    for path in sorted(paths):
        if not any(path.startswith(f"{k}/") for k in kept):
            kept.append(path)
    return kept
