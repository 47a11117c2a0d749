"""GitHub webhook deliveries: is the signature right, which branch was pushed, which pull request?

``X-Hub-Signature-256`` is ``sha256=`` and the hex HMAC-SHA256 of the raw body keyed with the
webhook secret (GitHub's docs). Compared with ``hmac.compare_digest`` so the time taken never says
how many leading characters were right. Only the raw bytes are signed: the body is verified before
it is parsed, and a body that does not verify is never parsed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

SIGNATURE_PREFIX = "sha256="
#: a GitHub login: letters, digits and single inner hyphens, at most 39 characters
LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")


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
    #: ``owner/name`` of the repositories holding the head and the base ("" when GitHub gave none:
    #: a deleted fork)
    head_repo: str = ""
    base_repo: str = ""
    #: the pull request's author (``user.login``); "" when it is not a login GitHub would issue
    author: str = ""

    @property
    def same_repository(self) -> bool:
        """The head branch lives in the base repository: only people with write access push there."""
        return bool(self.head_repo) and self.head_repo.lower() == self.base_repo.lower()


def parse_pull_request(body: bytes) -> PullRequestEvent | None:
    """The parts of a ``pull_request`` payload a preview needs; None when it is not one. Every
    field is the sender's to shape: anything of the wrong type reads as absent."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    pr = data.get("pull_request") if isinstance(data, dict) else None
    if not isinstance(pr, dict) or not isinstance(data.get("number"), int):
        return None
    head, base = _obj(pr.get("head")), _obj(pr.get("base"))
    if not isinstance(head.get("sha"), str) or not isinstance(base.get("ref"), str):
        return None
    return PullRequestEvent(
        str(data.get("action", "")),
        data["number"],
        head["sha"],
        base["ref"],
        head_repo=_text(_obj(head.get("repo")).get("full_name")),
        base_repo=_text(_obj(base.get("repo")).get("full_name")),
        author=login_of(pr.get("user")),
    )


def login_of(user: Any) -> str:
    """A person's login from a ``simple-user``; "" for a bot or anything GitHub would not issue."""
    user = _obj(user)
    login = _text(user.get("login"))
    return login if user.get("type") != "Bot" and LOGIN.fullmatch(login) else ""


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
