"""Comparing desired and live objects: pure functions over plain dicts.

Two comparisons, used in this order (as Flux's ssa package does, but cheaper in steady state):

1. ``covers(desired, live)``: is every field the manifest sets already present, equal, in the live
   object? A yes is conclusive: applying would change nothing we own. Because each applied object
   carries the hash of its rendered manifest, a field removed from the manifest also changes the
   hash, so "covers" cannot miss a removal.
2. When the local compare says no, it may still be noise (server defaults, ``1000m`` == ``1``), so
   the caller asks the server for a server-side apply dry-run and ``changed_paths(live, dry_run)``
   says what would really change.

Secret values never leave this module unmasked: ``mask_secret`` replaces them (where
``core.secret_mask`` says they live) before any diff is rendered, keeping only whether each key changed.
"""

from __future__ import annotations

import base64
import copy
import difflib
from collections.abc import Iterator
from typing import Any

import yaml

from gitops_agent.core.secret_mask import MASK, SECRET_PLACES, child, is_secret, mask_object
from gitops_agent.model import KubeObject

#: metadata the API server owns; never part of an intent, never a change
SERVER_METADATA = (
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


def normalize(obj: KubeObject) -> KubeObject:
    """A copy without status and server-owned metadata: what a diff should look at."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for key in SERVER_METADATA:
            meta.pop(key, None)
        for key in ("annotations", "labels"):
            if meta.get(key) == {}:
                meta.pop(key)
    return out


def covers(desired: Any, live: Any) -> bool:
    """True when every field set in ``desired`` has the same value in ``live``.

    Lists must match in length and element by element (maps inside lists are compared as
    subsets again), which is conservative: a list the server reorders or extends reads as
    "not covered", and the caller then asks the server.
    """
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        return all(k in live and covers(v, live[k]) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return False
        return all(covers(d, v) for d, v in zip(desired, live, strict=True))
    return bool(desired == live and type(desired) is type(live))


def changed_paths(before: Any, after: Any, prefix: str = "") -> list[str]:
    """JSON pointers of every leaf that differs between two (normalized) objects, sorted."""
    return sorted(_walk_changes(before, after, prefix))


def _walk_changes(before: Any, after: Any, prefix: str) -> Iterator[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after), key=str):
            path = f"{prefix}/{escape_pointer(str(key))}"
            if key not in before or key not in after:
                yield path
            else:
                yield from _walk_changes(before[key], after[key], path)
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            yield from _walk_changes(b, a, f"{prefix}/{i}")
    elif before != after or type(before) is not type(after):
        yield prefix or "/"


def escape_pointer(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def unescape_pointer(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def pointer_get(obj: Any, pointer: str) -> tuple[bool, Any]:
    """(found, value) at a JSON pointer."""
    node = obj
    for raw in pointer.split("/")[1:]:
        token = unescape_pointer(raw)
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False, None
    return True, node


def pointer_remove(obj: Any, pointer: str) -> bool:
    """Remove the value at a JSON pointer in place; False when it was not there."""
    tokens = [unescape_pointer(t) for t in pointer.split("/")[1:]]
    if not tokens:
        return False
    found, parent = pointer_get(obj, "/" + "/".join(escape_pointer(t) for t in tokens[:-1]))
    last = tokens[-1]
    if found and isinstance(parent, dict) and last in parent:
        del parent[last]
        return True
    if found and isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
        return True
    return False


def mask_secret(before: KubeObject | None, after: KubeObject | None) -> tuple[KubeObject | None, KubeObject | None]:
    """Copies of a Secret pair with every value replaced (``core.secret_mask``): same values read
    ``***``, changed ones ``*** (before)`` / ``*** (after)``, so a diff shows which keys changed and
    never what they hold. Anything that is not a Secret is returned as is."""
    if not (is_secret(before) or is_secret(after)):
        return before, after
    old, new = _stored_values(before), _stored_values(after)
    return _tagged(before, old, new, "before"), _tagged(after, new, old, "after")


def _tagged(obj: KubeObject | None, mine: dict[str, Any], theirs: dict[str, Any], tag: str) -> KubeObject | None:
    if obj is None:
        return None

    def show(pointer: str, value: Any) -> Any:
        if value is None:
            return None
        where = _stored_pointer(pointer)
        return MASK if mine.get(where) == theirs.get(where) else f"{MASK} ({tag})"

    masked: KubeObject = mask_object(obj, show)
    return masked


def _stored_values(obj: KubeObject | None) -> dict[str, Any]:
    """Each value a Secret holds, by where the server keeps it: ``stringData`` folded into
    ``data`` (base64), so the two compare; a section that is not a map, as it is."""
    if obj is None:
        return {}
    values: dict[str, Any] = {}
    for field in ("data", "stringData"):
        section = obj.get(field)
        if isinstance(section, dict):
            for k, v in section.items():
                values[child("/data", k)] = _base64(v) if field == "stringData" else v
        elif section is not None:
            values[f"/{field}"] = section
    values[SECRET_PLACES[-1]] = pointer_get(obj, SECRET_PLACES[-1])[1]
    return values


def _stored_pointer(pointer: str) -> str:
    return "/data/" + pointer.removeprefix("/stringData/") if pointer.startswith("/stringData/") else pointer


def _base64(value: Any) -> str:
    return base64.b64encode(str(value).encode()).decode()


def to_yaml(obj: KubeObject | None) -> str:
    if obj is None:
        return ""
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, allow_unicode=True)


def unified_diff(label: str, before: KubeObject | None, after: KubeObject | None) -> str:
    """A ``kubectl diff``-style unified diff of two normalized objects, Secret values masked."""
    b, a = mask_secret(before, after)
    lines = difflib.unified_diff(
        to_yaml(b).splitlines(keepends=True),
        to_yaml(a).splitlines(keepends=True),
        fromfile=f"live/{label}",
        tofile=f"desired/{label}",
    )
    return "".join(lines)
