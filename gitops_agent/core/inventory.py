"""The inventory: per environment, which objects the agent applied, kept in the cluster.

Pruning is ``old inventory - new snapshot`` by set difference, never a label query alone: a label
can be copied onto an object by hand, an inventory entry can only be written by the agent. Each
entry also says whether the agent created the object or adopted one that already existed.

Stored in the agent's namespace so it survives restarts, readable with
``kubectl get configmap -n gitops-agent inventory-<env> -o yaml``, in one of two layouts:

- inline (up to ``INLINE_BYTES`` of text, about 5,000 objects): ``inventory-<env>`` holds
  ``commit``, ``objects`` (one ``group|kind|namespace|name`` a line) and ``adopted`` (the same, for
  the adopted ones). Inventories written before adoption was recorded have no ``adopted``: every
  object in them was created by the agent.
- sharded (beyond that): ``inventory-<env>`` is an index (``commit``, ``count``, ``shards``: a JSON
  list of name, digest and count) and each ``inventory-<env>-<token>-<n>`` holds a sorted run of
  the lines, gzip-compressed in ``binaryData`` (``objects.gz``, ``adopted.gz``), at most
  ``SHARD_BYTES``. A write creates new shards under a fresh token (or reuses a shard of the index
  it replaces whose digest is unchanged), then replaces the index; only the shards of the index it
  replaced are deleted afterwards, so a reader never sees an index naming shards that are not its.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import zlib
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gitops_agent.core.prepare import MANAGED_BY, MANAGED_BY_LABEL, STATE_OF_LABEL
from gitops_agent.errors import ClusterError
from gitops_agent.model import KubeObject, ObjectKey

INVENTORY_PREFIX = "inventory-"
#: an inventory whose lines fit in this stays in one plain ConfigMap (readable, and the format older
#: agents read); a ConfigMap holds 1 MiB in all
INLINE_BYTES = 256 * 1024
#: compressed bytes per shard (base64 in the request: about 683 KiB, under the 1 MiB a ConfigMap holds)
SHARD_BYTES = 512 * 1024

#: the label ``gitops-agent.io/role`` of each kind of state ConfigMap
INVENTORY_ROLE, SHARD_ROLE = "inventory", "inventory-shard"


@dataclass(frozen=True)
class ShardRef:
    """One shard as the index names it: the digest of its compressed content, and its line count."""

    name: str
    digest: str
    objects: int


@dataclass(frozen=True)
class Stored:
    """Where a record was read from: what a conditional write of it must name."""

    #: the ConfigMap's ``metadata.resourceVersion`` ("": not stored; a write creates it)
    version: str = ""
    #: the shards its index named (none when inline)
    shards: tuple[ShardRef, ...] = ()


NOT_STORED = Stored()


@dataclass(frozen=True)
class Inventory:
    commit: str
    keys: frozenset[ObjectKey]
    #: the keys whose object existed before the agent first applied it (a subset of ``keys``);
    #: the rest the agent created
    adopted: frozenset[ObjectKey] = frozenset()
    #: where it was read from; not part of its value (two equal inventories may be stored twice)
    stored: Stored = field(default=NOT_STORED, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.adopted <= self.keys:
            raise ValueError(f"adopted keys outside the inventory: {sorted(self.adopted - self.keys)[:3]}")

    @property
    def created(self) -> frozenset[ObjectKey]:
        return self.keys - self.adopted


def inventory_name(environment: str) -> str:
    return f"{INVENTORY_PREFIX}{environment}"


def state_configmap(
    name: str,
    namespace: str,
    environment: str,
    role: str,
    data: dict[str, str],
    binary: dict[str, str] | None = None,
) -> KubeObject:
    """A ConfigMap holding part of the agent's own state about one environment."""
    labels = {STATE_OF_LABEL: environment, MANAGED_BY_LABEL: MANAGED_BY, "gitops-agent.io/role": role}
    configmap: KubeObject = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": data,
    }
    if binary:
        configmap["binaryData"] = binary
    return configmap


# --- deciding what to record --------------------------------------------------------------------


def adoption(old: Inventory | None, keys: Iterable[ObjectKey], existed: Container[ObjectKey]) -> frozenset[ObjectKey]:
    """Which of ``keys`` the agent adopted: one already inventoried keeps its flag; a new one was
    adopted when it ``existed`` before this pass, else the pass creates it."""
    before = old.keys if old else frozenset()
    was_adopted = old.adopted if old else frozenset()
    return frozenset(k for k in keys if (k in was_adopted if k in before else k in existed))


def merge_inventories(ancestor: Inventory | None, ours: Inventory, theirs: Inventory | None) -> Inventory:
    """``ours`` written over ``theirs``, another writer's inventory stored since the ``ancestor`` both
    started from: what they added stays (nothing another writer tracks is lost), what we dropped of
    the ancestor stays dropped, and an object both added counts as adopted only if both say so (one
    of us created it). The result is to be written against ``theirs``' resourceVersion."""
    if theirs is None:
        return Inventory(ours.commit, ours.keys, ours.adopted)
    theirs_new = theirs.keys - (ancestor.keys if ancestor else frozenset())
    created_by_them = theirs_new - theirs.adopted
    adopted = (ours.adopted - created_by_them) | (theirs.adopted & (theirs_new - ours.keys))
    return Inventory(ours.commit, ours.keys | theirs_new, adopted, stored=theirs.stored)


def stale_keys(old: Inventory | None, new_keys: Iterable[ObjectKey]) -> frozenset[ObjectKey]:
    """What the previous apply wrote that the new snapshot no longer has."""
    if old is None:
        return frozenset()
    return old.keys - frozenset(new_keys)


# --- writing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InventoryObjects:
    """An inventory as ConfigMaps: the index, the shards to create first, every shard it names."""

    index: KubeObject
    new_shards: tuple[KubeObject, ...] = ()
    shards: tuple[ShardRef, ...] = ()


def inventory_objects(
    environment: str, namespace: str, inventory: Inventory, *, token: str, reuse: Sequence[ShardRef] = ()
) -> InventoryObjects:
    """The ConfigMaps storing ``inventory``: inline when it fits, else shards named
    ``inventory-<env>-<token>-<n>``, except those with the digest of a shard in ``reuse`` (the
    index being replaced names it, with the same content): that one is named again, not rewritten."""
    lines, adopted = _lines(inventory.keys), frozenset(_lines(inventory.adopted))
    if sum(len(line) + 1 for line in lines) + sum(len(line) + 1 for line in adopted) <= INLINE_BYTES:
        return InventoryObjects(inventory_configmap(environment, namespace, inventory))
    existing = {ref.digest: ref for ref in reuse}
    name = inventory_name(environment)
    refs: list[ShardRef] = []
    new: list[KubeObject] = []
    for n, (keys, blobs) in enumerate(_pack(lines, adopted)):
        digest = _digest(blobs)
        if digest in existing:
            refs.append(existing[digest])
            continue
        refs.append(ShardRef(f"{name}-{token}-{n}", digest, len(keys)))
        binary = {part: base64.b64encode(blob).decode() for part, blob in blobs.items()}
        new.append(state_configmap(refs[-1].name, namespace, environment, SHARD_ROLE, {}, binary))
    listing = json.dumps([{"name": r.name, "digest": r.digest, "objects": r.objects} for r in refs], indent=1)
    data = {"commit": inventory.commit, "count": str(len(inventory.keys)), "shards": listing}
    index = state_configmap(name, namespace, environment, INVENTORY_ROLE, data)
    return InventoryObjects(index, tuple(new), tuple(refs))


def inventory_configmap(environment: str, namespace: str, inventory: Inventory) -> KubeObject:
    """The inline layout: one plain ConfigMap (``objects``, and ``adopted`` when any)."""
    data = {"commit": inventory.commit, "objects": _text(_lines(inventory.keys))}
    if inventory.adopted:
        data["adopted"] = _text(_lines(inventory.adopted))
    return state_configmap(inventory_name(environment), namespace, environment, INVENTORY_ROLE, data)


def _lines(keys: Iterable[ObjectKey]) -> list[str]:
    """One line per key, sorted (as text: sorting the keys themselves is ten times slower)."""
    return sorted(k.encode() for k in keys)


def _text(lines: Iterable[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def _pack(lines: list[str], adopted: frozenset[str]) -> list[tuple[list[str], dict[str, bytes]]]:
    """Sorted runs of lines, each compressed to at most SHARD_BYTES: too big, a run is cut into as
    many even parts as its compressed size asks for (with a margin), and each part packed again."""
    blobs = {"objects.gz": _gzip(_text(lines))}
    own = [line for line in lines if line in adopted]
    if own:
        blobs["adopted.gz"] = _gzip(_text(own))
    size = sum(len(b) for b in blobs.values())
    if size <= SHARD_BYTES or len(lines) == 1:
        return [(lines, blobs)]
    parts = max(2, -(-size * 10 // (SHARD_BYTES * 9)))
    step = -(-len(lines) // parts)
    return [shard for i in range(0, len(lines), step) for shard in _pack(lines[i : i + step], adopted)]


def _gzip(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)  # mtime 0: equal content, equal bytes


def _digest(blobs: Mapping[str, bytes]) -> str:
    sha = hashlib.sha256()
    for part in sorted(blobs):
        sha.update(f"{part}:{len(blobs[part])}:".encode())
        sha.update(blobs[part])
    return f"sha256:{sha.hexdigest()}"


# --- reading ------------------------------------------------------------------------------------


class MissingShard(ClusterError):
    """A shard the index names is gone or not what the index says: the index moved on while it was
    read (read again), or the inventory is corrupt."""


def shard_names(index: KubeObject) -> tuple[str, ...]:
    """The shards an index names, to read before ``parse_inventory``; none for the inline layout."""
    return tuple(ref.name for ref in _shard_refs(index))


def parse_inventory(
    index: KubeObject | None, shards: Mapping[str, KubeObject | None] | None = None
) -> Inventory | None:
    """None when the environment was never applied. ``shards``: the ConfigMaps ``shard_names`` named."""
    if index is None:
        return None
    meta = index.get("metadata") or {}
    data = index.get("data") or {}
    refs = _shard_refs(index)
    try:
        if "shards" in data:
            keys, adopted = _read_shards(refs, shards or {}, str(meta.get("name")))
        else:
            keys = _decode(data.get("objects", ""))
            adopted = _decode(data.get("adopted", ""))
        stored = Stored(str(meta.get("resourceVersion", "")), refs)
        return Inventory(commit=str(data.get("commit", "")), keys=keys, adopted=adopted, stored=stored)
    except MissingShard:
        raise
    except ValueError as exc:
        raise ClusterError(
            f"ConfigMap/{meta.get('name')}: the inventory is corrupt ({exc}); nothing will be pruned until it is fixed"
        ) from exc


def _shard_refs(index: KubeObject) -> tuple[ShardRef, ...]:
    meta = index.get("metadata") or {}
    raw = (index.get("data") or {}).get("shards")
    if raw is None:
        return ()
    try:
        refs = tuple(ShardRef(str(r["name"]), str(r["digest"]), int(r["objects"])) for r in json.loads(raw))
    except (ValueError, TypeError, KeyError) as exc:
        raise ClusterError(
            f"ConfigMap/{meta.get('name')}: the inventory's list of shards is corrupt ({exc}); "
            "nothing will be pruned until it is fixed"
        ) from exc
    for ref in refs:
        if not ref.name.startswith(f"{meta.get('name')}-"):
            raise ClusterError(f"ConfigMap/{meta.get('name')}: the inventory names a foreign shard {ref.name!r}")
    return refs


def _read_shards(
    refs: Sequence[ShardRef], shards: Mapping[str, KubeObject | None], index: str
) -> tuple[frozenset[ObjectKey], frozenset[ObjectKey]]:
    keys: set[ObjectKey] = set()
    adopted: set[ObjectKey] = set()
    for ref in refs:
        shard = shards.get(ref.name)
        if shard is None:
            raise MissingShard(f"ConfigMap/{ref.name}, a shard of ConfigMap/{index}, is missing")
        blobs = _binary(shard)
        if _digest(blobs) != ref.digest:
            raise MissingShard(f"ConfigMap/{ref.name}, a shard of ConfigMap/{index}, is not what the index says")
        these = _decode(_gunzip(blobs.get("objects.gz", b"")))
        if len(these) != ref.objects:
            raise ValueError(f"{ref.name} holds {len(these)} objects, the index says {ref.objects}")
        keys |= these
        adopted |= _decode(_gunzip(blobs.get("adopted.gz", b"")))
    return frozenset(keys), frozenset(adopted)


def _binary(shard: KubeObject) -> dict[str, bytes]:
    raw: dict[str, Any] = shard.get("binaryData") or {}
    try:
        return {part: base64.b64decode(str(value), validate=True) for part, value in raw.items()}
    except ValueError as exc:
        raise MissingShard(f"ConfigMap/{(shard.get('metadata') or {}).get('name')}: not base64 ({exc})") from exc


def _gunzip(blob: bytes) -> str:
    if not blob:
        return ""
    try:
        return gzip.decompress(blob).decode()
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"not gzip: {exc}") from exc


def _decode(text: object) -> frozenset[ObjectKey]:
    return frozenset(ObjectKey.decode(line) for line in str(text).splitlines() if line)
