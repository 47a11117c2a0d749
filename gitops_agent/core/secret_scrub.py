"""Scrubbing a Secret's values out of text written about it (an API error, above all).

The API server echoes what it was sent in some errors (``.stringData.pin: expected string, got
&value.valueUnstructured{Value:12345}``), and admission webhooks or policies may quote any field;
that text then travels to logs, ``/status``, the ledger, commit statuses and the CLI. So text
about a Secret is scrubbed by the values of the object itself: each value, in every form the
server or a webhook may print it (as written, base64, decoded, JSON- or Go-quoted), becomes
``***``. Values shorter than ``MIN_ANYWHERE`` characters are replaced only where they stand alone
(a value ``1`` must not turn ``v1`` into ``v***``). The server's own echo of a mistyped field is
also cut by its shape, whatever it holds.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from gitops_agent.core.secret_mask import LAST_APPLIED, MASK, is_secret

#: forms at least this long are replaced wherever they occur; shorter ones only as whole tokens
MIN_ANYWHERE = 4
# the typed-patch echo of a field of the wrong type: "expected string, got &value...{Value:…}"
_ECHO = re.compile(r"(expected [^,\n]*, got ).*$", re.MULTILINE)


def scrub_secret_values(text: str, *objects: Mapping[str, Any] | None) -> str:
    """``text`` without any value of the Secrets among ``objects`` (others are ignored)."""
    secrets = [o for o in objects if o is not None and is_secret(o)]
    if not secrets:
        return text
    forms = {f for o in secrets for f in secret_forms(o) if f}
    for form in sorted(forms, key=len, reverse=True):  # longest first: a value inside another stays hidden
        text = _replace(text, form)
    return _ECHO.sub(rf"\1{MASK}", text)


def secret_forms(obj: Mapping[str, Any]) -> set[str]:
    """Every text form of every value the Secret holds: ``data``, ``stringData`` and kubectl's
    last-applied annotation (and the values of the object it embeds)."""
    forms: set[str] = set()
    for value in _values(obj.get("data")):
        forms |= _data_forms(value)
    for value in _values(obj.get("stringData")):
        forms |= _text_forms(value)
    forms |= _embedded_forms(obj)
    return forms


def _replace(text: str, form: str) -> str:
    if len(form) >= MIN_ANYWHERE:
        return text.replace(form, MASK)
    return re.sub(rf"(?<![A-Za-z0-9+/=._-]){re.escape(form)}(?![A-Za-z0-9+/=._-])", MASK, text)


def _values(section: Any) -> Iterator[Any]:
    """The scalars a ``data``/``stringData`` section holds, whatever its shape. Its own keys are the
    Secret's keys (shown everywhere); keys of a map nested in a value are part of that value."""
    if isinstance(section, Mapping):
        for value in section.values():
            yield from _scalars(value)
    else:
        yield from _scalars(section)


def _scalars(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield k
            yield from _scalars(v)
    elif isinstance(value, list):
        for item in value:
            yield from _scalars(item)
    elif value is not None:
        yield value


def _data_forms(value: Any) -> set[str]:
    """A ``data`` value (base64 when well formed): as written, and decoded."""
    forms = _text_forms(value)
    if isinstance(value, str):
        try:
            decoded = base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True)
        except (binascii.Error, ValueError):
            return forms
        forms |= _quoted(decoded.decode("utf-8", errors="replace"))
    return forms


def _text_forms(value: Any) -> set[str]:
    """A value as written, as JSON and Python print it, and its base64 (how ``data`` stores it)."""
    text = value if isinstance(value, str) else json.dumps(value)
    forms = _quoted(text) | {str(value)}
    forms.add(base64.b64encode(text.encode()).decode())
    return forms


def _quoted(text: str) -> set[str]:
    """The text, and as JSON (``\\n``, ``\\"``) and Go's ``%q`` would escape it inside quotes."""
    return {text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}


def _embedded_forms(obj: Mapping[str, Any]) -> set[str]:
    """kubectl's last-applied annotation: the whole text, and each value of the object it holds."""
    meta = obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    embedded = annotations.get(LAST_APPLIED) if isinstance(annotations, Mapping) else None
    if not isinstance(embedded, str):
        return set()
    forms = _quoted(embedded)
    try:
        inner = json.loads(embedded)
    except ValueError:
        return forms
    if isinstance(inner, dict):
        forms |= secret_forms({**inner, "metadata": {}})
    return forms
