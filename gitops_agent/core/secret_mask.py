"""Where a Secret keeps its values, and hiding them by place, whatever shape the object has.

Masking is structural: a value is hidden because of *where* it sits in a Secret, never because of
what it looks like. The places (``SECRET_PLACES``) are ``data``, ``stringData`` and kubectl's
``last-applied-configuration`` annotation (which embeds the whole object, values included).
Anything at or under one of them becomes ``***``; a map there keeps its keys (so people still see
which keys changed); a value of any other shape (a list, a number, text where a map belongs) is
hidden whole; and a value *above* them (the whole object, its metadata, its annotations) is walked
down into, so a whole ``data`` map that appears or disappears is hidden too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gitops_agent.model import ObjectKey

#: what every output shows instead of a Secret's value
MASK = "***"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: JSON pointers into a Secret under which values live (``/`` in a key is ``~1`` in a pointer)
SECRET_PLACES = ("/data", "/stringData", "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration")

#: (pointer, value) -> what to show instead, for a value at or under a Secret's place
Placeholder = Callable[[str, Any], Any]


def is_secret(obj: Mapping[str, Any] | None) -> bool:
    return obj is not None and obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1"


def is_secret_key(key: ObjectKey) -> bool:
    return key.kind == "Secret" and key.group == ""


def in_secret_place(pointer: str) -> bool:
    """Is this pointer (into a Secret) at or under a place that holds values?"""
    return any(pointer == p or pointer.startswith(p + "/") for p in SECRET_PLACES)


def above_secret_place(pointer: str) -> bool:
    """Does a place that holds values lie strictly below this pointer (``/`` and ``""`` are the root)?"""
    root = pointer.rstrip("/")
    return any(p.startswith(root + "/") for p in SECRET_PLACES)


def plain(_pointer: str, value: Any) -> Any:
    """The default placeholder: ``***``, or nothing when there is nothing (a removed field)."""
    return None if value is None else MASK


def mask_at(pointer: str, value: Any, placeholder: Placeholder = plain) -> Any:
    """``value``, found at ``pointer`` in a Secret, with every value it holds hidden (a copy where
    anything changed; the value itself when nothing lies in a Secret's place)."""
    if in_secret_place(pointer):
        if isinstance(value, dict) and pointer in SECRET_PLACES:
            return {k: placeholder(child(pointer, k), v) for k, v in value.items()}
        return placeholder(pointer, value)
    if isinstance(value, dict) and above_secret_place(pointer):
        return {k: mask_at(child(pointer, k), v, placeholder) for k, v in value.items()}
    return value


def mask_object(obj: Any, placeholder: Placeholder = plain) -> Any:
    """A whole Secret (or anything shaped like one) with its values hidden."""
    return mask_at("", obj, placeholder)


def child(pointer: str, key: object) -> str:
    # RFC 6901 escaping, so "a/b" keys cannot be mistaken for a deeper place
    token = str(key).replace("~", "~0").replace("/", "~1")
    return f"{pointer.rstrip('/')}/{token}"
