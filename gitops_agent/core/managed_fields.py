"""Who owns which field of a live object, from ``metadata.managedFields``.

The API server records, per field manager, the set of fields it last wrote (``fieldsV1``: a
trie with ``f:<name>`` for map keys, ``k:{json}`` for list items by key, ``v:<json>`` for set
values and ``i:<n>`` for indices, ``.`` for the node itself). Walking that trie next to the live
object turns it into JSON pointers, so a drifted field can be attributed to the manager that set
it, and since when.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gitops_agent.core.diff import escape_pointer
from gitops_agent.model import KubeObject


@dataclass(frozen=True)
class FieldOwner:
    manager: str
    operation: str  # Apply or Update
    time: str  # RFC 3339, when this manager last wrote any of its fields
    subresource: str = ""


def field_owners(live: KubeObject) -> dict[str, FieldOwner]:
    """JSON pointer -> its manager, for every field named in managedFields.

    When two managers share a field (both applied the same value), the most recent one wins:
    it is the one a person would ask about.
    """
    entries = (live.get("metadata") or {}).get("managedFields") or []
    owners: dict[str, FieldOwner] = {}
    for entry in sorted(entries, key=lambda e: str(e.get("time") or "")):
        owner = FieldOwner(
            manager=str(entry.get("manager", "")),
            operation=str(entry.get("operation", "")),
            time=str(entry.get("time") or ""),
            subresource=str(entry.get("subresource") or ""),
        )
        for pointer in fields_to_pointers(entry.get("fieldsV1") or {}, live):
            owners[pointer] = owner
    return owners


def owner_of(pointer: str, owners: dict[str, FieldOwner]) -> FieldOwner | None:
    """The manager of a field, or of the closest enclosing field it owns as a whole."""
    path = pointer
    while True:
        if path in owners:
            return owners[path]
        if not path or "/" not in path:
            return None
        path = path.rsplit("/", 1)[0]


def fields_to_pointers(trie: dict[str, Any], node: Any, prefix: str = "") -> Iterator[str]:
    for raw_key, child in trie.items():
        if raw_key == ".":
            yield prefix or "/"
            continue
        located = _locate(raw_key, node)
        if located is None:
            continue  # the trie names a field the object no longer has
        token, value = located
        pointer = f"{prefix}/{token}"
        if not child:
            yield pointer
        else:
            yield from fields_to_pointers(child, value, pointer)


def _locate(raw_key: str, node: Any) -> tuple[str, Any] | None:
    kind, _, rest = raw_key.partition(":")
    if kind == "f" and isinstance(node, dict):
        return escape_pointer(rest), node.get(rest)
    if not isinstance(node, list):
        return None
    if kind == "i" and rest.isdigit() and int(rest) < len(node):
        return rest, node[int(rest)]
    try:
        wanted = json.loads(rest)
    except ValueError:
        return None
    for index, item in enumerate(node):
        if kind == "k" and isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items()):
            return str(index), item
        if kind == "v" and item == wanted:
            return str(index), item
    return None
