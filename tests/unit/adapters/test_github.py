"""The GitHub client against a loopback GitHub held to GitHub's OpenAPI description.

Every test's double must end with no contract violations (checked when the fixture closes);
time is a fake clock shared by the client and the double, so waits are asserted, not slept.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from gitops_agent.adapters import github as github_module
from gitops_agent.adapters.github import GitHubClient
from gitops_agent.adapters.github_auth import JWT_BACKDATE, JWT_LIFETIME, AppAuth, app_jwt
from gitops_agent.adapters.http_retry import RetryPolicy
from gitops_agent.core.report import EnvironmentReport, Phase, StatusState, StatusUpdate, change_counts, commit_status
from gitops_agent.errors import ReportError
from gitops_agent.model import Action, Change, ChangeSet, ObjectKey
from tests.doubles import github_server as server_module
from tests.doubles.github_server import SPEC_PATH, GitHubServer, TestApp, generate_app_key
from tests.doubles.loopback import (
    FakeClock,
    Fault,
    Recorded,
    Reply,
    hang,
    malformed_json,
    rate_limited,
    retry_after,
    server_error,
)

SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
REPOSITORY = "octo-org/gitops-config"
APP_ID, INSTALLATION = "4242", 77
STATUSES = f"/repos/{REPOSITORY}/statuses/"
#: backoff with random() == 0.5 and the default policy: 0.75 s, 1.5 s, 3 s
FIRST_BACKOFF, SECOND_BACKOFF = 0.75, 1.5


@pytest.fixture(scope="module")
def app_key() -> tuple[str, str]:
    return generate_app_key()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def github(clock: FakeClock, app_key: tuple[str, str]) -> Iterator[GitHubServer]:
    server = GitHubServer(app=TestApp(APP_ID, INSTALLATION, app_key[1]), clock=clock)
    with server:
        yield server
    assert server.violations == [], "requests or answers broke GitHub's OpenAPI description"


def make_client(github: GitHubServer, clock: FakeClock, auth: Any = None, **kw: Any) -> GitHubClient:
    return GitHubClient(
        github.url,
        REPOSITORY,
        auth if auth is not None else github.token,
        clock=clock,
        sleep=clock.sleep,
        random=lambda: 0.5,
        retry=kw.pop("retry", RetryPolicy(timeout=2.0)),
        **kw,
    )


@pytest.fixture
def client(github: GitHubServer, clock: FakeClock) -> Iterator[GitHubClient]:
    with make_client(github, clock) as c:
        yield c


@pytest.fixture
def app_client(github: GitHubServer, clock: FakeClock, app_key: tuple[str, str]) -> Iterator[GitHubClient]:
    with make_client(github, clock, AppAuth(APP_ID, str(INSTALLATION), app_key[0])) as c:
        yield c


def status_posts(github: GitHubServer) -> list[Recorded]:
    return [r for r in github.requests if r.path.startswith(STATUSES)]


def report(phase: Phase, **kw: Any) -> EnvironmentReport:
    return EnvironmentReport(environment="prod", commit=SHA, phase=phase, **kw)


def created(n: int) -> str:
    return change_counts(
        ChangeSet.of(Change(ObjectKey("", "ConfigMap", "shop", f"c{i}"), Action.CREATED) for i in range(n))
    )


# --- the contract -------------------------------------------------------------------------------


def test_the_openapi_description_is_present() -> None:
    assert SPEC_PATH.is_file(), (
        f"GitHub's OpenAPI description is missing at {SPEC_PATH} (tests/doubles/github_api/PROVENANCE.md)"
    )


def test_every_method_sends_requests_github_documents(client: GitHubClient, github: GitHubServer) -> None:
    client.create_status(SHA, commit_status(report(Phase.APPLYING, target_url="https://agent.example/prod")))
    client.get_combined_status(SHA)
    client.list_statuses(SHA)
    pr = client.create_pull_request(title="Promote api to prod", head="promote/api", base="main", body="…")
    client.list_pulls(head="promote/api", state="open", base="main")
    comment = client.create_issue_comment(pr["number"], "preview")
    client.update_issue_comment(comment["id"], "preview, updated")
    client.list_issue_comments(pr["number"])
    client.compare("main", "promote/api")
    operations = {(r.method, r.path.split("/")[4]) for r in github.requests}
    assert operations == {
        ("POST", "statuses"), ("GET", "commits"), ("POST", "pulls"), ("GET", "pulls"),
        ("POST", "issues"), ("PATCH", "issues"), ("GET", "issues"), ("GET", "compare"),
    }  # fmt: skip
    assert github.violations == []


def test_the_double_catches_requests_that_break_the_contract(github: GitHubServer) -> None:
    """Zero violations above means something only because this is not zero."""
    httpx.post(f"{github.url}{STATUSES}{SHA}", json={"state": "done", "description": 7})
    assert any("header accept" in v for v in github.violations)
    assert any("Authorization is not a Bearer" in v for v in github.violations)
    assert any("'done' is not one of" in v for v in github.violations)
    github.violations.clear()


def test_the_double_checks_its_own_answers(clock: FakeClock) -> None:
    class Sloppy(GitHubServer):
        def _create_status(self, request: Recorded, params: dict[str, str]) -> Reply:
            return Reply.json(201, {"id": "not a number", "state": "success"})

    with Sloppy(clock=clock) as sloppy, make_client(sloppy, clock) as c:
        c.create_status(SHA, state="success", context="ci", description="ok")
    assert any("the double's 201 answer breaks the spec" in v for v in sloppy.violations)


def test_headers_github_asks_for(client: GitHubClient, github: GitHubServer) -> None:
    client.get_combined_status(SHA)
    headers = github.requests[-1].headers
    assert headers["accept"] == "application/vnd.github+json"
    assert headers["x-github-api-version"] == "2022-11-28"
    assert headers["authorization"] == f"Bearer {github.token}"
    assert headers["user-agent"].startswith("gitops-agent/")


# --- statuses -----------------------------------------------------------------------------------


def test_pending_then_success(client: GitHubClient, github: GitHubServer) -> None:
    client.create_status(SHA, commit_status(report(Phase.APPLYING, changes=created(3))))
    assert client.get_combined_status(SHA)["state"] == "pending"
    client.create_status(SHA, commit_status(report(Phase.PROGRESSING, changes=created(3), health_message="api 1/3")))
    client.create_status(SHA, commit_status(report(Phase.HEALTHY, changes=created(3))))
    combined = client.get_combined_status(SHA)
    assert combined["state"] == "success"
    assert [(s["context"], s["description"]) for s in combined["statuses"]] == [
        ("gitops-agent/prod", "3 created; rollout healthy")
    ]
    assert [s["state"] for s in client.list_statuses(SHA)] == ["success", "pending", "pending"]


def test_pending_then_failure(client: GitHubClient, github: GitHubServer) -> None:
    client.create_status(SHA, commit_status(report(Phase.APPLYING)))
    message = "api 0/3 ready, CrashLoopBackOff in container app"
    client.create_status(SHA, commit_status(report(Phase.ROLLOUT_FAILED, health_message=message)))
    combined = client.get_combined_status(SHA)
    assert combined["state"] == "failure"
    assert combined["statuses"][0]["description"] == f"rollout failed: {message}"


def test_error_status_reads_well_and_fits(client: GitHubClient, github: GitHubServer) -> None:
    error = "overlays/prod/kustomization.yaml: accumulating resources:\n" + "missing file base/extra.yaml " * 10
    client.create_status(SHA, commit_status(report(Phase.RENDERING_FAILED, error=error)))
    (posted,) = github.statuses
    assert posted["state"] == "error"
    assert posted["description"].startswith("rendering failed: overlays/prod/kustomization.yaml: accumulating")
    assert len(posted["description"]) <= 140 and posted["description"].endswith("…")
    assert client.get_combined_status(SHA)["state"] == "failure"


def test_keyword_form_cuts_a_long_description(client: GitHubClient, github: GitHubServer) -> None:
    """The form ``preview.py`` uses; GitHub would answer 422 to 141 characters."""
    client.create_status(SHA, state="failure", context="gitops-agent/preview/prod", description="x " * 200)
    assert len(github.statuses[0]["description"]) <= 140


def test_identical_states_are_not_posted_again(client: GitHubClient, github: GitHubServer) -> None:
    pending = commit_status(report(Phase.APPLYING))
    healthy = commit_status(report(Phase.HEALTHY))
    for update in (pending, pending, healthy, healthy, healthy):
        client.create_status(SHA, update)
    other_env = StatusUpdate("gitops-agent/staging", StatusState.SUCCESS, "no changes; healthy")
    client.create_status(SHA, other_env)
    client.create_status("f" * 40, healthy)  # another commit
    client.create_status(SHA, pending)  # back to pending is a change
    assert [(s["sha"][:1], s["context"], s["state"]) for s in github.statuses] == [
        ("6", "gitops-agent/prod", "pending"),
        ("6", "gitops-agent/prod", "success"),
        ("6", "gitops-agent/staging", "success"),
        ("f", "gitops-agent/prod", "success"),
        ("6", "gitops-agent/prod", "pending"),
    ]


def test_a_changed_link_is_posted(client: GitHubClient, github: GitHubServer) -> None:
    client.create_status(SHA, commit_status(report(Phase.HEALTHY, target_url="https://a/1")))
    client.create_status(SHA, commit_status(report(Phase.HEALTHY, target_url="https://a/2")))
    assert [s["target_url"] for s in github.statuses] == ["https://a/1", "https://a/2"]


def test_no_more_than_the_cap_per_sha_and_context(
    client: GitHubClient, github: GitHubServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(github_module, "STATUS_CAP", 3)
    for i in range(5):
        client.create_status(SHA, state="pending", context="gitops-agent/prod", description=f"step {i}")
    assert [s["description"] for s in github.statuses] == ["step 0", "step 1", "step 2"]
    assert "GitHub's cap" in caplog.text


def test_githubs_own_cap_is_a_readable_error(
    client: GitHubClient, github: GitHubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a restart the client's count starts again; GitHub's 422 then says what happened."""
    monkeypatch.setattr(server_module, "STATUS_CAP", 1)
    client.create_status(SHA, state="pending", context="gitops-agent/prod", description="one")
    with pytest.raises(ReportError, match=r"422 Validation Failed \(This SHA and context has reached the maximum"):
        client.create_status(SHA, state="success", context="gitops-agent/prod", description="two")


# --- resilience ---------------------------------------------------------------------------------


def test_server_errors_are_retried_with_backoff(client: GitHubClient, github: GitHubServer, clock: FakeClock) -> None:
    github.inject(server_error(500), times=2)
    client.create_status(SHA, commit_status(report(Phase.APPLYING)))
    assert len(status_posts(github)) == 3 and len(github.statuses) == 1
    assert clock.sleeps == [FIRST_BACKOFF, SECOND_BACKOFF]


def test_server_errors_give_up_after_the_attempts(client: GitHubClient, github: GitHubServer, clock: FakeClock) -> None:
    github.inject(server_error(502), times=10)
    with pytest.raises(ReportError, match=r"GitHub POST .*/statuses/.*: answered 502 Bad Gateway .*4 attempts"):
        client.create_status(SHA, commit_status(report(Phase.APPLYING)))
    assert len(status_posts(github)) == 4 and len(clock.sleeps) == 3


def test_retry_after_is_honoured(client: GitHubClient, github: GitHubServer, clock: FakeClock) -> None:
    github.inject(retry_after(7, status=429))
    client.create_status(SHA, commit_status(report(Phase.APPLYING)))
    assert clock.sleeps == [7.0] and len(github.statuses) == 1


def test_secondary_limit_403_with_retry_after(client: GitHubClient, github: GitHubServer, clock: FakeClock) -> None:
    github.inject(retry_after(20, status=403))
    client.get_combined_status(SHA)
    assert clock.sleeps == [20.0]


def test_secondary_limit_without_retry_after_waits_a_minute(
    client: GitHubClient, github: GitHubServer, clock: FakeClock
) -> None:
    github.inject(Fault(403, b'{"message": "You have exceeded a secondary rate limit."}'))
    client.get_combined_status(SHA)
    assert clock.sleeps == [60.0]


def test_a_plain_403_is_not_retried(client: GitHubClient, github: GitHubServer, clock: FakeClock) -> None:
    github.inject(Fault(403, b'{"message": "Resource not accessible by integration"}'))
    with pytest.raises(ReportError, match="403 Resource not accessible by integration; the token lacks a permission"):
        client.create_status(SHA, commit_status(report(Phase.APPLYING)))
    assert clock.sleeps == [] and len(status_posts(github)) == 1


@pytest.mark.parametrize("status", [403, 429])
def test_primary_rate_limit_waits_until_reset(
    client: GitHubClient, github: GitHubServer, clock: FakeClock, status: int
) -> None:
    github.inject(rate_limited(clock.now + 30, status=status))
    client.create_status(SHA, commit_status(report(Phase.APPLYING)))
    assert clock.sleeps == [31.0]  # until the reset, and a second for clock skew
    assert len(github.statuses) == 1


def test_rate_limit_reset_beyond_the_longest_wait_says_when(
    client: GitHubClient, github: GitHubServer, clock: FakeClock
) -> None:
    github.inject(rate_limited(clock.now + 1800))
    with pytest.raises(ReportError, match=r"rate limit exhausted .*not waiting 1801s, try again after 2025-06-15 "):
        client.create_status(SHA, commit_status(report(Phase.APPLYING)))
    assert clock.sleeps == [] and github.statuses == []


def test_a_timeout_is_retried(github: GitHubServer, clock: FakeClock) -> None:
    github.inject(hang(1.0))
    with make_client(github, clock, retry=RetryPolicy(timeout=0.2)) as c:
        assert c.get_combined_status(SHA)["state"] == "pending"
    assert clock.sleeps == [FIRST_BACKOFF]


def test_github_unreachable_is_a_report_error(clock: FakeClock) -> None:
    with GitHubServer(clock=clock) as gone:
        url = gone.url
    c = GitHubClient(url, REPOSITORY, "ghp_x", clock=clock, sleep=clock.sleep, random=lambda: 0.5)
    with pytest.raises(ReportError, match=r"network error: could not connect .*4 attempts"):
        c.get_combined_status(SHA)
    assert clock.sleeps == [0.75, 1.5, 3.0]


def test_malformed_json_is_a_report_error(client: GitHubClient, github: GitHubServer) -> None:
    github.inject(malformed_json(201))
    with pytest.raises(ReportError, match="answered 201 with a body that is not JSON"):
        client.create_status(SHA, commit_status(report(Phase.APPLYING)))


def test_an_unexpected_shape_is_a_report_error(client: GitHubClient, github: GitHubServer) -> None:
    github.inject(Fault(200, b'{"message": "a list was expected"}'))
    with pytest.raises(ReportError, match="expected a JSON list"):
        client.list_statuses(SHA)


def test_failed_post_is_not_remembered(client: GitHubClient, github: GitHubServer) -> None:
    """A status that never reached GitHub is posted again on the next pass."""
    github.inject(server_error(500), times=4)
    with pytest.raises(ReportError):
        client.create_status(SHA, commit_status(report(Phase.HEALTHY)))
    client.create_status(SHA, commit_status(report(Phase.HEALTHY)))
    assert len(github.statuses) == 1


def test_requests_are_counted_for_metrics(github: GitHubServer, clock: FakeClock) -> None:
    seen: list[tuple[str, int]] = []
    github.inject(server_error(503))
    with make_client(github, clock, on_request=lambda verb, code: seen.append((verb, code))) as c:
        c.create_status(SHA, commit_status(report(Phase.APPLYING)))
    assert seen == [("POST", 503), ("POST", 201)]


def test_unknown_repository_names_what_to_check(github: GitHubServer, clock: FakeClock) -> None:
    c = GitHubClient(github.url, "octo-org/no-such-repo", github.token, clock=clock, sleep=clock.sleep)
    with pytest.raises(ReportError, match=r"404 Not Found; check github.repository \(octo-org/no-such-repo\)"):
        c.get_combined_status(SHA)


# --- pull requests and comments -----------------------------------------------------------------


def test_list_pulls_by_branch_finds_only_that_branch(client: GitHubClient, github: GitHubServer) -> None:
    """GitHub ignores ``head=branch`` without the owner and lists every pull request."""
    client.create_pull_request(title="a", head="promote/a", base="main", body="")
    client.create_pull_request(title="b", head="promote/b", base="main", body="")
    found = client.list_pulls(head="promote/b")
    assert [p["title"] for p in found] == ["b"]
    assert github.requests[-1].query["head"] == ["octo-org:promote/b"]


def test_a_second_pull_request_for_a_branch_is_a_readable_error(client: GitHubClient, github: GitHubServer) -> None:
    client.create_pull_request(title="a", head="promote/a", base="main", body="")
    with pytest.raises(
        ReportError, match="422 Validation Failed \\(A pull request already exists for octo-org:promote/a"
    ):
        client.create_pull_request(title="a", head="promote/a", base="main", body="")


def test_lists_follow_every_page(client: GitHubClient, github: GitHubServer) -> None:
    for i in range(150):
        github.comments.append({**github._comment_object(9, f"comment {i}"), "issue": 9})
    comments = client.list_issue_comments(9)
    assert [c["body"] for c in comments] == [f"comment {i}" for i in range(150)]
    assert [r.param("page") for r in github.requests] == [None, "2"]


def test_comment_update_round_trip(client: GitHubClient, github: GitHubServer) -> None:
    comment = client.create_issue_comment(3, "<!-- marker --> first")
    client.update_issue_comment(comment["id"], "<!-- marker --> second")
    assert [c["body"] for c in client.list_issue_comments(3)] == ["<!-- marker --> second"]


# --- GitHub App ---------------------------------------------------------------------------------


def test_app_jwt_claims(app_key: tuple[str, str]) -> None:
    token = app_jwt(AppAuth(APP_ID, str(INSTALLATION), app_key[0]), 1_000_000.0)
    claims = jwt.decode(token, app_key[1], algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False})
    assert claims == {"iat": 1_000_000 - JWT_BACKDATE, "exp": 1_000_000 + JWT_LIFETIME, "iss": APP_ID}
    assert JWT_LIFETIME <= 600


def test_app_token_is_fetched_once_and_reused(app_client: GitHubClient, github: GitHubServer) -> None:
    app_client.create_status(SHA, commit_status(report(Phase.APPLYING)))
    app_client.get_combined_status(SHA)
    (token,) = github.tokens
    assert github.authorizations("/repos/") == [f"Bearer {token.token}"] * 2


def test_app_token_is_refreshed_before_it_expires(
    app_client: GitHubClient, github: GitHubServer, clock: FakeClock
) -> None:
    app_client.create_status(SHA, commit_status(report(Phase.APPLYING)))
    clock.advance(3600)  # the double now refuses the first token
    app_client.create_status(SHA, commit_status(report(Phase.HEALTHY)))
    first, second = github.tokens
    assert [r.path.split("/")[-1] for r in github.requests] == ["access_tokens", SHA, "access_tokens", SHA]
    assert github.authorizations(STATUSES) == [f"Bearer {first.token}", f"Bearer {second.token}"]
    assert len(github.statuses) == 2


def test_app_token_within_the_margin_is_replaced(
    app_client: GitHubClient, github: GitHubServer, clock: FakeClock
) -> None:
    app_client.get_combined_status(SHA)
    clock.advance(3600 - 299)  # still valid for 299 s: too close to trust for a pass
    app_client.get_combined_status(SHA)
    assert len(github.tokens) == 2


def test_revoked_app_token_is_replaced_once(app_client: GitHubClient, github: GitHubServer) -> None:
    app_client.get_combined_status(SHA)
    github.revoke_tokens()
    app_client.create_status(SHA, commit_status(report(Phase.APPLYING)))
    assert len(github.tokens) == 2 and len(status_posts(github)) == 2 and len(github.statuses) == 1


def test_app_token_refused_twice_is_an_error(app_client: GitHubClient, github: GitHubServer) -> None:
    github.inject(Fault(401, b'{"message": "Bad credentials"}', path=STATUSES), times=2)
    with pytest.raises(ReportError, match="401 Bad credentials; check the token"):
        app_client.create_status(SHA, commit_status(report(Phase.APPLYING)))
    assert len(status_posts(github)) == 2 and len(github.tokens) == 2


def test_wrong_installation_is_a_readable_error(
    github: GitHubServer, clock: FakeClock, app_key: tuple[str, str]
) -> None:
    with make_client(github, clock, AppAuth(APP_ID, "99", app_key[0])) as c, pytest.raises(ReportError) as err:
        c.get_combined_status(SHA)
    assert "GitHub App 4242: POST /app/installations/99/access_tokens: 404 Not Found; check app_id" in str(err.value)


def test_a_bad_private_key_is_named_not_shown(github: GitHubServer, clock: FakeClock) -> None:
    key = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----\n"
    with make_client(github, clock, AppAuth(APP_ID, str(INSTALLATION), key)) as c, pytest.raises(ReportError) as err:
        c.get_combined_status(SHA)
    assert "private key is not a usable RSA PEM key" in str(err.value)
    assert "bm90IGEga2V5" not in str(err.value) and err.value.__cause__ is None


# --- secrets ------------------------------------------------------------------------------------


def error_text(err: pytest.ExceptionInfo[ReportError]) -> str:
    return str(err.value) + repr(err.value) + "".join(traceback.format_exception(err.value))


def test_token_never_in_errors_or_logs(
    github: GitHubServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = "ghp_wrongTokenThatMustNotLeak0123456789"
    with make_client(github, clock, token) as c:
        with pytest.raises(ReportError) as refused:
            c.get_combined_status(SHA)
        github.inject(Fault(422, f'{{"message": "token {token} is not valid here"}}'.encode()))
        with pytest.raises(ReportError) as echoed:
            c.create_status(SHA, commit_status(report(Phase.APPLYING)))
        github.inject(server_error(500), times=4)
        with pytest.raises(ReportError) as retried:
            c.get_combined_status(SHA)
    assert "401 Bad credentials" in str(refused.value) and "token *** is not valid" in str(echoed.value)
    for err in (refused, echoed, retried):
        assert token not in error_text(err)
    assert token not in caplog.text
    assert token not in repr(c._auth)


def test_app_credentials_never_in_errors_or_logs(
    app_client: GitHubClient, github: GitHubServer, app_key: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app_client.get_combined_status(SHA)
    (token,) = github.tokens
    github.inject(Fault(401, f'{{"message": "{token.token} revoked"}}'.encode(), path=STATUSES), times=2)
    with pytest.raises(ReportError) as err:
        app_client.create_status(SHA, commit_status(report(Phase.APPLYING)))
    secrets = [t.token for t in github.tokens] + [a.removeprefix("Bearer ") for a in github.authorizations()]
    for secret in [*secrets, app_key[0].splitlines()[1]]:
        assert secret not in error_text(err) and secret not in caplog.text
