"""Writing a promotion into YAML files people maintain by hand, changing nothing else.

Pure: text in, text out. A promotion pull request should show exactly the image or field it
promotes; reformatting a file on the way (indentation, quotes, comments, key order) would bury that
one line in noise, and reviewers of prod changes must see precisely what moves.

So files are never re-serialised. ruamel.yaml parses them only to *locate* the nodes (it keeps each
node's line and column); the edits are then made on the original text: a scalar replaced where it
stands, keeping its quote style, a key line inserted or removed. Every replaced scalar is re-read
and compared with what the parser saw, so a construct this module does not understand (a
multi-line scalar, an anchor) is refused with a message instead of being mangled.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from gitops_agent.core.diff import unescape_pointer
from gitops_agent.core.promote import (
    CONTAINER_LISTS,
    POD_SPEC_PATHS,
    ChartChange,
    FieldChange,
    ImageChange,
    ImageRef,
    identity,
)
from gitops_agent.errors import RenderError
from gitops_agent.model import ObjectKey

#: the keys of a Kustomize ``images:`` entry that name a version, in the order they are written
_VERSION_KEYS = ("newTag", "digest")


@dataclass
class _Edits:
    """Pending edits to one text: scalar replacements, then line inserts and deletions."""

    source: str
    lines: list[str]
    replace: dict[tuple[int, int], tuple[int, str]] = field(default_factory=dict)  # (line, col) -> (end, new)
    insert: dict[int, list[str]] = field(default_factory=dict)  # after line -> new lines
    delete: set[int] = field(default_factory=set)

    def set_scalar(self, line: int, col: int, expected: Any, value: Any) -> None:
        text = self.lines[line]
        end = _scalar_end(text, col, self.source, line)
        old = text[col:end]
        if _reads_as(old) != expected:
            raise RenderError(
                f"{self.source}:{line + 1}: cannot edit this value in place (multi-line, anchored or tagged); "
                "write it as a one-line scalar, or make the change by hand"
            )
        self.replace[(line, col)] = (end, _scalar(value, like=old))

    def result(self) -> str:
        lines = list(self.lines)
        for (line, col), (end, new) in self.replace.items():
            lines[line] = lines[line][:col] + new + lines[line][end:]
        for line in sorted(set(self.insert) | self.delete, reverse=True):
            added = [f"{text}\n" for text in self.insert.get(line, [])]
            kept = [] if line in self.delete else [lines[line]]
            if added and kept and not kept[0].endswith("\n"):  # the file's last line, unterminated
                kept[0] += "\n"
            lines[line : line + 1] = kept + added
        return "".join(lines)


# --- Kustomize helmCharts: ----------------------------------------------------------------------


def set_kustomize_chart_versions(
    text: str, changes: Sequence[ChartChange], *, source: str
) -> tuple[str, frozenset[str]]:
    """The kustomization with the ``version`` of each ``helmCharts`` entry a change names set to
    the source's; returns the text and the chart names it wrote."""
    doc = _load(text, source)[0] if text.strip() else None
    charts = doc.get("helmCharts") if isinstance(doc, CommentedMap) else None
    if not isinstance(charts, CommentedSeq):
        return text, frozenset()
    edits = _Edits(source, _lines(text))
    done: set[str] = set()
    for change in changes:
        for entry in charts:
            if isinstance(entry, CommentedMap) and entry.get("name") == change.name and "version" in entry:
                line, col = entry.lc.value("version")
                edits.set_scalar(line, col, entry["version"], change.version)
                done.add(change.name)
    return edits.result(), frozenset(done)


# --- Kustomize images: -------------------------------------------------------------------------


def set_kustomize_images(text: str, changes: Sequence[ImageChange], *, source: str) -> str:
    """The kustomization with each change written to its ``images:`` entry (added when missing):
    ``newTag`` and ``digest`` set to exactly what the source runs, and removed where it has none."""
    doc = _load(text, source)[0] if text.strip() else CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise RenderError(f"{source}: expected a Kustomization mapping")
    edits = _Edits(source, _lines(text))
    images = doc.get("images")
    if images is not None and not isinstance(images, CommentedSeq):
        raise RenderError(f"{source}: images: must be a list")
    entries = list(images or [])
    if images and images.fa.flow_style():
        raise RenderError(f"{source}: images: is written as a flow list ([...]); write it as a block list to promote")
    new_entries: list[ImageChange] = []
    for change in changes:
        entry = next((e for e in entries if _entry_names(e, change.name)), None)
        if entry is None:
            new_entries.append(change)
        else:
            _update_entry(edits, entry, change.to)
    if new_entries:
        _append_entries(edits, doc, images, new_entries)
    return edits.result()


def _entry_names(entry: Any, name: str) -> bool:
    """Does this ``images:`` entry decide the version of image ``name`` (as rendered)?"""
    return isinstance(entry, CommentedMap) and (entry.get("newName") or entry.get("name")) == name


def _update_entry(edits: _Edits, entry: CommentedMap, ref: ImageRef) -> None:
    wanted = {"newTag": ref.tag, "digest": ref.digest}
    kept = [k for k in entry if k not in _VERSION_KEYS or wanted.get(k)]
    anchor = max(entry.lc.key(k)[0] for k in kept)
    indent = " " * entry.lc.key(next(iter(entry)))[1]
    for key in _VERSION_KEYS:
        value = wanted[key]
        if key in entry and value:
            line, col = entry.lc.value(key)
            if str(entry[key]) != value:
                edits.set_scalar(line, col, entry[key], value)
        elif key in entry:
            line = entry.lc.key(key)[0]
            if line == entry.lc.key(next(iter(entry)))[0]:
                raise RenderError(f"{edits.source}:{line + 1}: write 'name' first in this images: entry to promote")
            edits.delete.add(line)
        elif value:
            edits.insert.setdefault(anchor, []).append(f"{indent}{key}: {_scalar(value)}")


def _append_entries(edits: _Edits, doc: CommentedMap, images: CommentedSeq | None, changes: list[ImageChange]) -> None:
    """New entries go after the last one, indented like it; a missing ``images:`` goes at the end."""
    if images:
        item_line, key_col = images.lc.item(len(images) - 1)
        dash_col = edits.lines[item_line].rindex("-", 0, key_col)
        last = _last_line(images[-1], item_line)
    else:
        if "images" in doc:  # ``images:`` or ``images: []``: replaced by the block below
            edits.delete.add(doc.lc.key("images")[0])
        if not edits.lines:
            edits.lines.append("")
        dash_col, key_col, last = 2, 4, len(edits.lines) - 1
        edits.insert.setdefault(last, []).append("images:")
    for change in changes:
        block = [f"{' ' * dash_col}-{' ' * (key_col - dash_col - 1)}name: {_scalar(change.name)}"]
        block += [
            f"{' ' * key_col}{key}: {_scalar(value)}"
            for key, value in (("newTag", change.to.tag), ("digest", change.to.digest))
            if value
        ]
        edits.insert.setdefault(last, []).extend(block)


def _last_line(node: Any, default: int) -> int:
    """The last line a block mapping's keys occupy (its values here are one-line scalars)."""
    if isinstance(node, CommentedMap) and node:
        return int(max(node.lc.key(k)[0] for k in node))
    return default


# --- plain manifests ------------------------------------------------------------------------------


def set_workload_images(text: str, changes: Sequence[ImageChange], *, source: str) -> tuple[str, dict[str, int]]:
    """The manifest stream with the promoted images written into the workloads each change names;
    returns the new text and, per image name, how many container images it changed."""
    edits = _Edits(source, _lines(text))
    counts: dict[str, int] = {}
    for doc in _load(text, source):
        if not isinstance(doc, CommentedMap):
            continue
        ident = identity(ObjectKey.of(doc))
        for change in changes:
            if ident not in {identity(k) for k in change.objects}:
                continue
            for container in _containers(doc):
                image = container.get("image")
                if isinstance(image, str) and ImageRef.parse(image).name == change.name:
                    line, col = container.lc.value("image")
                    edits.set_scalar(line, col, image, str(change.to))
                    counts[change.name] = counts.get(change.name, 0) + 1
    return edits.result(), counts


def _containers(doc: CommentedMap) -> Iterator[CommentedMap]:
    node: Any = doc
    for step in POD_SPEC_PATHS.get(str(doc.get("kind")), ("-",)):
        node = node.get(step) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping):
        return
    for list_name in CONTAINER_LISTS:
        for container in node.get(list_name) or ():
            if isinstance(container, CommentedMap):
                yield container


def set_fields(text: str, changes: Sequence[FieldChange], *, source: str) -> tuple[str, frozenset[FieldChange]]:
    """The manifest stream with each promotable field set where this file sets it; returns the new
    text and the changes it could write (a field set in no file of the overlay is the caller's to report)."""
    edits = _Edits(source, _lines(text))
    done: set[FieldChange] = set()
    for doc in _load(text, source):
        if not isinstance(doc, CommentedMap):
            continue
        ident = identity(ObjectKey.of(doc))
        for change in changes:
            if identity(change.key) == ident and _set_pointer(edits, doc, change):
                done.add(change)
    return edits.result(), frozenset(done)


def _set_pointer(edits: _Edits, doc: CommentedMap, change: FieldChange) -> bool:
    tokens = [unescape_pointer(t) for t in change.path.split("/")[1:]]
    parent: Any = doc
    for token in tokens[:-1]:
        parent = _child(parent, token)
    last = tokens[-1] if tokens else ""
    if isinstance(parent, CommentedMap) and last in parent:
        current, (line, col) = parent[last], parent.lc.value(last)
    elif isinstance(parent, CommentedSeq) and last.isdigit() and int(last) < len(parent):
        current, (line, col) = parent[int(last)], parent.lc.item(int(last))
    else:
        return False
    if isinstance(current, Mapping | list) or isinstance(change.value, Mapping | list):
        raise RenderError(f"{edits.source}: {change.key} {change.path}: only scalar fields can be promoted")
    edits.set_scalar(line, col, current, change.value)
    return True


def _child(node: Any, token: str) -> Any:
    if isinstance(node, CommentedMap):
        return node.get(token)
    if isinstance(node, CommentedSeq) and token.isdigit() and int(token) < len(node):
        return node[int(token)]
    return None


# --- scalars and text -----------------------------------------------------------------------------


def _load(text: str, source: str) -> list[Any]:
    try:
        return list(YAML(typ="rt").load_all(text))
    except YAMLError as exc:
        raise RenderError(f"{source}: not valid YAML: {exc}") from exc


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _scalar_end(text: str, col: int, source: str, line: int) -> int:
    """Where the one-line scalar starting at ``col`` ends (before any trailing comment)."""
    quote = text[col : col + 1]
    if quote == '"':
        i = col + 1
        while i < len(text) and text[i] != '"':
            i += 2 if text[i] == "\\" else 1
        return i + 1
    if quote == "'":
        i = col + 1
        while i < len(text):
            if text[i] == "'" and text[i + 1 : i + 2] != "'":
                return i + 1
            i += 2 if text[i] == "'" else 1
        return i
    if quote in ("|", ">", "&", "*", "!", "[", "{", ""):
        raise RenderError(f"{source}:{line + 1}: cannot edit this value in place; make the change by hand")
    comment = text.find(" #", col)
    end = comment if comment >= 0 else len(text.rstrip("\r\n"))
    return len(text[:end].rstrip())


def _reads_as(snippet: str) -> Any:
    """The value a one-line scalar holds, read as the parser that located it reads it."""
    try:
        return YAML(typ="safe", pure=True).load(snippet)
    except YAMLError:
        return None


def _plain_safe(value: str) -> bool:
    """Can ``value`` be written unquoted? Only if YAML 1.2 *and* 1.1 readers (Kustomize's Go YAML
    is the latter: ``yes``, ``1.10``, ``010`` are not strings there) read it back as the same string."""
    try:
        old_reader = yaml.safe_load(value)
    except yaml.YAMLError:
        return False
    return old_reader == value and _reads_as(value) == value and value == value.strip() and " #" not in value


def _scalar(value: Any, *, like: str = "") -> str:
    """``value`` as a one-line YAML scalar, quoted the way the value it replaces was (when it was)."""
    if not isinstance(value, str):
        return json.dumps(value)
    if like.startswith("'") and "\n" not in value:
        return "'" + value.replace("'", "''") + "'"
    if like.startswith('"') or not _plain_safe(value):
        return json.dumps(value)
    return value
