"""The HTTP server over real loopback HTTP, in front of a real Scheduler over a fake Agent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gitops_agent.core.ledger import FAILED
from gitops_agent.core.webhook import parse_push, signature, verify_signature
from gitops_agent.errors import ConfigError
from gitops_agent.reconcile import PassResult
from gitops_agent.scheduler import Previewer, Scheduler, SchedulerOptions
from gitops_agent.server import AgentServer, parse_listen, read_webhook_secret
from gitops_agent.status_page import status_html
from tests.support.fake_agent import COMMIT, FakeAgent
from tests.support.polling import wait_until

SECRET = b"It's a Secret to Everybody"


# --- signatures (pure) ----------------------------------------------------------------------------


def test_githubs_own_test_vector() -> None:
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature(SECRET, b"Hello, World!") == expected
    assert verify_signature(SECRET, b"Hello, World!", expected)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e18",
        "sha256=",
    ],
    ids=["missing", "empty", "no-prefix", "sha1", "one-digit-off", "prefix-only"],
)
def test_anything_but_the_exact_signature_is_refused(header: str | None) -> None:
    assert not verify_signature(SECRET, b"Hello, World!", header)


def test_parse_push() -> None:
    assert parse_push(b'{"ref": "refs/heads/main", "after": "abc"}') is not None
    assert parse_push(b"[]") is None
    assert parse_push(b"{not json") is None
    assert parse_push(b'{"zen": "Keep it logically awesome."}') is None


@pytest.mark.parametrize(
    ("listen", "address"),
    [("0.0.0.0:8080", ("0.0.0.0", 8080)), (":9000", ("0.0.0.0", 9000)), ("[::1]:8080", ("::1", 8080))],
)
def test_parse_listen(listen: str, address: tuple[str, int]) -> None:
    assert parse_listen(listen) == address


@pytest.mark.parametrize("listen", ["8080", "host:", "host:http", "host:70000"])
def test_parse_listen_refuses(listen: str) -> None:
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        parse_listen(listen)


def test_read_webhook_secret(tmp_path: Path) -> None:
    (tmp_path / "s").write_bytes(SECRET + b"\n")
    assert read_webhook_secret(str(tmp_path / "s")) == SECRET
    assert read_webhook_secret(None) is None
    (tmp_path / "empty").write_bytes(b"\n")
    with pytest.raises(ConfigError, match="empty"):
        read_webhook_secret(str(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="cannot read the webhook secret"):
        read_webhook_secret(str(tmp_path / "missing"))


# --- over HTTP --------------------------------------------------------------------------------------


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def previews() -> PreviewCalls:
    return PreviewCalls()


class PreviewCalls:
    """The scheduler's previewer in these tests: does what the test sets ``handler`` to."""

    def __init__(self) -> None:
        self.handler: Previewer | None = None

    def __call__(self, number: int, sha: str, base: str) -> object:
        assert self.handler is not None, "this test expects no preview"
        return self.handler(number, sha, base)


@pytest.fixture
def daemon(agent: FakeAgent, request: pytest.FixtureRequest) -> Iterator[Scheduler]:
    """The scheduler; with previews (as with a ``github:`` section) for tests that use ``previews``."""
    previewer = request.getfixturevalue("previews") if "previews" in request.fixturenames else None
    d = Scheduler(agent, options=SchedulerOptions(identity="pod-a-1x2y", probe_interval_s=0), previewer=previewer)
    d.start()
    d.set_leading(True)
    wait_until(lambda: all(v.last for v in d.status().environments))
    yield d
    for gate in agent.gates.values():
        gate.set()
    d.stop()


def serve(daemon: Scheduler, secret: bytes | None, token: bytes | None = None) -> AgentServer:
    loopback = ("127.0.0.1", 0)
    server = AgentServer(loopback, daemon, webhook_secret=secret, status_address=loopback, status_token=token)
    server.start()
    return server


@pytest.fixture
def server(daemon: Scheduler) -> Iterator[AgentServer]:
    server = serve(daemon, SECRET)
    yield server
    server.stop()


@pytest.fixture
def http(server: AgentServer) -> Iterator[httpx.Client]:
    """The webhook listener."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture
def status_http(server: AgentServer) -> Iterator[httpx.Client]:
    """The status listener."""
    assert server.status_url is not None
    with httpx.Client(base_url=server.status_url, timeout=10) as client:
        yield client


def deliver(http: httpx.Client, payload: object, *, event: str = "push", secret: bytes = SECRET) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": "d-1", "X-Hub-Signature-256": signature(secret, body)}
    return http.post("/webhooks/github", content=body, headers=headers)


def test_a_signed_push_passes_the_environments_of_its_branch(http: httpx.Client, agent: FakeAgent) -> None:
    response = deliver(http, {"ref": "refs/heads/main", "after": COMMIT})
    assert response.status_code == 202
    assert response.json() == {
        "event": "push", "ref": "refs/heads/main", "environments": ["dev"], "leader": True, "relayed": False,
    }  # fmt: skip
    wait_until(lambda: agent.passes["dev"] == 2)
    assert agent.passes["prod"] == 1


def test_unsigned_or_badly_signed_webhooks_are_refused(http: httpx.Client, agent: FakeAgent) -> None:
    body = b'{"ref": "refs/heads/main"}'
    assert http.post("/webhooks/github", content=body, headers={"X-GitHub-Event": "push"}).status_code == 401
    assert deliver(http, {"ref": "refs/heads/main"}, secret=b"guess").status_code == 401
    signed_other = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature(SECRET, b"{}")}
    assert http.post("/webhooks/github", content=body, headers=signed_other).status_code == 401
    assert agent.passes["dev"] == 1


def test_without_a_secret_webhooks_are_refused_with_503(
    daemon: Scheduler, agent: FakeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(daemon, None)
    try:
        with httpx.Client(base_url=server.url) as client:
            response = deliver(client, {"ref": "refs/heads/main"})
    finally:
        server.stop()
    assert response.status_code == 503
    assert "no webhook secret configured (set server.webhook_secret_file)" in caplog.text
    assert agent.passes["dev"] == 1


def test_other_events_are_acknowledged_and_ignored(http: httpx.Client, agent: FakeAgent) -> None:
    response = deliver(http, {"zen": "Design for failure.", "hook_id": 1}, event="ping")
    assert (response.status_code, response.json()) == (202, {"event": "ping", "ignored": True})
    labeled = deliver(http, pr_payload("labeled", 3, "d" * 40), event="pull_request")
    assert (labeled.status_code, labeled.json()["ignored"]) == (202, True)
    assert agent.passes["dev"] == 1


def test_a_push_of_a_tag_or_another_branch_triggers_nothing(http: httpx.Client) -> None:
    assert deliver(http, {"ref": "refs/tags/v1.0.0"}).json()["environments"] == []
    assert deliver(http, {"ref": "refs/heads/feature"}).json()["environments"] == []


def test_a_signed_body_that_is_not_a_push_is_a_bad_request(http: httpx.Client) -> None:
    assert deliver(http, {"no": "ref"}).status_code == 400


def test_a_flood_of_pushes_is_coalesced_into_one_more_pass(
    http: httpx.Client, daemon: Scheduler, agent: FakeAgent
) -> None:
    gate = agent.hold("prod")
    daemon.push("refs/heads/release")
    assert agent.entered["prod"].wait(5)
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: deliver(http, {"ref": "refs/heads/release"}).status_code, range(40)))
    assert codes == [202] * 40
    gate.set()
    wait_until(lambda: agent.passes["prod"] == 3)  # the first, the one held, one more for the flood
    wait_until(lambda: not daemon.status().environments[1].running)
    assert agent.passes["prod"] == 3 and agent.max_active["prod"] == 1


def test_healthz(http: httpx.Client, status_http: httpx.Client) -> None:
    for client in (http, status_http):
        response = client.get("/healthz")
        assert (response.status_code, response.text) == (200, "ok\n")


def test_readyz_says_why_not(agent: FakeAgent) -> None:
    answers = iter(["cluster (default context) is not reachable: connection refused", None, None])
    daemon = Scheduler(agent, probe=lambda: next(answers), options=SchedulerOptions(probe_interval_s=0))
    server = serve(daemon, SECRET)
    try:
        with httpx.Client(base_url=server.url) as client:
            first = client.get("/readyz")
            daemon._fetch_if_stale()
            second = client.get("/readyz")
    finally:
        server.stop()
    assert first.status_code == 503
    assert first.text.splitlines() == [
        "the config repository was not fetched yet",
        "cluster (default context) is not reachable: connection refused",
    ]
    assert (second.status_code, second.text) == (200, "ready\n")


def test_metrics_parse_as_prometheus_text(status_http: httpx.Client) -> None:
    response = status_http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    requests = {s.labels["verb"]: s.value for s in families["gitops_agent_kubernetes_requests"].samples}
    assert requests == {"get": 2, "apply": 1}
    passes = families["gitops_agent_passes"].samples
    assert {(s.labels["environment"], s.value) for s in passes if s.name.endswith("_total")} == {
        ("dev", 1),
        ("prod", 1),
    }
    assert families["gitops_agent_leader"].samples[0].value == 1


def test_status_json(status_http: httpx.Client) -> None:
    data = status_http.get("/status").json()
    assert (data["leader"], data["identity"], data["ready"]) == (True, "pod-a-1x2y", True)
    dev = data["environments"][0]
    assert dev["name"] == "dev" and dev["branch"] == "main" and dev["commit"] == COMMIT
    assert (dev["outcome"], dev["ok"], dev["drift"]) == ("up-to-date", True, {"expected": 0, "unexpected": 0})
    assert dev["last_success_at"].endswith("Z") and dev["interval_s"] == 3600
    assert data["environments"][1]["branch"] == "release"
    assert data["watch_cache"] is None  # a server told of no watch cache


def test_status_json_says_what_the_watch_cache_holds(daemon: Scheduler) -> None:
    loopback = ("127.0.0.1", 0)
    sizes = {"prod": 2, "dev": 5}
    server = AgentServer(loopback, daemon, webhook_secret=SECRET, status_address=loopback, watch_cache=lambda: sizes)
    server.start()
    try:
        data = httpx.get(f"{server.status_url}/status", timeout=10).json()
    finally:
        server.stop()
    assert data["watch_cache"] == {"objects": 7, "environments": {"dev": 5, "prod": 2}}


def test_the_page_for_people_escapes_everything(status_http: httpx.Client, daemon: Scheduler, agent: FakeAgent) -> None:
    agent.result = lambda env: PassResult(env.name, COMMIT, FAILED, error="ConfigMap/<script>alert(1)</script>")
    daemon.trigger(["dev"])
    wait_until(lambda: agent.passes["dev"] == 2)
    wait_until(lambda: daemon.status().environments[0].last.outcome == FAILED)  # type: ignore[union-attr]
    html = {"Accept": "text/html,application/xhtml+xml"}
    for page in (status_http.get("/"), status_http.get("/status", headers=html)):
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "<script>" not in page.text
        assert "ConfigMap/&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_status_html_names_the_role() -> None:
    from gitops_agent.scheduler import SchedulerStatus

    page = status_html(SchedulerStatus(False, "pod-b", ("repo not fetched <yet>",), "", ()))
    assert "follower pod-b — not ready: repo not fetched &lt;yet&gt;" in page


def test_unknown_pages(http: httpx.Client, status_http: httpx.Client) -> None:
    assert http.get("/nope").status_code == 404
    assert status_http.post("/status").status_code == 404
    assert status_http.post("/webhooks/github", content=b"{}").status_code == 404  # webhooks: the other listener


def test_status_and_metrics_are_served_only_on_the_status_listener(http: httpx.Client) -> None:
    for path in ("/status", "/", "/metrics"):
        assert http.get(path).status_code == 404, path


def test_a_status_token_is_required_when_configured(daemon: Scheduler) -> None:
    server = serve(daemon, SECRET, token=b"let-me-see")
    try:
        assert server.status_url is not None
        with httpx.Client(base_url=server.status_url) as client:
            for path in ("/status", "/", "/metrics"):
                refused = client.get(path)
                assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer", path
                assert client.get(path, headers={"Authorization": "Bearer let-me-s"}).status_code == 401
                assert client.get(path, headers={"Authorization": "Basic let-me-see"}).status_code == 401
                assert client.get(path, headers={"Authorization": "Bearer let-me-see"}).status_code == 200
            assert client.get("/healthz").status_code == 200  # the probes need no token
            assert client.get("/readyz").status_code in (200, 503)
    finally:
        server.stop()


# --- pull_request webhooks: previews --------------------------------------------------------------


def pr_payload(action: str, number: int, sha: str) -> dict[str, object]:
    """A pull request from a branch of the repository itself: previewed without asking GitHub."""
    repo = {"full_name": "acme/config"}
    pull = {"head": {"sha": sha, "repo": repo}, "base": {"ref": "main", "repo": repo}}
    return {"action": action, "number": number, "pull_request": pull}


def test_a_signed_pull_request_queues_a_preview_of_its_newest_head(
    previews: PreviewCalls, http: httpx.Client, daemon: Scheduler
) -> None:
    seen: list[tuple[int, str, str]] = []
    gate = threading.Event()

    def previewer(number: int, sha: str, base: str) -> None:
        gate.wait(5)  # hold the first preview so the next pushes wait behind it
        seen.append((number, sha, base))

    previews.handler = previewer
    first = deliver(http, pr_payload("opened", 7, "a" * 40), event="pull_request")
    assert first.status_code == 202 and first.json() == {"event": "pull_request", "number": 7, "preview": True}
    wait_until(lambda: daemon.previews is not None and daemon.previews.waiting() == 0)  # the worker took the first
    for sha in ("b" * 40, "c" * 40):  # two pushes while the first preview runs: only the newest waits
        assert deliver(http, pr_payload("synchronize", 7, sha), event="pull_request").status_code == 202
    gate.set()
    wait_until(lambda: len(seen) == 2)
    assert seen == [(7, "a" * 40, "main"), (7, "c" * 40, "main")]


def test_pull_request_actions_that_change_nothing_are_ignored(
    previews: PreviewCalls, http: httpx.Client, daemon: Scheduler
) -> None:
    calls: list[int] = []
    previews.handler = lambda number, sha, base: calls.append(number)
    labeled = deliver(http, pr_payload("labeled", 7, "a" * 40), event="pull_request")
    assert labeled.status_code == 202 and labeled.json()["ignored"] is True
    assert deliver(http, {"zen": "no"}, event="pull_request").status_code == 400
    assert calls == []


def test_without_github_previews_are_not_configured(http: httpx.Client) -> None:
    answer = deliver(http, pr_payload("opened", 7, "a" * 40), event="pull_request").json()
    assert answer["preview"] is False
