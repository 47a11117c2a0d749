"""What the HTTP server decides from a request's headers alone, before it reads a byte of the body.

A body is read only when its length is declared (``Content-Length``) and within the route's cap:
a chunked body or one without a length could be any size, so it is refused (411) rather than read
to find out. The bearer token of the status listener is compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

LENGTH_REQUIRED = 411
TOO_LARGE = 413
UNAUTHORIZED = 401


@dataclass(frozen=True)
class Refusal:
    status: int
    error: str


def body_refusal(headers: Mapping[str, str], *, cap: int, required: bool) -> Refusal | None:
    """Why the body of a request with these (lower-case) headers is not read, or None when it may be
    read: up to its declared length, which is at most ``cap``. ``required``: the route needs a body."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return Refusal(LENGTH_REQUIRED, "Content-Length required: chunked bodies are not accepted")
    length = headers.get("content-length")
    if length is None:
        return Refusal(LENGTH_REQUIRED, "Content-Length required") if required else None
    if not length.isdigit():
        return Refusal(LENGTH_REQUIRED, "Content-Length required: not a number")
    if int(length) > cap:
        return Refusal(TOO_LARGE, f"payload too large: at most {cap} bytes")
    return None


def declared_length(headers: Mapping[str, str]) -> int:
    """The body's declared length; 0 without one (``body_refusal`` refused the rest)."""
    length = headers.get("content-length", "0")
    return int(length) if length.isdigit() else 0


def bearer_refusal(headers: Mapping[str, str], token: bytes | None) -> Refusal | None:
    """None when no token is configured or ``Authorization: Bearer <token>`` carries it exactly."""
    if token is None:
        return None
    scheme, _, given = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token):
        return None
    return Refusal(UNAUTHORIZED, "a bearer token is required (Authorization: Bearer <server.status_token_file>)")
