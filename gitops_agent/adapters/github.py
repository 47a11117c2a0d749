"""GitHub REST client: commit statuses, pull requests and their comments, compare, check runs and
collaborator permissions (approvals).

Why our own small client: the agent needs fourteen endpoints (and the App token one), GitHub's
rate-limit rules within a time budget, App installation tokens and a promise that no token ever
reaches a log line or an error message; ``httpx`` plus ``http_retry`` does that in files we can
read. githubkit was weighed (issue 12): 70 MB more installed (pydantic and generated schemas), no
total time budget, a 30-minute rate-limit reset slept in one go, and App tokens sent with a scheme
our contract tests reject. Every request is checked in the
tests against GitHub's own OpenAPI description (``tests/doubles/github_server.py``).

Authentication: a personal or fine-grained token, or a GitHub App's installation token, bought
with its JWT and renewed before it expires (``github_auth`` decides when; this client makes the call).

Statuses: a status equal to the last one this process posted for the same sha and context (state,
description, target_url) is not posted again, and no more than 1,000 are posted per sha and
context, GitHub's cap (a warning is logged instead). This memory is per process: after a restart
the first status of each context is posted again, which is harmless.

Everything that goes wrong is a ``ReportError`` whose message names the request and says what to
check; the token and JWT are scrubbed from any text GitHub sends back before it is quoted.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, overload

import httpx

from gitops_agent import __version__
from gitops_agent.adapters import http_retry
from gitops_agent.adapters.github_auth import AppAuth as AppAuth  # callers import both from here
from gitops_agent.adapters.github_auth import InstallationToken, TokenCache, parse_time
from gitops_agent.adapters.github_auth import TokenAuth as TokenAuth
from gitops_agent.adapters.http_retry import RetryPolicy, Timing
from gitops_agent.core.report import DESCRIPTION_LIMIT, StatusState, StatusUpdate, cut
from gitops_agent.errors import ReportError

log = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
USER_AGENT = f"gitops-agent/{__version__}"
#: GitHub refuses more statuses than this per sha and context
STATUS_CAP = 1000
#: list endpoints: pages followed at most (100 items each)
MAX_PAGES = 10
#: (sha, context) pairs whose last status is remembered
REMEMBERED = 4096

GITHUB_RETRY = RetryPolicy()


@dataclass
class _Posted:
    """The last status posted for one sha and context, and how many were posted."""

    update: StatusUpdate
    answer: dict[str, Any]
    count: int = 1


class GitHubClient:
    """One repository's GitHub API. Thread-safe: the daemon's environments share one client.

    Over 15 methods on purpose: one per REST endpoint it calls (fifteen, the App token's included) and
    the one request path they share (``_call``, ``_send``, ``_list`` …), which a split would scatter.
    """

    def __init__(
        self,
        api_url: str,
        repository: str,
        auth: TokenAuth | AppAuth | str,
        *,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy = GITHUB_RETRY,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
        random: Callable[[], float] | None = None,
        on_request: Callable[[str, int], None] | None = None,
    ) -> None:
        """``on_request(method, status)`` is told of every attempt (status 0: no answer), for
        ``Metrics.count_github_request``."""
        owner, _, name = repository.partition("/")
        if not owner or not name or "/" in name:
            raise ReportError(f"github.repository: expected owner/name, got {repository!r}")
        self.owner, self.repo = owner, name
        self._auth = TokenAuth(auth) if isinstance(auth, str) else auth
        defaults = Timing()
        self._timing = Timing(clock or defaults.clock, sleep or defaults.sleep, random or defaults.random)
        self._tokens = TokenCache(self._auth, self._timing.clock, self._buy_installation_token)
        self._retry = retry
        self._on_request = on_request
        self._http = httpx.Client(
            base_url=api_url.rstrip("/"),
            transport=transport,
            follow_redirects=True,  # GitHub answers 301/307 for renamed repositories
            headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                     "User-Agent": USER_AGENT},
        )  # fmt: skip
        self._lock = threading.Lock()
        self._posted: OrderedDict[tuple[str, str], _Posted] = OrderedDict()

    @property
    def is_app(self) -> bool:
        """Authenticated as a GitHub App installation (GitHub takes check runs from Apps only)."""
        return isinstance(self._auth, AppAuth)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- commit statuses ----------------------------------------------------------------------

    @overload
    def create_status(self, sha: str, update: StatusUpdate) -> dict[str, Any]: ...

    @overload
    def create_status(
        self, sha: str, *, state: str, context: str, description: str, target_url: str | None = None
    ) -> dict[str, Any]: ...

    def create_status(
        self,
        sha: str,
        update: StatusUpdate | None = None,
        *,
        state: str | None = None,
        context: str | None = None,
        description: str = "",
        target_url: str | None = None,
    ) -> dict[str, Any]:
        """Posts a commit status (a ``StatusUpdate`` from ``core.report.commit_status``, or its
        fields by keyword) unless it equals the last one posted for this sha and context. Returns
        GitHub's status object (the remembered one when nothing was posted)."""
        if update is None:
            update = _status_update(state, context, description, target_url)
        key = (sha, update.context)
        with self._lock:
            posted = self._posted.get(key)
        if posted is not None and (skip := _skip_reason(posted, update)):
            log.log(logging.WARNING if posted.count >= STATUS_CAP else logging.DEBUG, "GitHub status %s %s: %s",
                    sha[:12], update.context, skip)  # fmt: skip
            return posted.answer
        answer = self._object("POST", self._repo_path(f"statuses/{_quote_ref(sha)}"), json=update.body())
        with self._lock:
            self._remember(key, update, answer)
        return answer

    def _remember(self, key: tuple[str, str], update: StatusUpdate, answer: dict[str, Any]) -> None:
        before = self._posted.pop(key, None)
        self._posted[key] = _Posted(update, answer, before.count + 1 if before else 1)
        while len(self._posted) > REMEMBERED:
            self._posted.popitem(last=False)

    def get_combined_status(self, ref: str) -> dict[str, Any]:
        """The combined state of ``ref`` and the latest status of each context."""
        return self._object("GET", self._repo_path(f"commits/{_quote_ref(ref)}/status"))

    def list_statuses(self, ref: str) -> list[dict[str, Any]]:
        """Every status of ``ref``, newest first."""
        return self._list(self._repo_path(f"commits/{_quote_ref(ref)}/statuses"))

    # --- pull requests ------------------------------------------------------------------------

    def create_pull_request(
        self, *, title: str, head: str, base: str, body: str, draft: bool = False
    ) -> dict[str, Any]:
        payload = {"title": title, "head": head, "base": base, "body": body, "draft": draft}
        return self._object("POST", self._repo_path("pulls"), json=payload)

    def list_pulls(
        self, *, head: str | None = None, state: str = "open", base: str | None = None
    ) -> list[dict[str, Any]]:
        """Pull requests by state, head branch and base branch. A bare branch name as ``head`` is
        qualified with the owner: GitHub silently ignores a ``head`` filter without one and lists
        every pull request, which would make a promotion reuse somebody else's."""
        params = {"state": state}
        if head is not None:
            params["head"] = head if ":" in head else f"{self.owner}:{head}"
        if base is not None:
            params["base"] = base
        return self._list(self._repo_path("pulls"), params)

    def list_issue_comments(self, number: int) -> list[dict[str, Any]]:
        return self._list(self._repo_path(f"issues/{int(number)}/comments"))

    def create_issue_comment(self, number: int, body: str) -> dict[str, Any]:
        return self._object("POST", self._repo_path(f"issues/{int(number)}/comments"), json={"body": body})

    def update_issue_comment(self, comment_id: int, body: str) -> dict[str, Any]:
        return self._object("PATCH", self._repo_path(f"issues/comments/{int(comment_id)}"), json={"body": body})

    def compare(self, base: str, head: str) -> dict[str, Any]:
        """How ``head`` differs from ``base``: ``status``, ``ahead_by``, ``commits``, ``files``."""
        return self._object("GET", self._repo_path(f"compare/{_quote_ref(base)}...{_quote_ref(head)}"))

    def get_pull(self, number: int) -> dict[str, Any]:
        """One pull request: ``merged``, ``merge_commit_sha``, ``base.ref`` …"""
        return self._object("GET", self._repo_path(f"pulls/{int(number)}"))

    # --- approvals: check runs (an App only) and collaborator permission ----------------------

    def create_check_run(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST …/check-runs`` (GitHub takes these from Apps only); ``body`` from ``core.approval``."""
        return self._object("POST", self._repo_path("check-runs"), json=dict(body))

    def update_check_run(self, check_run_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._object("PATCH", self._repo_path(f"check-runs/{int(check_run_id)}"), json=dict(body))

    def check_runs(self, ref: str, name: str) -> list[dict[str, Any]]:
        """The check runs named ``name`` on ``ref``, newest first (one page: a commit has few)."""
        path = self._repo_path(f"commits/{_quote_ref(ref)}/check-runs")
        data, _ = self._call("GET", path, params={"check_name": name, "filter": "latest", "per_page": "100"})
        runs = data.get("check_runs") if isinstance(data, dict) else None
        if not isinstance(runs, list):
            raise ReportError(f"GitHub GET {path}: expected an object with check_runs")
        return [r for r in runs if isinstance(r, dict)]

    def collaborator_permission(self, username: str) -> dict[str, Any]:
        """``permission`` (admin, write, read, none) and ``role_name`` of ``username`` here."""
        return self._object("GET", self._repo_path(f"collaborators/{_quote(username)}/permission"))

    # --- requests -----------------------------------------------------------------------------

    def _repo_path(self, rest: str) -> str:
        return f"/repos/{_quote(self.owner)}/{_quote(self.repo)}/{rest}"

    def _object(self, method: str, path: str, *, json: Any = None) -> dict[str, Any]:
        data, _ = self._call(method, path, json=json)
        if not isinstance(data, dict):
            raise ReportError(f"GitHub {method} {path}: expected a JSON object, got {type(data).__name__}")
        return data

    def _list(self, path: str, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """Every item of a list endpoint, following ``Link: rel="next"`` up to ``MAX_PAGES`` pages."""
        items: list[dict[str, Any]] = []
        url = path
        query: dict[str, str] | None = {**(params or {}), "per_page": "100"}
        for _ in range(MAX_PAGES):
            data, response = self._call("GET", url, params=query, label_path=path)
            if not isinstance(data, list) or not all(isinstance(i, dict) for i in data):
                raise ReportError(f"GitHub GET {path}: expected a JSON list of objects")
            items += data
            link = _next_link(response)
            if link is None:
                return items
            url, query = link, None  # the next link carries the query
        log.warning("GitHub GET %s: more than %d pages; the rest is left out", path, MAX_PAGES)
        return items

    def _call(
        self, method: str, url: str, *, json: Any = None, params: Mapping[str, str] | None = None, label_path: str = ""
    ) -> tuple[Any, httpx.Response]:
        """One API call: retried as ``http_retry`` says, and once more with a fresh installation
        token when an App's token is refused."""
        label = f"GitHub {method} {label_path or url}"
        response = self._send(method, url, label, json=json, params=params)
        if response.status_code == 401 and isinstance(self._auth, AppAuth):
            log.info("%s: installation token refused (401); fetching a new one", label)
            self._tokens.forget()
            response = self._send(method, url, label, json=json, params=params)
        if response.status_code >= 300:
            raise ReportError(self._error_words(label, response))
        return self._json(label, response), response

    def _send(
        self, method: str, url: str, label: str, *, json: Any = None, params: Mapping[str, str] | None = None
    ) -> httpx.Response:
        token = self._tokens.token()

        def attempt(timeout: float) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"}
            return self._http.request(method, url, json=json, params=params, headers=headers, timeout=timeout)

        return http_retry.send(
            attempt, label=label, policy=self._retry, timing=self._timing, observe=self._observer(method)
        )

    def _observer(self, method: str) -> Callable[[int], None] | None:
        report = self._on_request
        return None if report is None else (lambda status: report(method, status))

    def _json(self, label: str, response: httpx.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise ReportError(f"{label}: answered {response.status_code} with a body that is not JSON") from None

    def _error_words(self, label: str, response: httpx.Response) -> str:
        """``GitHub POST …: 422 Validation Failed (description is too long); <what to check>``."""
        status = response.status_code
        said = self._tokens.scrub(_github_message(response))
        hint = {
            401: "check the token (token_file) or the App's key; it may have expired or been revoked",
            403: "the token lacks a permission this needs (statuses, pull requests or issues: write)",
            404: f"check github.repository ({self.owner}/{self.repo}) and that the token can see it",
        }.get(status, "")
        return "; ".join(p for p in (f"{label}: {status} {said}".rstrip(), hint) if p)

    # --- App installation tokens --------------------------------------------------------------

    def _buy_installation_token(self, auth: AppAuth, token: str) -> InstallationToken:
        """``POST /app/installations/{id}/access_tokens`` with the App's JWT ``token``; the
        ``TokenCache`` calls it when the installation token is missing, expiring or refused."""
        path = f"/app/installations/{_quote(auth.installation_id)}/access_tokens"
        label = f"GitHub App {auth.app_id}: POST {path}"

        def attempt(timeout: float) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"}
            return self._http.post(path, headers=headers, timeout=timeout)

        response = http_retry.send(attempt, label=label, policy=self._retry, timing=self._timing,
                                   observe=self._observer("POST"))  # fmt: skip
        if response.status_code != 201:
            hint = "check app_id, installation_id, the private key and this machine's clock"
            raise ReportError(
                f"{label}: {response.status_code} {self._tokens.scrub(_github_message(response))}; {hint}"
            )
        data = self._json(label, response)
        if not isinstance(data, dict) or not isinstance(data.get("token"), str):
            raise ReportError(f"{label}: the answer has no token")
        self._tokens.remember(data["token"])
        return InstallationToken(data["token"], parse_time(label, data.get("expires_at")))


def _status_update(state: str | None, context: str | None, description: str, target_url: str | None) -> StatusUpdate:
    if state is None or context is None:
        raise TypeError("create_status: pass a StatusUpdate, or state= and context=")
    try:
        status_state = StatusState(state)
    except ValueError:
        raise ReportError(f"GitHub status {context}: unknown state {state!r}") from None
    return StatusUpdate(context, status_state, cut(description, DESCRIPTION_LIMIT), target_url)


def _skip_reason(posted: _Posted, update: StatusUpdate) -> str:
    if posted.update == update:
        return "unchanged since the last post; not posted again"
    if posted.count >= STATUS_CAP:
        return f"{STATUS_CAP} statuses already posted for this commit and context (GitHub's cap); not posted"
    return ""


def _github_message(response: httpx.Response) -> str:
    """GitHub's error text: ``message`` and the ``errors`` details, or the reason phrase."""
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase
    if not isinstance(data, dict):
        return response.reason_phrase
    details = [
        str(e.get("message") or e.get("code") or "") if isinstance(e, dict) else str(e)
        for e in data.get("errors") or []
    ]
    details = [d for d in details if d]
    message = str(data.get("message") or response.reason_phrase)
    return f"{message} ({'; '.join(details)})" if details else message


def _next_link(response: httpx.Response) -> str | None:
    nxt = response.links.get("next")
    return nxt.get("url") if nxt else None


def _quote(part: str) -> str:
    return urllib.parse.quote(str(part), safe="")


def _quote_ref(ref: str) -> str:
    """A sha or ref in a path: GitHub takes ``heads/main`` with its slash as it is."""
    return urllib.parse.quote(ref, safe="/")
