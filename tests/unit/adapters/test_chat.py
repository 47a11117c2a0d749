"""Chat messages over loopback HTTP: each destination its own payload, retries within a bounded
time, and webhook URLs kept secret. (What is news: ``test_chat_reporting``.)"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from gitops_agent.adapters.chat import CHAT_RETRY, SLACK, WEBHOOK, ChatNotifier
from gitops_agent.adapters.http_retry import RetryPolicy
from gitops_agent.core.chat_report import SECRET_CHANGED, ChatMessage, DriftSummary, drift_message
from gitops_agent.core.drift import CHANGED, DriftedField, ObjectDrift
from gitops_agent.errors import ReportError
from gitops_agent.model import ObjectKey
from tests.doubles.chat_server import ChatServer
from tests.doubles.loopback import FakeClock, Fault, hang, retry_after, server_error

SHA = "0123456789abcdef0123456789abcdef01234567"
API = ObjectKey("apps", "Deployment", "shop", "api")
EDIT = DriftedField("/spec/template/spec/containers/0/image", "api:1.2", "api:1.3", "kubectl-edit", "", False)


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    with ChatServer() as server:
        yield server
    assert server.violations == [], "a payload Slack would refuse"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def notifier(
    chat: ChatServer, clock: FakeClock, *, slack: bool = True, webhook: bool = True, **kw: Any
) -> ChatNotifier:
    return ChatNotifier(
        slack_webhook_url=chat.slack_url if slack else None,
        webhook_url=chat.webhook_url if webhook else None,
        clock=clock,
        sleep=clock.sleep,
        random=lambda: 0.5,
        **kw,
    )


def drifted(*fields: DriftedField, env: str = "prod") -> DriftSummary:
    return DriftSummary(env, SHA, (ObjectDrift(API, CHANGED, fields or (EDIT,)),))


def clean(env: str = "prod") -> DriftSummary:
    return DriftSummary(env, SHA)


def appeared() -> ChatMessage:
    return drift_message(drifted(), "appeared")


def secrets_of(chat: ChatServer) -> list[str]:
    return [chat.slack_path.rsplit("/", 1)[-1], chat.webhook_path.rsplit("/", 1)[-1]]


# --- what is sent -----------------------------------------------------------------------------


def test_each_destination_gets_its_own_payload(chat: ChatServer, clock: FakeClock) -> None:
    n = notifier(chat, clock)
    assert n.destinations == (SLACK, WEBHOOK) and n.configured
    n.send(WEBHOOK, appeared())
    assert chat.slack_messages == [] and [p["event"] for p in chat.webhook_payloads] == ["drift.appeared"]
    n.post(drift_message(clean(), "resolved"))
    assert [m["text"].split(":")[0] for m in chat.slack_messages] == ["Drift in prod resolved"]
    assert [p["event"] for p in chat.webhook_payloads] == ["drift.appeared", "drift.resolved"]
    assert chat.webhook_payloads[0]["objects"][0]["fields"][0]["new"] == "api:1.3"


def test_huge_drift_is_a_message_slack_accepts(chat: ChatServer, clock: FakeClock) -> None:
    objects = tuple(
        ObjectDrift(ObjectKey("", "ConfigMap", "shop", f"cm-{i}"), CHANGED, tuple(
            DriftedField(f"/data/key-{j}", "x" * 400, "y" * 400, "kubectl-edit", "", False) for j in range(40)
        ))
        for i in range(200)
    )  # fmt: skip
    notifier(chat, clock).post(drift_message(DriftSummary("prod", SHA, objects), "appeared"))
    assert len(chat.slack_messages) == 1 and chat.webhook_payloads[0]["omitted_objects"] == 100


def test_secret_values_never_reach_chat(chat: ChatServer, clock: FakeClock) -> None:
    secret = ObjectDrift(
        ObjectKey("", "Secret", "shop", "db"),
        CHANGED,
        (DriftedField("/data/password", "aHVudGVyMg==", "c3dvcmRmaXNo", "kubectl-edit", "", False),),
    )
    notifier(chat, clock).post(drift_message(DriftSummary("prod", SHA, (secret,)), "appeared"))
    bodies = b"".join(r.body for r in chat.requests)
    assert b"aHVudGVyMg==" not in bodies and b"c3dvcmRmaXNo" not in bodies
    assert SECRET_CHANGED.encode() in bodies


def test_nothing_configured_sends_nothing(chat: ChatServer, clock: FakeClock) -> None:
    n = notifier(chat, clock, slack=False, webhook=False)
    n.post(appeared())
    assert not n.configured and n.destinations == () and chat.requests == []


# --- resilience -------------------------------------------------------------------------------


def test_server_errors_are_retried(chat: ChatServer, clock: FakeClock) -> None:
    chat.inject(server_error(503, path=chat.slack_path), times=2)
    notifier(chat, clock, webhook=False).send(SLACK, appeared())
    assert len(chat.slack_messages) == 1 and len(chat.requests) == 3
    assert clock.sleeps == [0.375, 0.75]  # CHAT_RETRY backoff, half fixed half jitter


def test_slack_retry_after_is_honoured(chat: ChatServer, clock: FakeClock) -> None:
    chat.inject(retry_after(3, path=chat.slack_path))
    notifier(chat, clock, webhook=False).post(appeared())
    assert clock.sleeps == [3.0] and len(chat.slack_messages) == 1


def test_a_long_retry_after_is_not_waited(chat: ChatServer, clock: FakeClock) -> None:
    chat.inject(retry_after(600, path=chat.slack_path))
    with pytest.raises(ReportError, match="Slack webhook: answered 429 with retry-after 600s; not waiting"):
        notifier(chat, clock, webhook=False).post(appeared())
    assert clock.sleeps == []


def test_a_refused_message_is_a_readable_error(chat: ChatServer, clock: FakeClock) -> None:
    chat.inject(Fault(400, b"invalid_blocks", content_type="text/plain"))
    with pytest.raises(ReportError, match=r"^Slack webhook: refused the message \(400 invalid_blocks\)$"):
        notifier(chat, clock, webhook=False).post(appeared())


def test_a_revoked_webhook_says_what_to_check(chat: ChatServer, clock: FakeClock) -> None:
    n = ChatNotifier(slack_webhook_url=chat.url + "/services/T0/B0/revoked", clock=clock, sleep=clock.sleep)
    with pytest.raises(ReportError, match=r"404 no_service\); the webhook URL is no longer valid"):
        n.post(appeared())


def test_one_destination_failing_does_not_keep_the_other_from_its_message(chat: ChatServer, clock: FakeClock) -> None:
    n = notifier(chat, clock)
    chat.inject(server_error(500, path=chat.slack_path), times=CHAT_RETRY.attempts)
    with pytest.raises(ReportError, match="Slack webhook: answered 500"):
        n.post(appeared())
    assert (len(chat.slack_messages), len(chat.webhook_payloads)) == (0, 1)


def test_an_outage_fails_fast(clock: FakeClock) -> None:
    with ChatServer() as gone:
        url = gone.slack_url
    n = ChatNotifier(slack_webhook_url=url, clock=clock, sleep=clock.sleep, random=lambda: 0.5)
    started = time.monotonic()
    with pytest.raises(ReportError, match=r"Slack webhook: network error: could not connect \(gave up after 3"):
        n.post(appeared())
    assert time.monotonic() - started < 1.0
    assert sum(clock.sleeps) <= CHAT_RETRY.budget


def test_a_hanging_chat_is_bounded_in_real_time(chat: ChatServer) -> None:
    """Real clock: timeouts are cut to the budget, so a silent server cannot hold a pass."""
    chat.inject(hang(5.0), times=10)
    policy = RetryPolicy(attempts=5, base_delay=0.05, max_delay=0.1, max_wait=1, budget=0.5, timeout=0.4)
    n = ChatNotifier(slack_webhook_url=chat.slack_url, retry=policy)
    started = time.monotonic()
    with pytest.raises(ReportError, match="no answer in time"):
        n.post(appeared())
    assert time.monotonic() - started < 0.75  # two full timeouts would be 0.8 s


# --- webhook URLs are credentials ---------------------------------------------------------------


def test_webhook_urls_never_in_errors_or_logs(
    chat: ChatServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    n = notifier(chat, clock)
    n.post(appeared())
    chat.inject(Fault(400, chat.slack_url.encode(), content_type="text/plain"))  # a service echoing the URL
    chat.inject(server_error(502, path=chat.webhook_path), times=CHAT_RETRY.attempts)
    with pytest.raises(ReportError) as err:
        n.post(drift_message(clean(), "resolved"))
    with ChatServer() as gone:
        url = gone.slack_url
    with pytest.raises(ReportError) as unreachable:
        ChatNotifier(slack_webhook_url=url, clock=clock, sleep=clock.sleep).post(appeared())
    texts = [caplog.text]
    for e in (err, unreachable):
        texts += [str(e.value), repr(e.value), "".join(traceback.format_exception(e.value))]
    assert "Slack webhook: refused the message (400 ***)" in str(err.value)
    for secret in [*secrets_of(chat), url.rsplit("/", 1)[-1]]:
        assert all(secret not in text for text in texts)
    assert "posted" in caplog.text  # something was logged, without the URL
