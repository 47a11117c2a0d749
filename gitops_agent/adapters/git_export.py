"""Writing the tree of one commit into a directory, refusing what could reach outside it.

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

from gitops_agent.errors import RenderError

_MODE_SYMLINK = 0o120000
_MODE_GITLINK = 0o160000
_MODE_TREE = 0o040000

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
