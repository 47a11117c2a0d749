"""Turning the YAML files of an environment into objects, and checking they form a snapshot.

Pure: files come in as bytes keyed by their path in the config repository, objects go out in a
deterministic order (sorted path, then document, then ``List`` item), so the same commit always
renders the same snapshot and diffs between passes are never noise from ordering.

The YAML loader is stricter than ``yaml.safe_load`` on purpose. A config repository is written by
many people and read by a process with cluster-admin-like rights, so:

- duplicate keys are refused (YAML parsers silently keep the last one, which hides mistakes such as
  two ``env:`` blocks in a container);
- alias expansion is bounded ("billion laughs"): the expanded node count of a document is computed
  before anything is constructed, and a recursive alias is refused;
- values must be what JSON can carry, because the manifest is hashed and sent to the API server as
  JSON: timestamps stay strings (as Kubernetes' own YAML reader leaves them), integer and boolean
  keys become strings (as ``sigs.k8s.io/yaml`` does), ``!!binary``/``!!set``/``!!omap`` are refused;
- files over a size limit, binary and non-UTF-8 files are refused rather than guessed at.

Every error is a :class:`RenderError` (or :class:`ValidationError` from :func:`validate_objects`)
whose message starts with the file path and, where known, the document number and line.
"""

from __future__ import annotations

import posixpath
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import yaml

from gitops_agent.core.secret_check import secret_problems
from gitops_agent.errors import RenderError, ValidationError
from gitops_agent.model import DesiredObject, KubeObject, ObjectKey

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
#: Kustomize's own files: inputs to ``kustomize build``, not objects to apply.
KUSTOMIZATION_NAMES = frozenset({"kustomization.yaml", "kustomization.yml", "Kustomization"})
#: How many problems :func:`validate_objects` lists before it says "and N more".
MAX_REPORTED_PROBLEMS = 20


@dataclass(frozen=True)
class ParseLimits:
    """Bounds that keep one bad file from exhausting the agent's memory or time.

    ``max_nodes`` counts YAML nodes *after* alias expansion, per document: a plain 5 MiB manifest
    has well under a million nodes, a "billion laughs" document has ~10^9.
    """

    max_file_bytes: int = 5 * 1024 * 1024
    max_nodes: int = 1_000_000


DEFAULT_LIMITS = ParseLimits()


def is_manifest_path(path: str) -> bool:
    """Whether a file of a plain-YAML environment holds objects (kustomization files do not)."""
    name = posixpath.basename(path)
    return name not in KUSTOMIZATION_NAMES and name.lower().endswith(MANIFEST_SUFFIXES)


def parse_manifests(files: Mapping[str, bytes], *, limits: ParseLimits = DEFAULT_LIMITS) -> list[DesiredObject]:
    """Every object in the manifest files, in sorted-path then document order.

    ``files`` maps a path (as shown to people) to its content; paths that are not manifests (see
    :func:`is_manifest_path`) are ignored, so a caller can pass a whole directory.
    """
    objects: list[DesiredObject] = []
    for path in sorted(files):
        if is_manifest_path(path):
            objects.extend(parse_stream(files[path], path, limits=limits))
    return objects


def parse_stream(data: bytes, source: str, *, limits: ParseLimits = DEFAULT_LIMITS) -> list[DesiredObject]:
    """The objects of one multi-document YAML (or JSON) stream; ``source`` names it in errors."""
    if len(data) > limits.max_file_bytes:
        raise RenderError(
            f"{source}: file is {len(data)} bytes, over the limit of {limits.max_file_bytes}; "
            "split it into smaller files"
        )
    return _objects(_load_documents(_decode(data, source), source, limits), source)


def parse_stream_file(stream: IO[bytes], source: str, *, limits: ParseLimits = DEFAULT_LIMITS) -> list[DesiredObject]:
    """As :func:`parse_stream`, from an open binary file whose size the caller has capped:
    libyaml reads it in chunks and each document's nodes are dropped once built, so neither the
    bytes nor the text of the whole stream are held (libyaml refuses NUL and invalid UTF-8 itself)."""
    return _objects(_load_documents(stream, source, limits), source)


def load_documents(data: bytes, source: str, *, limits: ParseLimits = DEFAULT_LIMITS) -> list[Any]:
    """The non-empty documents of a YAML file (a kustomization, a plugin config), strictly loaded."""
    if len(data) > limits.max_file_bytes:
        raise RenderError(f"{source}: file is {len(data)} bytes, over the limit of {limits.max_file_bytes}")
    return [doc for _, _, doc in _load_documents(_decode(data, source), source, limits)]


def _objects(loaded: Iterator[tuple[int, int, Any]], source: str) -> list[DesiredObject]:
    documents = list(loaded)
    numbered = len(documents) > 1
    objects: list[DesiredObject] = []
    for number, line, doc in documents:
        objects.extend(_objects_of(doc, source, number if numbered else None, line))
    return objects


def validate_objects(objects: Sequence[DesiredObject]) -> None:
    """Refuse a snapshot with an object lacking apiVersion, kind or metadata.name, with duplicates,
    or with a Secret whose values are not strings (``core.secret_check``).

    All problems are reported at once (up to :data:`MAX_REPORTED_PROBLEMS`), so a person fixes a
    broken commit in one go. Duplicates are judged before namespace defaulting, which happens later
    with API discovery; the engine checks again after it.
    """
    problems = [p for obj in objects for p in _object_problems(obj)]
    problems.extend(_duplicate_problems(objects))
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        tail = f"\n(and {more} more)" if more else ""
        raise ValidationError("\n".join(shown) + tail)


# --- decoding -------------------------------------------------------------------------------


def _decode(data: bytes, source: str) -> str:
    """UTF-8 text, or a RenderError: binary files are a mistake in a manifest directory."""
    if b"\x00" in data:
        raise RenderError(f"{source}: binary file (contains NUL bytes), not a YAML manifest")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RenderError(f"{source}: not valid UTF-8 at line {line} (byte {exc.start}); save it as UTF-8") from exc


def _load_documents(text: str | IO[bytes], source: str, limits: ParseLimits) -> Iterator[tuple[int, int, Any]]:
    """(document number, first line, data) for each non-empty document, numbered from 1."""
    loader = _StrictLoader(text)
    loader.max_nodes = limits.max_nodes
    number = 0
    try:
        while loader.check_node():
            number += 1
            node = loader.get_node()
            data = loader.construct_document(node)
            if data is not None:
                yield number, node.start_mark.line + 1, data
    except yaml.MarkedYAMLError as exc:
        raise RenderError(f"{source}: {_describe(exc, number)}") from exc
    except yaml.YAMLError as exc:
        raise RenderError(f"{source}: document {number}: invalid YAML: {exc}") from exc
    finally:
        loader.dispose()


def _describe(exc: yaml.MarkedYAMLError, number: int) -> str:
    """``document 2, line 7, column 3: found duplicate key 'env'`` from a YAML error."""
    mark = exc.problem_mark or exc.context_mark
    where = f"document {max(number, 1)}"
    if mark is not None:
        where += f", line {mark.line + 1}, column {mark.column + 1}"
    what = "; ".join(str(p) for p in (exc.context, exc.problem) if p)
    return f"{where}: {what or 'invalid YAML'}"


# --- the strict loader ------------------------------------------------------------------------

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """SafeLoader (libyaml when present) refusing duplicate keys, alias bombs and non-JSON values."""

    max_nodes = DEFAULT_LIMITS.max_nodes

    def construct_document(self, node: yaml.Node) -> Any:
        _check_expansion(node, self.max_nodes)
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[str, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping, found {type(node).__name__}", node.start_mark
            )
        self._refuse_duplicate_keys(node)
        self.flatten_mapping(node)  # merge keys (<<) first, so explicit keys win
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            mapping[self._json_key(key_node)] = self.construct_object(value_node, deep=deep)
        return mapping

    def _refuse_duplicate_keys(self, node: yaml.MappingNode) -> None:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self._json_key(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (YAML would silently keep the last one); keep one",
                    key_node.start_mark,
                )
            seen.add(key)

    def _json_key(self, key_node: yaml.Node) -> str:
        key = self.construct_object(key_node, deep=True)
        if isinstance(key, str):
            return key
        if isinstance(key, bool):
            return "true" if key else "false"
        if isinstance(key, int):
            return str(key)
        raise yaml.constructor.ConstructorError(
            None, None, f"mapping key {key!r} is not a string; quote it", key_node.start_mark
        )

    def _construct_timestamp_as_text(self, node: yaml.Node) -> str:
        return str(self.construct_scalar(node))

    def _refuse_non_json(self, node: yaml.Node) -> None:
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.tag} values cannot be sent to Kubernetes (JSON); use a string", node.start_mark
        )


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _StrictLoader._construct_timestamp_as_text)
for _tag in ("binary", "set", "omap", "pairs"):
    _StrictLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _StrictLoader._refuse_non_json)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: yaml.Node, limit: int) -> None:
    """Refuse a document whose aliases expand past ``limit`` nodes, or refer to themselves.

    Sizes are memoized per node, so the check costs the number of *distinct* nodes even when the
    expanded document would be astronomically large. Iterative, so deep nesting cannot overflow
    the Python stack.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            size = 1 + sum(sizes[id(c)] for c in _children(node))
            if size > limit:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"aliases expand this document past {limit} nodes; refusing it (a YAML bomb?)",
                    node.start_mark,
                )
            sizes[key] = size
        elif key not in sizes:
            if key in on_path:
                raise yaml.constructor.ConstructorError(
                    None, None, "an alias refers to the node that contains it", node.start_mark
                )
            on_path.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in _children(node) if id(c) not in sizes)


# --- documents to objects ---------------------------------------------------------------------


def _objects_of(doc: Any, source: str, number: int | None, line: int) -> Iterator[DesiredObject]:
    """One object per mapping document; the items of a ``kind: List`` expanded in order.

    An object's source is the file, plus the document number when the file has several and the
    item number inside a List: ``apps/web.yaml (document 2, List item 3)``.
    """
    where = _source(source, number)
    if not isinstance(doc, dict):
        raise RenderError(
            f"{where}: line {line}: expected a Kubernetes object (a mapping with apiVersion, kind and "
            f"metadata), found {_type_name(doc)}"
        )
    if doc.get("kind") != "List":
        yield _desired(doc, where)
        return
    items = doc.get("items")
    if items is None:
        return
    if not isinstance(items, list):
        raise RenderError(f"{where}: line {line}: kind List needs 'items' to be a list, found {_type_name(items)}")
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise RenderError(f"{where}: line {line}: List item {index} is {_type_name(item)}, not an object")
        yield _desired(item, _source(source, number, index))


def _source(path: str, number: int | None, item: int | None = None) -> str:
    details = ([f"document {number}"] if number else []) + ([f"List item {item}"] if item else [])
    return f"{path} ({', '.join(details)})" if details else path


def _desired(manifest: KubeObject, source: str) -> DesiredObject:
    """The object with its key; a malformed metadata yields an empty key, reported by validation."""
    meta = manifest.get("metadata")
    safe = manifest if isinstance(meta, dict) else {k: v for k, v in manifest.items() if k != "metadata"}
    return DesiredObject(key=ObjectKey.of(safe), manifest=manifest, source=source)


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    return f"a {type(value).__name__} ({value!r})"


# --- validation -------------------------------------------------------------------------------


def _object_problems(obj: DesiredObject) -> Iterator[str]:
    manifest = obj.manifest
    for field in ("apiVersion", "kind"):
        value = manifest.get(field)
        if not isinstance(value, str) or not value:
            yield f"{obj.source}: missing {field} (every object needs apiVersion, kind and metadata.name)"
    meta = manifest.get("metadata")
    if not isinstance(meta, dict):
        yield f"{obj.source}: missing metadata (with at least a name)"
        return
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        yield f"{obj.source}: {obj.key.kind or 'object'} has no metadata.name (generateName is not supported)"
    namespace = meta.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        yield f"{obj.source}: metadata.namespace must be a string, found {_type_name(namespace)}"
    yield from (f"{obj.source}: {obj.key}: {problem}" for problem in secret_problems(manifest))


def _duplicate_problems(objects: Sequence[DesiredObject]) -> Iterator[str]:
    first: dict[Hashable, DesiredObject] = {}
    for obj in objects:
        if not obj.key.kind or not obj.key.name:
            continue  # already reported as incomplete
        if obj.key in first:
            yield f"{obj.key} is defined twice: in {first[obj.key].source} and in {obj.source}; keep one"
        else:
            first[obj.key] = obj
