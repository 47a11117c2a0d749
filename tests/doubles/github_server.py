"""A loopback stand-in for api.github.com, held to GitHub's own OpenAPI description.

Every request is validated with openapi-core against ``github_api/openapi-subset.json`` beside
this file (method, path, query, body) and against what GitHub requires of every client (``Accept``,
``X-GitHub-Api-Version``, ``User-Agent``, a ``Bearer`` credential); each answer the double builds
is validated against the same description's response schema before it is sent. Anything that does
not conform lands in ``violations``; tests assert that list is empty. Bodies start from the
description's own examples, patched with the double's state (GitHub's examples are not always
valid under its schemas; the double's answers must be).

State: statuses (``GET …/status`` combines them as GitHub does), pull requests (merged with
``merge``), issue comments, check runs (created by an App's installation token only, as GitHub
insists), collaborators' permissions (``grant``) and App installation tokens (expiring on the
double's clock). Scripted faults from
``tests.doubles.loopback`` (``inject(server_error())`` …) are played before the real answer and
are deliberately outside the contract (GitHub documents few of its 5xx/429 answers).
"""

from __future__ import annotations

import copy
import functools
import json
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from tests.doubles.loopback import LoopbackServer, Recorded, Reply

#: the part of GitHub's published description the client uses (github_api/PROVENANCE.md)
SPEC_PATH = Path(__file__).resolve().parent / "github_api" / "openapi-subset.json"
SPEC_HOST = "https://api.github.com"
DEFAULT_TOKEN = "ghp_doubleTestToken0123456789abcdefABCDEF"
STATUS_CAP = 1000
DESCRIPTION_LIMIT = 140
REQUIRED_HEADERS = {"accept": "application/vnd.github+json", "x-github-api-version": "2022-11-28"}
DOCS = "https://docs.github.com/rest"


class SpecMissing(AssertionError):
    """The OpenAPI description is missing from the repository: a failure, never a skip."""


def spec_document() -> dict[str, Any]:
    if not SPEC_PATH.is_file():
        raise SpecMissing(
            f"GitHub's OpenAPI description is missing: expected {SPEC_PATH} "
            "(tests/doubles/github_api/PROVENANCE.md says how to derive it)"
        )
    return _load(SPEC_PATH)


@functools.cache
def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@functools.cache
def _openapi(path: Path) -> OpenAPI:
    # the file is GitHub's published description; checking the description itself takes seconds
    return OpenAPI.from_dict(_inline_discriminators_dropped(_load(path)), config=Config(spec_validator_cls=None))


def _inline_discriminators_dropped(node: Any) -> Any:
    """A copy without the ``discriminator`` of a ``oneOf`` of inline schemas with no ``mapping``.

    GitHub's ``POST …/check-runs`` body says ``discriminator: {propertyName: status}`` over two
    inline schemas; OpenAPI 3.0 reads a discriminator value without a mapping as a schema's name
    (``#/components/schemas/completed``), which does not exist, so openapi-core refuses every body.
    Without it the ``oneOf`` still holds the body to exactly one of GitHub's two shapes."""
    if isinstance(node, list):
        return [_inline_discriminators_dropped(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _inline_discriminators_dropped(v) for k, v in node.items()}
    discriminator, one_of = out.get("discriminator"), out.get("oneOf")
    inline = isinstance(one_of, list) and all(isinstance(b, dict) and "$ref" not in b for b in one_of)
    if isinstance(discriminator, dict) and "mapping" not in discriminator and inline:
        del out["discriminator"]
    return out


def example(name: str) -> Any:
    """A deep copy of ``components/examples/<name>`` from the description."""
    return copy.deepcopy(spec_document()["components"]["examples"][name]["value"])


def generate_app_key() -> tuple[str, str]:
    """A fresh RSA key pair for a test App: (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@dataclass(frozen=True)
class TestApp:
    """The GitHub App the double knows: tokens are issued for ``installation_id`` to JWTs signed
    with the private half of ``public_key_pem`` and ``iss == app_id``."""

    __test__ = False  # not a pytest class

    app_id: str
    installation_id: int
    public_key_pem: str


@dataclass
class IssuedToken:
    token: str
    expires_at: float
    revoked: bool = False


Handler = Callable[[Recorded, dict[str, str]], Reply]


class GitHubServer(LoopbackServer):
    """``with GitHubServer() as github:`` then point a client at ``github.url``."""

    def __init__(
        self,
        *,
        owner: str = "octo-org",
        repo: str = "gitops-config",
        token: str = DEFAULT_TOKEN,
        app: TestApp | None = None,
        token_ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        spec_document()  # fail at once, with the message, when the description is missing
        self.owner, self.repo, self.token, self.app = owner, repo, token, app
        self.token_ttl = token_ttl
        self.clock = clock
        self.tokens: list[IssuedToken] = []
        self._statuses: list[tuple[str, dict[str, Any]]] = []  # (sha, status object), oldest first
        self.pulls: list[dict[str, Any]] = []  # {number, title, body, head, base, state, draft}
        self.comments: list[dict[str, Any]] = []  # issue-comment objects, plus "issue"
        self.check_runs: list[dict[str, Any]] = []  # check-run objects, oldest first
        self.permissions: dict[str, tuple[str, str]] = {}  # login -> (permission, role_name)
        self.actions: dict[int, list[dict[str, str]]] = {}  # check run id -> its buttons
        self._ids = 1000
        self._remaining = 5000
        self._state_lock = threading.RLock()
        repo_re = rf"/repos/{re.escape(owner)}/{re.escape(repo)}"
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("POST", re.compile(rf"{repo_re}/statuses/(?P<sha>.+)"), self._create_status),
            ("GET", re.compile(rf"{repo_re}/commits/(?P<ref>.+)/status"), self._combined_status),
            ("GET", re.compile(rf"{repo_re}/commits/(?P<ref>.+)/statuses"), self._list_statuses),
            ("GET", re.compile(rf"{repo_re}/pulls"), self._list_pulls),
            ("GET", re.compile(rf"{repo_re}/pulls/(?P<number>\d+)"), self._get_pull),
            ("POST", re.compile(rf"{repo_re}/pulls"), self._create_pull),
            ("GET", re.compile(rf"{repo_re}/issues/(?P<number>\d+)/comments"), self._list_comments),
            ("POST", re.compile(rf"{repo_re}/issues/(?P<number>\d+)/comments"), self._create_comment),
            ("PATCH", re.compile(rf"{repo_re}/issues/comments/(?P<id>\d+)"), self._update_comment),
            ("GET", re.compile(rf"{repo_re}/compare/(?P<basehead>.+)"), self._compare),
            ("POST", re.compile(rf"{repo_re}/check-runs"), self._create_check_run),
            ("PATCH", re.compile(rf"{repo_re}/check-runs/(?P<id>\d+)"), self._update_check_run),
            ("GET", re.compile(rf"{repo_re}/commits/(?P<ref>.+)/check-runs"), self._list_check_runs),
            ("GET", re.compile(rf"{repo_re}/collaborators/(?P<username>[^/]+)/permission"), self._permission),
            ("POST", re.compile(r"/app/installations/(?P<id>\d+)/access_tokens"), self._access_token),
        ]

    # --- views for tests ---------------------------------------------------------------------

    @property
    def statuses(self) -> list[dict[str, Any]]:
        """Every status posted, oldest first: sha, state, context, description, target_url."""
        with self._state_lock:
            return [
                {"sha": sha, **{k: s[k] for k in ("state", "context", "description", "target_url")}}
                for sha, s in self._statuses
            ]

    def grant(self, login: str, permission: str, role_name: str | None = None) -> None:
        """``login`` collaborates with ``permission`` (admin, write, read, none) and ``role_name``
        (default: the same; ``maintain`` answers ``write``, ``triage`` ``read``, as GitHub does)."""
        legacy = {"maintain": "write", "triage": "read"}.get(permission, permission)
        with self._state_lock:
            self.permissions[login] = (legacy, role_name or permission)

    def merge(self, number: int, merge_commit: str) -> None:
        """Pull request ``number`` was merged; ``merge_commit`` is the commit on its base branch."""
        with self._state_lock:
            for pr in self.pulls:
                if pr["number"] == number:
                    pr.update(state="closed", merge_commit=merge_commit)

    def add_pull(self, number: int, head: str, base: str, title: str = "change", head_sha: str = "") -> None:
        """A pull request someone opened (not through the client); ``head_sha``: its head commit."""
        with self._state_lock:
            self.pulls.append({"number": number, "title": title, "body": None, "head": head, "base": base,
                               "state": "open", "draft": False, "created_at": self._now_iso(),
                               "head_sha": head_sha})  # fmt: skip

    def revoke_tokens(self) -> None:
        """Every installation token issued so far is refused from now on (GitHub answers 401)."""
        with self._state_lock:
            for t in self.tokens:
                t.revoked = True

    def authorizations(self, path_part: str = "") -> list[str]:
        """The credentials requests used, in order (for requests whose path contains ``path_part``)."""
        return [r.headers.get("authorization", "") for r in self.requests if path_part in r.path]

    # --- serving -----------------------------------------------------------------------------

    def handle(self, request: Recorded) -> Reply:
        self._check_request(request)
        route = self._route(request)
        if route is None:
            return Reply.json(404, {"message": "Not Found", "documentation_url": DOCS})
        handler, params = route
        if handler != self._access_token and not self._authorized(request):
            return Reply.json(401, {"message": "Bad credentials", "documentation_url": DOCS})
        with self._state_lock:
            reply = handler(request, params)
        self._check_response(request, reply)
        return Reply(reply.status, reply.body, {**self._rate_headers(), **reply.headers}, reply.content_type)

    def _route(self, request: Recorded) -> tuple[Handler, dict[str, str]] | None:
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if method == request.method and match:
                return handler, {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
        return None

    def _credential(self, request: Recorded) -> str:
        return request.headers.get("authorization", "").removeprefix("Bearer ")

    def _authorized(self, request: Recorded) -> bool:
        credential = self._credential(request)
        if credential == self.token:
            return True
        now = self.clock()
        with self._state_lock:
            return any(t.token == credential and not t.revoked and now < t.expires_at for t in self.tokens)

    def _rate_headers(self) -> dict[str, str]:
        with self._state_lock:
            self._remaining = max(0, self._remaining - 1)
            remaining = self._remaining
        return {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": str(remaining),
                "x-ratelimit-used": str(5000 - remaining), "x-ratelimit-reset": str(int(self.clock()) + 3600),
                "x-ratelimit-resource": "core"}  # fmt: skip

    # --- the contract ------------------------------------------------------------------------

    def _check_request(self, request: Recorded) -> None:
        where = f"{request.method} {request.path}"
        for name, value in REQUIRED_HEADERS.items():
            if request.headers.get(name) != value:
                self.violate(f"{where}: header {name} is {request.headers.get(name)!r}, expected {value!r}")
        if not request.headers.get("user-agent"):
            self.violate(f"{where}: no User-Agent (GitHub refuses requests without one)")
        if not request.headers.get("authorization", "").startswith("Bearer "):
            self.violate(f"{where}: Authorization is not a Bearer credential")
        if request.body and not request.headers.get("content-type", "").startswith("application/json"):
            self.violate(f"{where}: body sent as {request.headers.get('content-type')!r}, not JSON")
        try:
            _openapi(SPEC_PATH).validate_request(self._mock_request(request))
        except Exception as exc:
            self.violate(f"{where}: request breaks the OpenAPI description: {_explain(exc)}")

    def _check_response(self, request: Recorded, reply: Reply) -> None:
        """The double's own answers must be valid GitHub answers (those the description documents)."""
        operation = self._operation(request)
        if operation is None or str(reply.status) not in operation.get("responses", {}):
            return
        response = MockResponse(reply.body, reply.status, dict(reply.headers), content_type="application/json")
        try:
            _openapi(SPEC_PATH).validate_response(self._mock_request(request), response)
        except Exception as exc:
            self.violate(f"{request.method} {request.path}: the double's {reply.status} answer breaks the spec: "
                         f"{_explain(exc)}")  # fmt: skip

    def _operation(self, request: Recorded) -> dict[str, Any] | None:
        found = _spec_operation(request.method, request.path)
        return found[0] if found else None

    def _mock_request(self, request: Recorded) -> MockRequest:
        found = _spec_operation(request.method, request.path)
        return MockRequest(
            SPEC_HOST,
            request.method,
            found[1] if found else request.path,
            args=request.query,
            headers=request.headers,
            data=request.body or None,
            content_type=request.headers.get("content-type", "application/json").split(";")[0],
        )

    # --- statuses ----------------------------------------------------------------------------

    def _create_status(self, request: Recorded, params: dict[str, str]) -> Reply:
        body = request.json() or {}
        sha, context = params["sha"], body.get("context") or "default"
        description = body.get("description")
        if description is not None and len(description) > DESCRIPTION_LIMIT:
            return _validation_failed("Status", "description is too long (maximum is 140 characters)")
        if sum(1 for s, st in self._statuses if s == sha and st["context"] == context) >= STATUS_CAP:
            return _validation_failed("Status", "This SHA and context has reached the maximum number of statuses.")
        status = example("status")
        status.update(
            id=self._next_id(),
            url=f"{SPEC_HOST}/repos/{self.owner}/{self.repo}/statuses/{sha}",
            state=body["state"],
            description=description,
            target_url=body.get("target_url"),
            context=context,
            created_at=self._now_iso(),
            updated_at=self._now_iso(),
        )
        self._statuses.append((sha, status))
        return Reply.json(201, status)

    def _latest(self, sha: str) -> list[dict[str, Any]]:
        """The newest status of each context, as GitHub combines them."""
        latest: dict[str, dict[str, Any]] = {}
        for s, status in self._statuses:
            if s == sha:
                latest[status["context"]] = status
        return list(latest.values())

    def _combined_status(self, request: Recorded, params: dict[str, str]) -> Reply:
        sha = params["ref"]
        latest = self._latest(sha)
        template = example("combined-commit-status")
        simple_template = template["statuses"][0]
        template.update(
            state=_combined_state({s["state"] for s in latest}),
            sha=sha,
            total_count=len(latest),
            statuses=[{**simple_template, **{k: s[k] for k in simple_template if k in s}} for s in latest],
            commit_url=f"{SPEC_HOST}/repos/{self.owner}/{self.repo}/commits/{sha}",
            url=f"{SPEC_HOST}/repos/{self.owner}/{self.repo}/commits/{sha}/status",
        )
        return Reply.json(200, template)

    def _list_statuses(self, request: Recorded, params: dict[str, str]) -> Reply:
        items = [status for s, status in reversed(self._statuses) if s == params["ref"]]
        return self._page(request, items)

    # --- pull requests -----------------------------------------------------------------------

    def _create_pull(self, request: Recorded, params: dict[str, str]) -> Reply:
        body = request.json() or {}
        head = body["head"].split(":", 1)[-1]
        for pr in self.pulls:
            if pr["head"] == head and pr["base"] == body["base"] and pr["state"] == "open":
                return _validation_failed("PullRequest", f"A pull request already exists for {self.owner}:{head}.")
        pr = {"number": len(self.pulls) + 1, "title": body["title"], "body": body.get("body"), "head": head,
              "base": body["base"], "state": "open", "draft": bool(body.get("draft", False)),
              "created_at": self._now_iso()}  # fmt: skip
        self.pulls.append(pr)
        return Reply.json(201, self._pull_object(pr, example("pull-request")))

    def _list_pulls(self, request: Recorded, params: dict[str, str]) -> Reply:
        state, head, base = request.param("state", "open"), request.param("head"), request.param("base")
        found = [pr for pr in self.pulls if state == "all" or pr["state"] == state]
        if head is not None and ":" in head:  # GitHub ignores a head filter without "owner:"
            found = [pr for pr in found if f"{self.owner}:{pr['head']}" == head]
        if base is not None:
            found = [pr for pr in found if pr["base"] == base]
        template = example("pull-request-simple-items")[0]
        return self._page(request, [self._pull_object(pr, copy.deepcopy(template)) for pr in reversed(found)])

    def _pull_object(self, pr: dict[str, Any], template: dict[str, Any]) -> dict[str, Any]:
        n, repo_url = pr["number"], f"{SPEC_HOST}/repos/{self.owner}/{self.repo}"
        html = f"https://github.com/{self.owner}/{self.repo}/pull/{n}"
        template.update(
            id=5000 + n, number=n, title=pr["title"], body=pr["body"], state=pr["state"], draft=pr["draft"],
            url=f"{repo_url}/pulls/{n}", html_url=html, diff_url=f"{html}.diff", patch_url=f"{html}.patch",
            issue_url=f"{repo_url}/issues/{n}", locked=False, active_lock_reason=None, milestone=None,
            requested_teams=[], requested_reviewers=[], assignees=[], assignee=None, labels=[],
            created_at=pr["created_at"], updated_at=pr["created_at"], closed_at=None, merged_at=None,
            merge_commit_sha=pr.get("merge_commit"),
        )  # fmt: skip
        if pr.get("merge_commit"):
            template.update(closed_at=pr["created_at"], merged_at=pr["created_at"])
        if "merged" in template:  # the full pull request, not the list's simple one
            template["merged"] = bool(pr.get("merge_commit"))
        for side in ("head", "base"):
            template[side] = {**template[side], "ref": pr[side], "label": f"{self.owner}:{pr[side]}"}
        if pr.get("head_sha"):
            template["head"]["sha"] = pr["head_sha"]
        return template

    def _get_pull(self, request: Recorded, params: dict[str, str]) -> Reply:
        for pr in self.pulls:
            if pr["number"] == int(params["number"]):
                return Reply.json(200, self._pull_object(pr, example("pull-request")))
        return Reply.json(404, {"message": "Not Found", "documentation_url": DOCS})

    # --- issue comments ----------------------------------------------------------------------

    def _comment_object(self, number: int, body: str) -> dict[str, Any]:
        comment: dict[str, Any] = example("issue-comment")
        cid, repo_url = self._next_id(), f"{SPEC_HOST}/repos/{self.owner}/{self.repo}"
        comment.update(
            id=cid, body=body, url=f"{repo_url}/issues/comments/{cid}",
            html_url=f"https://github.com/{self.owner}/{self.repo}/issues/{number}#issuecomment-{cid}",
            issue_url=f"{repo_url}/issues/{number}", created_at=self._now_iso(), updated_at=self._now_iso(),
        )  # fmt: skip
        return comment

    def _create_comment(self, request: Recorded, params: dict[str, str]) -> Reply:
        number = int(params["number"])
        comment = self._comment_object(number, (request.json() or {})["body"])
        self.comments.append({**comment, "issue": number})
        return Reply.json(201, comment)

    def _list_comments(self, request: Recorded, params: dict[str, str]) -> Reply:
        number = int(params["number"])
        items = [{k: v for k, v in c.items() if k != "issue"} for c in self.comments if c["issue"] == number]
        return self._page(request, items)

    def _update_comment(self, request: Recorded, params: dict[str, str]) -> Reply:
        for c in self.comments:
            if c["id"] == int(params["id"]):
                c.update(body=(request.json() or {})["body"], updated_at=self._now_iso())
                return Reply.json(200, {k: v for k, v in c.items() if k != "issue"})
        return Reply.json(404, {"message": "Not Found", "documentation_url": DOCS})

    # --- compare -----------------------------------------------------------------------------

    def _compare(self, request: Recorded, params: dict[str, str]) -> Reply:
        base, _, head = params["basehead"].partition("...")
        comparison = example("commit-comparison")
        comparison.update(
            url=f"{SPEC_HOST}/repos/{self.owner}/{self.repo}/compare/{base}...{head}",
            html_url=f"https://github.com/{self.owner}/{self.repo}/compare/{base}...{head}",
        )
        return Reply.json(200, comparison)

    # --- check runs and collaborators --------------------------------------------------------

    def _create_check_run(self, request: Recorded, params: dict[str, str]) -> Reply:
        if self._credential(request) == self.token:  # GitHub: only Apps create check runs
            return Reply.json(403, {"message": "You must authenticate via a GitHub App.", "documentation_url": DOCS})
        body = request.json() or {}
        run = example("check-run")
        run.update(
            id=self._next_id(), head_sha=body["head_sha"], name=body["name"], external_id=body.get("external_id", ""),
            details_url=body.get("details_url"), started_at=self._now_iso(), pull_requests=[],
        )  # fmt: skip
        self._apply_check_run(run, body)
        self.check_runs.append(run)
        return Reply.json(201, run)

    def _update_check_run(self, request: Recorded, params: dict[str, str]) -> Reply:
        for run in self.check_runs:
            if run["id"] == int(params["id"]):
                self._apply_check_run(run, request.json() or {})
                return Reply.json(200, run)
        return Reply.json(404, {"message": "Not Found", "documentation_url": DOCS})

    def _apply_check_run(self, run: dict[str, Any], body: dict[str, Any]) -> None:
        """The fields a create or update sets; ``actions`` are kept beside the object (GitHub does
        not return them)."""
        status = body.get("status", "completed" if body.get("conclusion") else run.get("status", "queued"))
        run.update(status=status, conclusion=body.get("conclusion", run.get("conclusion")))
        run["completed_at"] = self._now_iso() if status == "completed" else None
        if "output" in body:
            given = body["output"]
            run["output"] = {**run["output"], **{k: given.get(k) for k in ("title", "summary", "text")}}
        if "actions" in body:
            self.actions[run["id"]] = list(body["actions"])

    def _list_check_runs(self, request: Recorded, params: dict[str, str]) -> Reply:
        name = request.param("check_name")
        runs = [r for r in reversed(self.check_runs) if r["head_sha"] == params["ref"] and name in (None, r["name"])]
        return Reply.json(200, {"total_count": len(runs), "check_runs": runs})

    def _permission(self, request: Recorded, params: dict[str, str]) -> Reply:
        login = params["username"]
        permission, role = self.permissions.get(login, ("read", "read"))  # anyone may read a public repository
        answer = example("repository-collaborator-permission-response-if-user-has-admin-permissions")
        answer.update(permission=permission, role_name=role)
        answer["user"] = {**answer["user"], "login": login, "role_name": role}  # the example lacks it
        return Reply.json(200, answer)

    # --- App installation tokens -------------------------------------------------------------

    def _access_token(self, request: Recorded, params: dict[str, str]) -> Reply:
        if self.app is None or int(params["id"]) != self.app.installation_id:
            return Reply.json(404, {"message": "Not Found", "documentation_url": DOCS})
        problem = self._jwt_problem(request.headers.get("authorization", "").removeprefix("Bearer "))
        if problem:
            self.violate(f"POST {request.path}: {problem}")
            return Reply.json(401, {"message": f"A JSON web token could not be decoded ({problem})",
                                    "documentation_url": DOCS})  # fmt: skip
        token = IssuedToken(f"ghs_{secrets.token_urlsafe(27)}", self.clock() + self.token_ttl)
        self.tokens.append(token)
        body = {"token": token.token, "expires_at": _iso(token.expires_at),
                "permissions": {"statuses": "write", "pull_requests": "write", "issues": "write"},
                "repository_selection": "selected"}  # fmt: skip
        return Reply.json(201, body)

    def _jwt_problem(self, token: str) -> str:
        """What GitHub would refuse in the App's JWT, judged on the double's clock."""
        assert self.app is not None
        try:
            claims = jwt.decode(token, self.app.public_key_pem, algorithms=["RS256"],
                                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False})  # fmt: skip
        except jwt.PyJWTError as exc:
            return f"JWT not signed with the App's key as RS256 ({type(exc).__name__})"
        now = self.clock()
        if str(claims.get("iss")) != self.app.app_id:
            return f"JWT iss is {claims.get('iss')!r}, not the App id {self.app.app_id}"
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int):
            return "JWT lacks integer iat/exp"
        if iat > now:
            return "JWT issued in the future"
        if exp <= now or exp - now > 600:
            return f"JWT exp must be in the next 10 minutes (is {exp - now:+.0f}s)"
        return ""

    # --- helpers -----------------------------------------------------------------------------

    def _page(self, request: Recorded, items: list[dict[str, Any]]) -> Reply:
        """One page, with ``Link`` to the next and last pages as GitHub sends them."""
        per_page = min(100, int(request.param("per_page", "30") or 30))
        page = int(request.param("page", "1") or 1)
        last = max(1, -(-len(items) // per_page))
        links = []
        for rel, number in (("next", page + 1), ("last", last)):
            if page < last:
                query = {k: v[0] for k, v in request.query.items()} | {"page": str(number)}
                links.append(f'<{self.url}{request.path}?{urllib.parse.urlencode(query)}>; rel="{rel}"')
        headers = {"Link": ", ".join(links)} if links else {}
        return Reply.json(200, items[(page - 1) * per_page : page * per_page], headers)

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _now_iso(self) -> str:
        return _iso(self.clock())


def _spec_operation(method: str, path: str) -> tuple[dict[str, Any], str] | None:
    """The described operation for a request, and its path as openapi-core can match it.

    GitHub marks some path parameters ``x-multi-segment`` (a ref ``heads/main``, a compare
    ``main...promote/api``): their slashes are part of the value. openapi-core does not know the
    extension, so those values are handed to it with their slashes escaped.
    """
    document = spec_document()
    for template, item in document["paths"].items():
        operation = item.get(method.lower())
        if operation is None:
            continue
        multi = _multi_segment(document, operation)
        names = re.findall(r"{([^}]+)}", template)
        pattern = re.escape(template)
        for name in names:
            pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{'.+' if name in multi else '[^/]+'})")
        match = re.fullmatch(pattern, path)
        if match:
            rebuilt = template
            for name in names:
                rebuilt = rebuilt.replace("{" + name + "}", urllib.parse.quote(match[name], safe="%"))
            return operation, rebuilt
    return None


def _multi_segment(document: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    out = set()
    for parameter in operation.get("parameters", []):
        if "$ref" in parameter:
            parameter = document["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[-1]]
        if parameter.get("in") == "path" and parameter.get("x-multi-segment"):
            out.add(parameter["name"])
    return out


def _combined_state(states: set[str]) -> str:
    """GitHub's rule: failure if any context failed or errored, pending if any is pending or there
    are none, else success."""
    if states & {"failure", "error"}:
        return "failure"
    return "pending" if not states or "pending" in states else "success"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _validation_failed(resource: str, message: str) -> Reply:
    error = {"resource": resource, "code": "custom", "message": message}
    return Reply.json(422, {"message": "Validation Failed", "errors": [error], "documentation_url": DOCS})


def _explain(exc: Exception) -> str:
    """openapi-core's error with the schema errors underneath it (which field, what rule)."""
    parts = [str(exc)]
    cause = exc.__cause__
    for error in getattr(cause, "schema_errors", None) or []:
        where = "/".join(str(p) for p in error.absolute_path)
        parts.append(f"at /{where}: {error.message}")
    return "; ".join(parts)[:2000]
