"""The drift digest: on a schedule, every environment's open unexpected drift with its age and its
owner, so drift nobody fixed is not forgotten once its one "appeared" message scrolled away. Pure:
the shell gives the drift each environment showed at its last pass, and the time.

Age is counted from the field's own time (when its manager last wrote it, from ``managedFields``);
for a deleted or an extra object, which has no such time, from when chat first saw the
environment's drift open. The owner is the field manager that changed the field.

Generic webhook payload (``digest_payload``)::

    {
      "schema": "gitops-agent.digest/v1",
      "event": "drift.digest",
      "slot": "2024-05-06T09:00:00+02:00",  the schedule slot this digest is for
      "text": "one line a person can read",
      "target_url": "<link to details>" | null,
      "counts": {"environments": <with open drift>, "objects": <unexpected objects>},
      "environments": [                     only those with open unexpected drift
        {"environment": "prod", "commit": "<sha>",
         "objects": [                       at most 100; the rest counted in "omitted_objects"
           {"group": "apps", "kind": "Deployment", "namespace": "shop", "name": "api",
            "change": "changed" | "missing" | "unexpected-object",
            "owners": ["kubectl-edit"],     the managers of its unexpected fields
            "since": "2024-05-01T10:00:00Z" | null, "age_s": 86400 | null}],
         "omitted_objects": 0}],
      "unchecked": ["staging"]              environments no pass has looked at since the agent started
    }
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gitops_agent.core.chat_report import (
    SLACK_MAX_BLOCKS,
    SLACK_SECTION_LIMIT,
    WEBHOOK_MAX_OBJECTS,
    ChatMessage,
    code,
    esc,
    fit,
    header,
    link,
    section,
    short,
)
from gitops_agent.core.drift import EXTRA, MISSING, ObjectDrift
from gitops_agent.core.report import objects_word

DIGEST_SCHEMA = "gitops-agent.digest/v1"
DIGEST_EVENT = "drift.digest"


@dataclass(frozen=True)
class DigestEnvironment:
    """One environment as its last pass saw it; ``checked`` False when no pass has since the agent
    started. ``open_since``: when chat first saw its unexpected drift open ("" when unknown)."""

    environment: str
    commit: str = ""
    objects: tuple[ObjectDrift, ...] = ()
    open_since: str = ""
    checked: bool = True

    @property
    def unexpected(self) -> tuple[ObjectDrift, ...]:
        return tuple(o for o in self.objects if not o.expected)


@dataclass(frozen=True)
class OpenDrift:
    """One object's open drift as the digest lists it."""

    drift: ObjectDrift
    owners: tuple[str, ...]
    since: str  # "" when unknown


def open_drift(env: DigestEnvironment) -> tuple[OpenDrift, ...]:
    """The environment's unexpected drift, oldest first."""
    found = []
    for o in env.unexpected:
        fields = o.unexpected_fields
        owners = tuple(sorted({f.manager for f in fields if f.manager}))
        times = [f.since for f in fields if f.since]
        found.append(OpenDrift(o, owners, min(times) if times else env.open_since))
    return tuple(sorted(found, key=lambda d: (d.since or "~", str(d.drift.key))))


def digest_message(
    slot: str, now: datetime, environments: Sequence[DigestEnvironment], target_url: str | None = None
) -> ChatMessage | None:
    """The digest, or None when no environment has open unexpected drift (nothing to remind of)."""
    listed = [(e, open_drift(e)) for e in environments if e.checked and e.unexpected]
    if not listed:
        return None
    unchecked = [e.environment for e in environments if not e.checked]
    objects = sum(len(drift) for _, drift in listed)
    text = f"Open drift: {objects_word(objects)} in {_envs_word(len(listed))} not fixed since it appeared"
    slack = _slack(text, now, listed, unchecked, target_url)
    payload = digest_payload(slot, now, text, listed, unchecked, target_url)
    return ChatMessage(f"drift digest for {slot}", slack, payload)


def _envs_word(n: int) -> str:
    return f"{n} environment{'' if n == 1 else 's'}"


def _slack(
    text: str,
    now: datetime,
    listed: Sequence[tuple[DigestEnvironment, tuple[OpenDrift, ...]]],
    unchecked: Sequence[str],
    target_url: str | None,
) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [header(f"📋 {text}"), section(f"Drift still open.{link(target_url)}")]
    room = SLACK_MAX_BLOCKS - len(blocks) - 1  # one left for the note below
    for env, drift in listed[:room]:
        lines = [f"*{esc(env.environment)}* (commit `{short(env.commit)}`): {objects_word(len(drift))}"]
        blocks.append(section(fit([*lines, *(_line(d, now) for d in drift)], SLACK_SECTION_LIMIT, "objects")))
    notes = []
    if len(listed) > room:
        notes.append(f"…and {len(listed) - room} more environments")
    if unchecked:
        notes.append(f"not checked since the agent started: {', '.join(unchecked)}")
    if notes:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": esc(". ".join(notes))[:2000]}]})
    return {"text": esc(text), "blocks": blocks}


def _line(d: OpenDrift, now: datetime) -> str:
    what = {MISSING: "deleted from the cluster", EXTRA: "in the cluster, not in git"}.get(d.drift.state, "changed")
    who = f" by {', '.join(f'`{code(o)}`' for o in d.owners)}" if d.owners else ""
    age = age_s(d.since, now)
    when = f" for {age_words(age)} (since {esc(d.since)})" if age is not None else ""
    return f"• *{esc(str(d.drift.key))}* {what}{who}{when}"


def age_s(since: str, now: datetime) -> int | None:
    """Seconds from an RFC 3339 time to ``now``; None when there is no time or it does not parse."""
    if not since:
        return None
    try:
        then = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        return None
    if then.tzinfo is None:
        return None
    return max(0, int((now - then).total_seconds()))


def age_words(seconds: int) -> str:
    """``3d 4h``, ``5h 10m``, ``12m``: two units are enough to see what is old."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def digest_payload(
    slot: str,
    now: datetime,
    text: str,
    listed: Sequence[tuple[DigestEnvironment, tuple[OpenDrift, ...]]],
    unchecked: Sequence[str],
    target_url: str | None,
) -> dict[str, Any]:
    return {
        "schema": DIGEST_SCHEMA,
        "event": DIGEST_EVENT,
        "slot": slot,
        "text": text,
        "target_url": target_url,
        "counts": {"environments": len(listed), "objects": sum(len(d) for _, d in listed)},
        "environments": [
            {
                "environment": env.environment,
                "commit": env.commit,
                "objects": [_object(d, now) for d in drift[:WEBHOOK_MAX_OBJECTS]],
                "omitted_objects": max(0, len(drift) - WEBHOOK_MAX_OBJECTS),
            }
            for env, drift in listed
        ],
        "unchecked": list(unchecked),
    }


def _object(d: OpenDrift, now: datetime) -> dict[str, Any]:
    key = d.drift.key
    return {
        "group": key.group,
        "kind": key.kind,
        "namespace": key.namespace,
        "name": key.name,
        "change": d.drift.state,
        "owners": list(d.owners),
        "since": d.since or None,
        "age_s": age_s(d.since, now),
    }
