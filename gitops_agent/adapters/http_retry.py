"""Bounded retries for the reporting adapters (GitHub, chat), written once so both behave the same
when a service has a bad minute, and neither can hold a pass for long.

One call (``send``) tries a request up to ``RetryPolicy.attempts`` times, and never for longer than
``RetryPolicy.budget`` seconds in all, waits and requests included (each attempt's timeout is cut
to the time left). Between attempts (rules from GitHub's rate-limit docs; Slack uses the same
headers):

- a network error or timeout, or a 5xx: exponential backoff with jitter;
- 429, or 403 with ``x-ratelimit-remaining: 0`` (primary limit): wait until ``x-ratelimit-reset``;
- ``retry-after`` on a 403, 429 or 5xx (secondary limits, Slack, overloaded proxies): that long;
- 403/429 with neither (a secondary limit): at least ``secondary_wait`` (a minute), then backoff.

A wait beyond ``max_wait`` or beyond the budget is not waited: ``ReportError`` says when to try
again. Anything else (2xx, 3xx, other 4xx) is the caller's to interpret. Labels in messages are
given by the caller and must not hold secrets: a webhook URL is one.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from gitops_agent.errors import ReportError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 1.0  # the first backoff; doubles on each retry
    max_delay: float = 30.0  # the longest backoff
    max_wait: float = 60.0  # the longest wait for a rate limit; longer is a ReportError
    budget: float = 120.0  # one call, waits and requests included
    secondary_wait: float = 60.0  # GitHub: "wait at least one minute" on a bare secondary limit
    timeout: float = 10.0  # one attempt


@dataclass(frozen=True)
class Timing:
    """The clock (Unix seconds, as ``x-ratelimit-reset`` is), sleep and jitter source; tests inject
    fakes so a minute's wait takes no time."""

    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random


@dataclass(frozen=True)
class Retry:
    """An answer (or no answer) that asks to be tried again."""

    wait: float  # at least this long
    why: str
    backoff: bool = False  # and at least the exponential backoff of this retry


@dataclass
class _Call:
    label: str
    policy: RetryPolicy
    timing: Timing
    deadline: float
    hide_cause: bool
    last: str = field(default="")


#: one attempt: given its timeout in seconds, returns the response
Attempt = Callable[[float], httpx.Response]
#: told the status of every attempt (0 when no answer came), for metrics
Observer = Callable[[int], None]


def send(
    attempt: Attempt,
    *,
    label: str,
    policy: RetryPolicy,
    timing: Timing,
    observe: Observer | None = None,
    hide_cause: bool = False,
) -> httpx.Response:
    """The first answer that needs no retry. ``hide_cause``: do not chain the library's exception
    (its request carries the URL, which for a webhook is the credential)."""
    call = _Call(label, policy, timing, timing.clock() + policy.budget, hide_cause)
    for n in range(1, policy.attempts + 1):
        timeout = min(policy.timeout, call.deadline - timing.clock())
        if timeout <= 0:
            raise ReportError(f"{label}: {call.last} (gave up after {policy.budget:g}s)")
        retry = _try(call, attempt, timeout, observe)
        if isinstance(retry, httpx.Response):
            return retry
        call.last = retry.why
        if n == policy.attempts:
            break
        _wait(call, retry, n)
    raise ReportError(f"{label}: {call.last} (gave up after {policy.attempts} attempts)")


def _try(call: _Call, attempt: Attempt, timeout: float, observe: Observer | None) -> httpx.Response | Retry:
    try:
        response = attempt(timeout)
    except httpx.TransportError as exc:
        if observe:
            observe(0)
        return Retry(0.0, _network_words(exc), backoff=True)
    except httpx.HTTPError as exc:  # an invalid URL or header: no retry helps
        if call.hide_cause:
            raise ReportError(f"{call.label}: request not sent ({type(exc).__name__})") from None
        raise ReportError(f"{call.label}: request not sent ({type(exc).__name__}: {exc})") from exc
    if observe:
        observe(response.status_code)
    retry = retry_for(response, now=call.timing.clock(), policy=call.policy)
    return response if retry is None else retry


def _wait(call: _Call, retry: Retry, n: int) -> None:
    """Sleeps before attempt ``n + 1``, or raises when that wait is too long to make."""
    policy, timing = call.policy, call.timing
    wait = max(retry.wait, backoff(policy, n, timing.random())) if retry.backoff else retry.wait
    now = timing.clock()
    if wait > policy.max_wait or now + wait > call.deadline:
        until = datetime.fromtimestamp(now + wait, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        raise ReportError(f"{call.label}: {retry.why}; not waiting {wait:.0f}s, try again after {until}")
    log.warning("%s: %s; retrying in %.1fs (attempt %d of %d)", call.label, retry.why, wait, n + 1, policy.attempts)
    timing.sleep(wait)


def backoff(policy: RetryPolicy, retry: int, rand: float) -> float:
    """Exponential backoff with "equal jitter": half the delay is fixed, half random, so retries of
    many clients spread out but none retries at once. ``retry`` counts from 1."""
    delay = min(policy.max_delay, policy.base_delay * 2.0 ** (retry - 1))
    return delay / 2 + rand * delay / 2


def retry_for(response: httpx.Response, *, now: float, policy: RetryPolicy) -> Retry | None:
    """Whether (and after how long) this answer asks to be retried; None when it is the answer."""
    status, headers = response.status_code, response.headers
    limited = status in (403, 429)
    if limited and headers.get("x-ratelimit-remaining") == "0":
        reset = _number(headers.get("x-ratelimit-reset"))
        wait = max(0.0, reset - now) + 1 if reset is not None else policy.secondary_wait
        return Retry(wait, f"rate limit exhausted (answered {status})")
    after = retry_after(headers, now)
    if after is not None and (limited or status >= 500):
        return Retry(after, f"answered {status} with retry-after {after:.0f}s")
    if status == 429 or (status == 403 and "secondary rate limit" in response.text.lower()):
        return Retry(policy.secondary_wait, f"secondary rate limit (answered {status})", backoff=True)
    if status >= 500:
        return Retry(0.0, f"answered {status} {response.reason_phrase}".rstrip(), backoff=True)
    return None


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """``Retry-After`` in seconds: either a number of seconds or an HTTP date."""
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        moment: datetime = parsedate_to_datetime(value)
        return max(0.0, moment.timestamp() - now)
    except (TypeError, ValueError):
        return None


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _network_words(exc: httpx.TransportError) -> str:
    """Names the failure without the URL (``str`` of some httpx errors carries it)."""
    if isinstance(exc, httpx.TimeoutException):
        return "network error: no answer in time"
    if isinstance(exc, httpx.ConnectError):
        return "network error: could not connect"
    return f"network error: {type(exc).__name__}"
