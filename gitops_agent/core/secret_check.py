"""Checking a Secret's values before anything is sent: ``data`` and ``stringData`` are maps of
strings, ``data``'s values base64.

The API server refuses the same mistakes, but its answer quotes the value (``got
&value.valueUnstructured{Value:12345}``), so the agent refuses them first, offline, naming the
Secret's key and the value's type, never the value. Null values are accepted (the server stores
them as empty), as is base64 broken over lines (the server's decoder skips line breaks).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping
from typing import Any

from gitops_agent.core.secret_mask import is_secret


def secret_problems(manifest: Mapping[str, Any]) -> list[str]:
    """What is wrong with a Secret's values, one line each; nothing for any other object."""
    if not is_secret(manifest):
        return []
    return [*_section_problems(manifest, "data"), *_section_problems(manifest, "stringData")]


def _section_problems(manifest: Mapping[str, Any], field: str) -> Iterator[str]:
    section = manifest.get(field)
    if section is None:
        return
    if not isinstance(section, Mapping):
        yield f"{field} must be a map of key to string, found {kind_of(section)}"
        return
    for key, value in section.items():
        if value is None:
            continue
        if not isinstance(value, str):
            yield f"{field}[{key!r}] must be a string, found {kind_of(value)} (quote it in YAML)"
        elif field == "data" and not _is_base64(value):
            yield f"data[{key!r}] is not valid base64 (use stringData for plain text)"


def kind_of(value: Any) -> str:
    """The type of a value in words, never the value itself."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, Mapping):
        return "a map"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True
