"""Who the GitHub client is: a personal or fine-grained token, or a GitHub App installation.

A token (``TokenAuth``; the caller reads ``token_file``) is sent as it is. An App (``AppAuth``)
signs an RS256 JWT (``iat`` 60 s in the past for clock drift, ``exp`` 9 minutes ahead, under
GitHub's 10) to buy an installation token, which is cached and bought again 5 minutes before its
``expires_at``, or once when GitHub answers 401 anyway (revoked). Buying it is a REST call, made
by the client (``GitHubClient``); this module decides when, and remembers every credential handed
out so that none is quoted back should GitHub echo it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jwt

from gitops_agent.errors import ReportError

#: an installation token is replaced this long before it expires
REFRESH_MARGIN = 300.0
#: JWT: issued this far in the past (clock drift) and valid this long (GitHub allows 10 minutes)
JWT_BACKDATE, JWT_LIFETIME = 60, 540


@dataclass(frozen=True)
class TokenAuth:
    """A personal access token or fine-grained token (needs statuses, pull requests, issues: write)."""

    token: str = field(repr=False)


@dataclass(frozen=True)
class AppAuth:
    """A GitHub App installation; ``private_key_pem`` is the App's RSA key (PEM text)."""

    app_id: str
    installation_id: str
    private_key_pem: str = field(repr=False)


@dataclass(frozen=True)
class InstallationToken:
    token: str = field(repr=False)
    expires_at: float  # Unix seconds


#: buys an installation token with the App's JWT (a POST to GitHub), and has it remembered
Buy = Callable[[AppAuth, str], InstallationToken]


class TokenCache:
    """The bearer token for each request, and every credential used so far. Thread-safe."""

    def __init__(self, auth: TokenAuth | AppAuth, clock: Callable[[], float], buy: Buy) -> None:
        self.auth = auth
        self._clock = clock
        self._buy = buy
        self._lock = threading.Lock()
        self._installation: InstallationToken | None = None
        # every credential this client used, so none is quoted back should GitHub echo it
        self._secrets: deque[str] = deque([auth.token] if isinstance(auth, TokenAuth) else [], maxlen=32)

    def token(self) -> str:
        """The token as given, or the cached installation token (bought when missing or expiring)."""
        if isinstance(self.auth, TokenAuth):
            return self.auth.token
        with self._lock:
            current = self._installation
            if current is None or self._clock() >= current.expires_at - REFRESH_MARGIN:
                current = self._installation = self._buy_installation_token(self.auth)
            return current.token

    def forget(self) -> None:
        """GitHub refused the installation token (401): the next :meth:`token` buys a new one."""
        with self._lock:
            self._installation = None

    def remember(self, secret: str) -> None:
        """A credential to scrub from anything GitHub says from now on."""
        self._secrets.append(secret)

    def scrub(self, text: str) -> str:
        """GitHub's words with our credentials taken out, should it ever echo them."""
        for secret in list(self._secrets):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _buy_installation_token(self, auth: AppAuth) -> InstallationToken:
        token = app_jwt(auth, self._clock())
        self._secrets.append(token)
        return self._buy(auth, token)


def app_jwt(auth: AppAuth, now: float) -> str:
    """The App's RS256 JWT, as GitHub asks: ``iss`` the App id, ``iat`` a minute in the past."""
    claims = {"iat": int(now) - JWT_BACKDATE, "exp": int(now) + JWT_LIFETIME, "iss": str(auth.app_id)}
    try:
        return jwt.encode(claims, auth.private_key_pem, algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        # never the key itself: only what kind of problem it is
        raise ReportError(
            f"GitHub App {auth.app_id}: the private key is not a usable RSA PEM key ({type(exc).__name__})"
        ) from None


def parse_time(label: str, value: Any) -> float:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ReportError(f"{label}: expires_at {value!r} is not a time") from None
