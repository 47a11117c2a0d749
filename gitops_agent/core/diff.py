"""Comparing desired and live objects: pure functions over plain dicts.

Two comparisons, used in this order (as Flux's ssa package does, but cheaper in steady state):

1. ``covers(desired, live)``: is every field the manifest sets already present, equal, in the live
   object? A yes is conclusive: applying would change nothing we own. Because each applied object
   carries the hash of its rendered manifest, a field removed from the manifest also changes the
   hash, so "covers" cannot miss a removal.
2. When the local compare says no, it may still be noise (server defaults, ``1000m`` == ``1``), so
   the caller asks the server for a server-side apply dry-run and ``changed_paths(live, dry_run)``
   says what would really change.

Secret values never leave this module unmasked: ``mask_secret`` replaces them before any diff is
rendered, keeping only whether each key changed.
"""

from __future__ import annotations

import base64
import copy
import difflib
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

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
MASK = "***"


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


def is_secret(obj: Mapping[str, Any] | None) -> bool:
    return obj is not None and obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1"


def mask_secret(before: KubeObject | None, after: KubeObject | None) -> tuple[KubeObject | None, KubeObject | None]:
    """Copies of a Secret pair with every value replaced: same values read ``***``, changed ones
    ``*** (before)`` / ``*** (after)``, so a diff shows which keys changed and never what they hold.
    Anything that is not a Secret is returned as is."""
    if not (is_secret(before) or is_secret(after)):
        return before, after
    b = copy.deepcopy(before) if before is not None else None
    a = copy.deepcopy(after) if after is not None else None
    old = _secret_values(before)
    new = _secret_values(after)
    for side, values, tag in ((b, new, "before"), (a, old, "after")):
        if side is None:
            continue
        for field in ("data", "stringData"):
            section = side.get(field)
            if isinstance(section, dict):
                mine = _secret_values(side)
                side[field] = {k: MASK if values.get(k) == mine.get(k) else f"{MASK} ({tag})" for k in sorted(section)}
        annotations = (side.get("metadata") or {}).get("annotations") or {}
        if "kubectl.kubernetes.io/last-applied-configuration" in annotations:
            annotations["kubectl.kubernetes.io/last-applied-configuration"] = MASK
    return b, a


def _secret_values(obj: KubeObject | None) -> dict[str, Any]:
    """Values by key, ``stringData`` folded into ``data`` terms so the two compare."""
    if not obj:
        return {}
    values: dict[str, Any] = dict(obj.get("data") or {})
    for k, v in (obj.get("stringData") or {}).items():
        values[k] = base64.b64encode(str(v).encode()).decode()
    return values


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
