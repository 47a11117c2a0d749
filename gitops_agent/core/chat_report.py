"""Words for people in chat: drift reports for Slack and a generic webhook, rendered from a pass's
drift, and the Block Kit helpers the other chat messages share (failures: ``core.chat_failure``;
the digest: ``core.chat_digest``; what was told: ``core.chat_memory``). Pure functions only (no
I/O, no clock): ``gitops_agent.adapters.chat`` sends what they return.

Chat speaks about **unexpected** drift only. Expected drift (an HPA moving ``/spec/replicas``) is
the cluster working as designed; it changes every few minutes and would teach people to mute the
channel. ``decide_chat`` turns the drift of each pass into at most one message when drift appears
(or changes) and one when it is resolved, by comparing fingerprints of the unexpected drift.

Untrusted text (anything from git or the cluster: names, field managers, values, error texts
quoting manifests) reaches Slack only escaped (``esc``: ``&``, ``<``, ``>``, so no ``<!channel>``,
``<@U123>`` or ``<https://…|link>`` survives) and, where it is free text, inside a code span or
block it cannot leave (``code``, ``code_block``: no backtick, no line break in a span). The
``text`` fallback is escaped too; generic webhook payloads carry the text as it is (JSON).

Secret values never leave this module: every builder first runs ``mask_secret_values``, which
replaces each value of a ``v1 Secret`` with ``(secret value changed)`` (the drift detector masks
already; this is the second lock on the same door).

Generic webhook payload (``generic_webhook_payload``), JSON with these stable names::

    {
      "schema": "gitops-agent.drift/v1",   constant; bumped only on an incompatible change
      "event": "drift.appeared" | "drift.resolved",
      "environment": "prod",
      "commit": "<sha of the applied snapshot>",
      "fingerprint": "<sha256 hex of the unexpected drift>" | null (on drift.resolved),
      "text": "one line a person can read",
      "target_url": "<link to details>" | null,
      "counts": {"objects": <unexpected objects>, "fields": <unexpected fields>,
                 "expected_fields": <fields drifted as expected, not listed>},
      "objects": [                          at most 100; the rest counted in "omitted_objects"
        {"group": "apps", "kind": "Deployment", "namespace": "shop", "name": "api",
         "change": "changed" | "missing" | "unexpected-object",
         "fields": [                        unexpected fields; at most 50, rest in "omitted_fields"
           {"path": "/spec/replicas", "manager": "kubectl-edit", "since": "2024-05-01T10:00:00Z",
            "old": 3, "new": 5}],           old: the value from git; new: the live value (null: gone)
         "omitted_fields": 0}],
      "omitted_objects": 0
    }
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from gitops_agent.core.chat_memory import News, decide
from gitops_agent.core.drift import EXTRA, MISSING, DriftedField, ObjectDrift
from gitops_agent.core.report import ELLIPSIS, cut, objects_word
from gitops_agent.model import ObjectKey

#: what a chat message or payload shows instead of any value of a Secret
SECRET_CHANGED = "(secret value changed)"
WEBHOOK_SCHEMA = "gitops-agent.drift/v1"

# Slack Block Kit limits (https://api.slack.com/reference/block-kit)
SLACK_HEADER_LIMIT = 150
SLACK_SECTION_LIMIT = 3000
SLACK_FIELD_LIMIT = 2000
SLACK_MAX_FIELDS = 10
SLACK_MAX_BLOCKS = 50
#: objects listed in one chat message; more would be a wall nobody reads (the rest are counted)
SLACK_MAX_OBJECTS = 20
#: one value in a chat line; the full value is in git and in ``gitops-agent drift``
VALUE_LIMIT = 120
WEBHOOK_MAX_OBJECTS = 100
WEBHOOK_MAX_FIELDS = 50
WEBHOOK_VALUE_LIMIT = 2000

ChatKind = Literal["appeared", "resolved"]


# --- drift for chat -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftSummary:
    """The drift of one environment at one pass (``core.drift.detect_drift``'s objects), with what
    a message needs around it: what the chat adapters are given."""

    environment: str
    commit: str
    objects: tuple[ObjectDrift, ...] = ()
    target_url: str | None = None

    @property
    def unexpected(self) -> tuple[ObjectDrift, ...]:
        """Missing and extra objects are always unexpected; a changed one when any field is."""
        return tuple(o for o in self.objects if not o.expected)

    @property
    def expected_fields(self) -> int:
        return sum(1 for o in self.objects for f in o.fields if f.expected)


@dataclass(frozen=True)
class ChatMessage:
    """One piece of news for every destination: a Slack payload and a generic webhook payload;
    ``what`` names it in log lines (never a value)."""

    what: str
    slack: dict[str, Any]
    webhook: dict[str, Any]


def drift_message(summary: DriftSummary, kind: ChatKind) -> ChatMessage:
    return ChatMessage(
        f"drift {kind} in {summary.environment}", slack_message(summary, kind), generic_webhook_payload(summary, kind)
    )


@dataclass(frozen=True)
class ChatDecision:
    """What to send for this pass, and the fingerprint to remember once it is sent (None: no
    unexpected drift now)."""

    send: ChatKind | None
    fingerprint: str | None


def is_secret_key(key: ObjectKey) -> bool:
    return key.kind == "Secret" and key.group == ""


def mask_secret_values(summary: DriftSummary) -> DriftSummary:
    """A copy in which no value of a Secret can appear: each becomes ``(secret value changed)``."""
    objects = tuple(_mask_object(o) if is_secret_key(o.key) else o for o in summary.objects)
    return replace(summary, objects=objects)


def _mask_object(obj: ObjectDrift) -> ObjectDrift:
    fields = tuple(replace(f, desired=SECRET_CHANGED, live=SECRET_CHANGED) for f in obj.fields)
    return replace(obj, fields=fields)


def drift_fingerprint(summary: DriftSummary) -> str:
    """sha256 of the unexpected drift: which objects, fields and values (never times or managers,
    so the same drift seen again gives the same fingerprint; never a Secret's value)."""
    masked = mask_secret_values(summary)
    state = [
        [
            o.key.encode(),
            o.state,
            sorted([f.path, _canonical(f.desired), _canonical(f.live)] for f in o.unexpected_fields),
        ]
        for o in masked.unexpected
    ]
    text = json.dumps([masked.environment, sorted(state)], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def decide_chat(previous_fingerprint: str | None, current: DriftSummary) -> ChatDecision:
    """One message when unexpected drift appears (or changes), one when it is gone, none while it
    stays the same. ``previous_fingerprint`` is what the last decision said to remember."""
    now = drift_fingerprint(current) if current.unexpected else None
    news = decide(previous_fingerprint, now)
    return ChatDecision(None if news is None else drift_kind(news), now)


def drift_kind(news: News) -> ChatKind:
    """Drift's words for news: it appeared (or changed), or it was resolved."""
    return "resolved" if news == "resolved" else "appeared"


# --- Slack ----------------------------------------------------------------------------------------


def slack_message(summary: DriftSummary, kind: ChatKind = "appeared") -> dict[str, Any]:
    """A Slack incoming-webhook payload (Block Kit ``blocks`` plus the ``text`` fallback shown in
    notifications), within Slack's limits however large the drift: the rest is "…and N more"."""
    masked = mask_secret_values(summary)
    if kind == "resolved":
        return _slack_resolved(masked)
    return _slack_appeared(masked)


def drift_text(s: DriftSummary, kind: ChatKind) -> str:
    """The one line a person reads (plain text: escape it for Slack)."""
    if kind == "resolved":
        return f"Drift in {s.environment} resolved: live objects match commit {short(s.commit)} again"
    return (
        f"Unexpected drift in {s.environment}: {objects_word(len(s.unexpected))} changed outside git "
        f"since commit {short(s.commit)}"
    )


def _slack_resolved(s: DriftSummary) -> dict[str, Any]:
    text = esc(drift_text(s, "resolved"))
    body = f"Live objects in *{esc(s.environment)}* match commit `{short(s.commit)}` again."
    blocks = [header(f"✅ Drift in {s.environment} resolved"), section(body + link(s.target_url))]
    return {"text": text, "blocks": blocks}


def _slack_appeared(s: DriftSummary) -> dict[str, Any]:
    unexpected = s.unexpected
    fields = sum(len(o.unexpected_fields) for o in unexpected)
    text = esc(drift_text(s, "appeared"))
    facts = {
        "Environment": esc(s.environment),
        "Commit": f"`{short(s.commit)}`",
        "Objects": str(len(unexpected)),
        "Fields": str(fields),
    }
    blocks: list[dict[str, Any]] = [
        header(f"⚠️ Drift in {s.environment}: {objects_word(len(unexpected))} changed outside git"),
        section(f"Live objects in *{esc(s.environment)}* no longer match git.{link(s.target_url)}", facts),
    ]
    shown = unexpected[:SLACK_MAX_OBJECTS]
    blocks += [section(_object_text(o)) for o in shown]
    notes = []
    if len(unexpected) > len(shown):
        notes.append(f"…and {len(unexpected) - len(shown)} more objects")
    if s.expected_fields:
        notes.append(f"{s.expected_fields} field(s) drifted as expected (allowed controllers), not listed")
    if notes:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": esc(". ".join(notes))}]})
    return {"text": text, "blocks": blocks[:SLACK_MAX_BLOCKS]}


def _object_text(obj: ObjectDrift) -> str:
    """``*Kind/ns/name* — what happened`` and one line per unexpected field, as many as fit."""
    title = f"*{esc(str(obj.key))}*"
    if obj.state == MISSING:
        return f"{title} — deleted from the cluster"
    if obj.state == EXTRA:
        return f"{title} — in the cluster with the environment's label, not in git"
    lines = [_field_line(obj, f) for f in obj.unexpected_fields]
    return fit([f"{title} — changed outside git", *lines], SLACK_SECTION_LIMIT, "fields")


def _field_line(obj: ObjectDrift, f: DriftedField) -> str:
    who = f" by `{code(f.manager)}`" if f.manager else " removed"
    since = f" since {esc(f.since)}" if f.since else ""
    secret = is_secret_key(obj.key)
    change = SECRET_CHANGED if secret else f"`{code(_value(f.desired))}` → `{code(_value(f.live))}`"
    return f"• `{code(f.path)}`{who}{since}: {change}"


def fit(lines: Sequence[str], limit: int, noun: str) -> str:
    """The first line, then as many of the others as fit in ``limit`` characters with room left
    for ``…and N more <noun>`` when some do not."""
    head, rest = lines[0], lines[1:]
    out = [head]
    for i, line in enumerate(rest):
        left_after = len(rest) - i - 1
        room_for_more = len(f"\n…and {left_after} more {noun}") if left_after else 0
        if len("\n".join([*out, line])) + room_for_more > limit:
            out.append(f"…and {len(rest) - i} more {noun}")
            break
        out.append(line)
    return cut_lines("\n".join(out), limit)


def cut_lines(text: str, limit: int) -> str:
    """Like ``cut`` but keeps line breaks (for mrkdwn sections)."""
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


def header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": cut(text, SLACK_HEADER_LIMIT), "emoji": True}}


def section(text: str, fields: Mapping[str, str] | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": cut_lines(text, SLACK_SECTION_LIMIT)},
    }
    if fields:
        items = list(fields.items())[:SLACK_MAX_FIELDS]
        block["fields"] = [{"type": "mrkdwn", "text": cut_lines(f"*{k}*\n{v}", SLACK_FIELD_LIMIT)} for k, v in items]
    return block


def link(url: str | None) -> str:
    return f" <{url.replace('|', '%7C').replace('>', '%3E')}|Details>" if url else ""


def esc(text: str) -> str:
    """Slack's escaping (https://api.slack.com/reference/surfaces/formatting#escaping): with these
    three escaped no mention, channel ping or link can be formed; anything else is shown as typed."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """Text for inside backticks: a backtick or a line break would end the code span early."""
    return " ".join(esc(text).replace("`", "'").splitlines())


def code_block(text: str, limit: int) -> str:
    """``text`` as a Slack code block of at most ``limit`` characters: escaped, no backtick that
    could close it, cut at the end (never inside an escape)."""
    inner = esc(text).replace("`", "'")
    room = limit - 6  # the fences
    if len(inner) > room:
        inner = _ENTITY_TAIL.sub("", inner[: room - len(ELLIPSIS)]) + ELLIPSIS
    return f"```{inner}```"


#: the start of an escape (``&amp;``, ``&lt;``, ``&gt;``) cut in two at the end of a text
_ENTITY_TAIL = re.compile(r"&[a-z]{0,3}$")


def _value(value: Any) -> str:
    if value is None:
        return "(absent)"
    return cut(value if isinstance(value, str) else _canonical(value), VALUE_LIMIT)


def short(commit: str) -> str:
    return commit[:12]


# --- generic webhook ------------------------------------------------------------------------------


def generic_webhook_payload(summary: DriftSummary, kind: ChatKind = "appeared") -> dict[str, Any]:
    """The JSON posted to a generic webhook (shape and names in the module docstring)."""
    s = mask_secret_values(summary)
    unexpected = s.unexpected if kind == "appeared" else ()
    shown = unexpected[:WEBHOOK_MAX_OBJECTS]
    resolved = kind == "resolved"
    return {
        "schema": WEBHOOK_SCHEMA,
        "event": f"drift.{kind}",
        "environment": s.environment,
        "commit": s.commit,
        "fingerprint": None if resolved else drift_fingerprint(s),
        "text": drift_text(s, kind),
        "target_url": s.target_url,
        "counts": {
            "objects": len(unexpected),
            "fields": sum(len(o.unexpected_fields) for o in unexpected),
            "expected_fields": s.expected_fields,
        },
        "objects": [_webhook_object(o) for o in shown],
        "omitted_objects": len(unexpected) - len(shown),
    }


def _webhook_object(obj: ObjectDrift) -> dict[str, Any]:
    fields = obj.unexpected_fields
    return {
        "group": obj.key.group,
        "kind": obj.key.kind,
        "namespace": obj.key.namespace,
        "name": obj.key.name,
        "change": obj.state,
        "fields": [
            {
                "path": f.path,
                "manager": f.manager,
                "since": f.since,
                "old": _bounded(f.desired),
                "new": _bounded(f.live),
            }
            for f in fields[:WEBHOOK_MAX_FIELDS]
        ],
        "omitted_fields": max(0, len(fields) - WEBHOOK_MAX_FIELDS),
    }


def _bounded(value: Any) -> Any:
    """Drift values are leaves; only a string (a whole config file in a ConfigMap) can be large."""
    return cut_lines(value, WEBHOOK_VALUE_LIMIT) if isinstance(value, str) else value
