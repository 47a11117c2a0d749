"""GitHub webhook deliveries: is the signature right, and which branch was pushed?

``X-Hub-Signature-256`` is ``sha256=`` and the hex HMAC-SHA256 of the raw body keyed with the
webhook secret (GitHub's docs). Compared with ``hmac.compare_digest`` so the time taken never says
how many leading characters were right. Only the raw bytes are signed: the body is verified before
it is parsed, and a body that does not verify is never parsed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

SIGNATURE_PREFIX = "sha256="


def signature(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for this body."""
    return SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """True only when the header is present and is exactly the body's signature."""
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    return hmac.compare_digest(signature(secret, body).encode(), header.strip().encode())


@dataclass(frozen=True)
class Push:
    ref: str
    after: str = ""
    deleted: bool = False


def parse_push(body: bytes) -> Push | None:
    """The parts of a ``push`` payload the agent uses; None when it is not a push payload."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("ref"), str):
        return None
    after = data.get("after")
    return Push(ref=data["ref"], after=after if isinstance(after, str) else "", deleted=data.get("deleted") is True)


#: pull_request actions after which the PR head is worth a (new) preview
PREVIEW_ACTIONS = frozenset({"opened", "synchronize", "reopened", "ready_for_review"})


@dataclass(frozen=True)
class PullRequestEvent:
    action: str
    number: int
    head_sha: str
    base_ref: str


def parse_pull_request(body: bytes) -> PullRequestEvent | None:
    """The parts of a ``pull_request`` payload a preview needs; None when it is not one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    pr = data.get("pull_request") if isinstance(data, dict) else None
    if not isinstance(pr, dict) or not isinstance(data.get("number"), int):
        return None
    head, base = pr.get("head") or {}, pr.get("base") or {}
    if not isinstance(head.get("sha"), str) or not isinstance(base.get("ref"), str):
        return None
    return PullRequestEvent(str(data.get("action", "")), data["number"], head["sha"], base["ref"])
