"""How git reaches the config repository: its URL, and the credentials handed to each network command.

Why this much care with credentials: the token is read from its file (or variable) on every fetch
and handed to git only through the ``GIT_CONFIG_COUNT/KEY/VALUE`` environment of that one process,
as an ``http.<origin>.extraHeader`` scoped to the remote's origin. It never lands in ``.git/config``,
in argv (visible in ``ps``), or in an error message. SSH keys go through ``GIT_SSH_COMMAND``.

URLs are normalised once (local paths made absolute; transports that run commands, such as
``ext::``, and anything that looks like an option refused) and shown only redacted.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gitops_agent.errors import SourceError

SSH_CONNECT_TIMEOUT_S = 30
_SCP_LIKE = re.compile(r"^(?:[\w.-]+@)?[\w.-]+:(?!//)")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_SCHEMES = frozenset({"https", "http", "ssh", "git", "file"})


@dataclass(frozen=True)
class GitCredentials:
    """Where the credentials are, never the credentials themselves.

    ``token_file``/``token_env`` are for https remotes (a GitHub/GitLab token or app installation
    token), ``ssh_key_file`` for ssh remotes. ``username`` is what the token is presented with;
    GitHub and GitLab ignore it for tokens, but Basic auth needs one.
    """

    token_file: str | None = None
    token_env: str | None = None
    ssh_key_file: str | None = None
    username: str = "x-access-token"

    def environment(self, url: str) -> dict[str, str]:
        """Environment for git network commands on ``url``: no prompts, credentials by reference.

        Config entries are appended after any ``GIT_CONFIG_COUNT`` entries the agent was started
        with (a proxy, say), not instead of them.
        """
        env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "", "GCM_INTERACTIVE": "never"}
        config: list[tuple[str, str]] = [("http.lowSpeedLimit", "1000"), ("http.lowSpeedTime", "60")]
        if self.token_file or self.token_env:
            config.append(self._auth_header(url))
        if url_scheme(url) == "ssh":
            env["GIT_SSH_COMMAND"] = self._ssh_command(url)
        inherited = _int(os.environ.get("GIT_CONFIG_COUNT"))
        env["GIT_CONFIG_COUNT"] = str(inherited + len(config))
        for i, (key, value) in enumerate(config, start=inherited):
            env[f"GIT_CONFIG_KEY_{i}"] = key
            env[f"GIT_CONFIG_VALUE_{i}"] = value
        return env

    def hint(self) -> str:
        """What to check when the remote refuses us."""
        if self.token_file or self.token_env:
            return f"check {self._token_ref}"
        if self.ssh_key_file:
            return f"check ssh_key_file {self.ssh_key_file} (and that its public key has access)"
        return "the remote needs credentials: set repo.token_file (https) or repo.ssh_key_file (ssh)"

    def scrub(self, text: str, url: str) -> str:
        """Remove anything secret from text that came back from git."""
        text = redact_text(text)
        try:
            token = self._read_token(url) if (self.token_file or self.token_env) else ""
        except SourceError:
            token = ""
        return text.replace(token, "***") if token else text

    def _auth_header(self, url: str) -> tuple[str, str]:
        """``http.<origin>.extraHeader``: the token, sent only to the remote's own scheme, host and port."""
        scheme, host = url_scheme(url), urlsplit(url).hostname
        if scheme not in ("https", "http"):
            raise SourceError(
                f"{redact_url(url)}: a token ({self._token_ref}) works only with https URLs; "
                "use ssh_key_file for ssh remotes"
            )
        if scheme == "http" and host not in _LOOPBACK:
            raise SourceError(f"{redact_url(url)}: refusing to send a token over plain http; use an https URL")
        basic = base64.b64encode(f"{self.username}:{self._read_token(url)}".encode()).decode()
        return f"http.{_origin(url)}.extraHeader", f"Authorization: Basic {basic}"

    @property
    def _token_ref(self) -> str:
        return f"token_file {self.token_file}" if self.token_file else f"token_env ${self.token_env}"

    def _read_token(self, url: str) -> str:
        if self.token_file:
            try:
                token = Path(self.token_file).read_text().strip()
            except OSError as exc:
                raise SourceError(
                    f"{redact_url(url)}: cannot read token_file {self.token_file}: {exc.strerror}"
                ) from None
        else:
            token = os.environ.get(self.token_env or "", "").strip()
        if not token:
            raise SourceError(f"{redact_url(url)}: {self._token_ref} is empty")
        return token

    def _ssh_command(self, url: str) -> str:
        parts = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={SSH_CONNECT_TIMEOUT_S}"]
        key = self.ssh_key_file
        if key:
            if not os.access(key, os.R_OK):
                raise SourceError(f"{redact_url(url)}: cannot read ssh_key_file {key}")
            parts += ["-i", key, "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=accept-new"]
        elif os.environ.get("GIT_SSH_COMMAND"):
            return os.environ["GIT_SSH_COMMAND"]
        return shlex.join(parts)


# --- URLs ---------------------------------------------------------------------------------------


def url_scheme(url: str) -> str:
    if "://" in url:
        return urlsplit(url).scheme.lower()
    return "ssh" if _SCP_LIKE.match(url) else "file"


def normalize_url(url: str) -> str:
    """Absolute local paths, and refusal of transports that run commands (``ext::``) or look like options."""
    url = url.strip()
    if not url or url.startswith("-"):
        raise SourceError(f"{url!r} is not a repository URL")
    if "://" in url:
        if url_scheme(url) not in _SCHEMES:
            raise SourceError(f"{redact_url(url)}: unsupported URL scheme; use https, ssh, git, file or a local path")
        return url
    if "::" in url.split("/", 1)[0]:
        raise SourceError(f"{url}: git remote helpers (transport::address) are not supported")
    if _SCP_LIKE.match(url):
        return url
    return str(Path(url).expanduser().absolute())


def _origin(url: str) -> str:
    """``https://host:port/`` — the scope of the auth header, so it never goes to another host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/"


def redact_url(url: str) -> str:
    """The URL without any password or token written into it (``https://user:***@host/…``)."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None and not (parts.username and "@" in parts.netloc):
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"***@{host}{port}").geturl()


_USERINFO = re.compile(r"(\w+://)[^/@\s]+@")


def redact_text(text: str) -> str:
    """Scrub ``scheme://user:secret@`` from free text such as git's stderr."""
    return _USERINFO.sub(r"\1***@", text)


def _int(text: str | None) -> int:
    try:
        return max(int(text or 0), 0)
    except ValueError:
        return 0
