"""Logging for the daemon: JSON lines for machines, text for people, and never a secret.

Every line written during a pass carries the environment and commit (set with ``log_context``, kept
in contextvars so each worker thread has its own), so ``grep`` or a log query for one environment
finds everything about it. A redacting filter runs on every handler: tokens (``Bearer …``,
``ghp_…``, ``ghs_…``, ``github_pat_…``, JWTs such as ServiceAccount tokens), credentials in URLs and
chat webhook URLs are replaced before a line is formatted, whichever module logged it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any

REDACTED = "[REDACTED]"

_environment: contextvars.ContextVar[str] = contextvars.ContextVar("environment", default="")
_commit: contextvars.ContextVar[str] = contextvars.ContextVar("commit", default="")

# (pattern, replacement); order matters: URLs first so their tokens are not half-replaced
_SECRETS: tuple[tuple[re.Pattern[str], str], ...] = (
    # chat webhooks: the URL itself is the credential
    (re.compile(r"(https?://(?:hooks\.slack\.com|[\w.-]*discord(?:app)?\.com/api/webhooks))/\S+"), rf"\1/{REDACTED}"),
    (re.compile(r"(https?://[^\s/]+/\S*?webhook\S*?/)[^\s/]+"), rf"\1{REDACTED}"),
    # user:password@ or token@ in any URL (git remotes)
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^\s/@]+@"), rf"\1{REDACTED}@"),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\1\2{REDACTED}"),
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    (
        re.compile(r"(?i)\b(password|passwd|secret|api[_-]?key|token)([\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+"),
        rf"\1\2{REDACTED}",
    ),
)


def redact(text: str) -> str:
    """The text with anything that looks like a credential replaced by ``[REDACTED]``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Redacts the rendered message and traceback of every record, before any formatter sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class ContextFilter(logging.Filter):
    """Stamps each record with the environment and commit of the pass it was logged in."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.environment = getattr(record, "environment", "") or _environment.get()
        record.commit = getattr(record, "commit", "") or _commit.get()
        return True


@contextmanager
def log_context(*, environment: str, commit: str = "") -> Iterator[None]:
    """Everything logged inside (in this thread) carries this environment and commit."""
    env_token, commit_token = _environment.set(environment), _commit.set(commit)
    try:
        yield
    finally:
        _environment.reset(env_token)
        _commit.reset(commit_token)


def set_commit(commit: str) -> None:
    """The pass resolved its commit: later lines of this pass carry it."""
    _commit.set(commit)


_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "environment", "commit"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, environment, commit, extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("environment", "commit"):
            if getattr(record, key, ""):
                line[key] = getattr(record, key)
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        return redact(json.dumps(line, default=str))


class TextFormatter(logging.Formatter):
    """``12:00:01 INFO  [prod@1a2b3c4d5e6f] message`` for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(where)s%(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        env, commit = getattr(record, "environment", ""), getattr(record, "commit", "")
        record.where = f"[{env}@{commit[:12]}] " if env and commit else (f"[{env}] " if env else "")
        return super().format(record)


def setup_logging(fmt: str | None = None, *, level: int = logging.INFO, stream: IO[str] | None = None) -> None:
    """Installs one handler on the root logger. ``fmt``: ``json`` or ``text``; None picks text on
    a terminal and JSON elsewhere (a container's log collector)."""
    out = stream if stream is not None else sys.stderr
    chosen = fmt or ("text" if out.isatty() else "json")
    handler = logging.StreamHandler(out)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # the Kubernetes client logs every request at DEBUG and urllib3 warns on each retry: keep them quiet
    for noisy in ("urllib3", "kubernetes", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
