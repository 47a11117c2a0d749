"""chat_reporting.ChatReporter over loopback HTTP and an in-memory stand-in for the cluster's
record (``tests/integration/reconcile/test_chat.py`` runs it against the real API server): what is
news, memory that outlives the process, failed writes and posts, the digest once per slot."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta

import pytest

from gitops_agent.adapters.chat import ChatNotifier
from gitops_agent.adapters.http_retry import RetryPolicy
from gitops_agent.chat_reporting import DIGEST_WAIT, ChatReporter, digest_slot
from gitops_agent.config import DigestConfig
from gitops_agent.core.chat_memory import ChatMemory, Told, merge_memory
from gitops_agent.core.drift import CHANGED, DriftedField, ObjectDrift
from gitops_agent.errors import ClusterError, ConflictError
from gitops_agent.model import Health, HealthStatus, ObjectKey
from gitops_agent.reconcile import PassResult
from tests.doubles.chat_server import ChatServer
from tests.doubles.loopback import server_error

SHA, NEXT = "0123456789abcdef0123456789abcdef01234567", "fedcba9876543210fedcba9876543210fedcba98"
API = ObjectKey("apps", "Deployment", "shop", "api")
EDIT = DriftedField(
    "/spec/template/spec/containers/0/image", "a:1", "a:2", "kubectl-edit", "2024-05-01T10:00:00Z", False
)
FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.01, max_wait=0.1, budget=2, timeout=2)
MONDAY_9 = datetime(2024, 5, 6, 7, 0, tzinfo=UTC)  # 09:00 in Berlin
WEEKDAYS_9 = DigestConfig(cron="0 9 * * 1-5", timezone="Europe/Berlin")


class Memory:
    """The cluster's record, in memory: conditional writes by version; ``fail_reads``/``fail_writes``."""

    def __init__(self) -> None:
        self.stored = ChatMemory()
        self.fail_reads = self.fail_writes = False
        self.writes = 0

    def read(self) -> ChatMemory:
        if self.fail_reads:
            raise ClusterError("API server unreachable")
        return self.stored

    def record(self, updates: Mapping[str, Told], base: ChatMemory | None = None) -> ChatMemory:
        if self.fail_writes:
            raise ClusterError("API server unreachable")
        if base is not None and base.version != self.stored.version:
            raise ConflictError("changed since read")  # the real store re-reads; enough here
        self.writes += 1
        self.stored = ChatMemory(merge_memory(updates, self.stored).entries, version=str(self.writes))
        return self.stored


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    with ChatServer() as server:
        yield server
    assert server.violations == []


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def reporter(chat: ChatServer, memory: Memory, **kw: object) -> ChatReporter:
    notifier = ChatNotifier(slack_webhook_url=chat.slack_url, webhook_url=chat.webhook_url, retry=FAST)
    return ChatReporter(notifier, memory, environments=["dev", "prod"], **kw)  # type: ignore[arg-type]


def told(r: ChatReporter, *results: PassResult) -> None:
    for result in results:
        r.finished(result)
        assert r.flush(10)


def drifted(env: str = "prod", commit: str = SHA) -> PassResult:
    return PassResult(env, commit, "up-to-date", drift=(ObjectDrift(API, CHANGED, (EDIT,)),))


def clean(env: str = "prod", commit: str = SHA, health: Health | None = None) -> PassResult:
    return PassResult(env, commit, "up-to-date", health=health)


def failed(commit: str = SHA, error: str = "Deployment/shop/api: field is immutable (1 of 3 tries)") -> PassResult:
    return PassResult("prod", commit, "failed", error=error, reason="ApplyFailed")


def rollout(status: HealthStatus, commit: str = SHA) -> PassResult:
    message = "api: 0/2 ready, CrashLoopBackOff in container app" if status is HealthStatus.FAILED else "healthy"
    return PassResult("prod", commit, "applied", health=Health(status, message))


def events(chat: ChatServer) -> list[str]:
    return [f"{p['event']} {p['environment']}" if "environment" in p else p["event"] for p in chat.webhook_payloads]


# --- news, once -----------------------------------------------------------------------------------


def test_drift_is_told_once_and_a_restarted_reporter_does_not_tell_it_again(chat: ChatServer) -> None:
    memory = Memory()
    first = reporter(chat, memory)
    told(first, clean(), drifted(), drifted(), drifted("dev"))
    first.close()
    again = reporter(chat, memory)  # a restart, or another replica taking over
    told(again, drifted(), drifted("dev"), clean("dev"), clean("dev"))
    again.close()
    assert events(chat) == ["drift.appeared prod", "drift.appeared dev", "drift.resolved dev"]
    assert len(chat.slack_messages) == 3


def test_a_failed_sync_is_told_once_per_commit_and_failure_then_resolved(chat: ChatServer) -> None:
    r = reporter(chat, Memory())
    told(r, failed(), failed(), failed(error="Deployment/shop/api: field is immutable (2 of 3 tries)"))
    told(r, failed(NEXT), failed(NEXT, "Service/shop/api: invalid port"), clean(commit=NEXT), clean(commit=NEXT))
    r.close()
    assert events(chat) == ["sync.failed prod", "sync.failed prod", "sync.failed prod", "sync.resolved prod"]
    assert [p["commit"] for p in chat.webhook_payloads] == [SHA, NEXT, NEXT, NEXT]


def test_a_failed_rollout_is_told_once_and_its_recovery_once(chat: ChatServer) -> None:
    r = reporter(chat, Memory())
    failing = rollout(HealthStatus.FAILED)
    told(r, failing, clean(health=failing.health), clean(), rollout(HealthStatus.CURRENT, NEXT), clean())
    r.close()
    assert events(chat) == ["rollout.failed prod", "rollout.resolved prod"]
    assert "CrashLoopBackOff" in chat.webhook_payloads[0]["error"]


# --- when the cluster or chat is down ---------------------------------------------------------------


def test_an_unwritten_memory_is_kept_in_the_process_and_written_later(chat: ChatServer) -> None:
    memory = Memory()
    r = reporter(chat, memory)
    memory.fail_writes = True
    told(r, drifted(), drifted())
    assert events(chat) == ["drift.appeared prod"] and memory.stored.entries == {}
    memory.fail_writes = False
    told(r, clean("dev"))  # any next word writes what was kept
    r.close()
    assert memory.stored.fingerprint("slack.prod.drift") is not None
    assert reporter(chat, memory).memory.read().fingerprint("webhook.prod.drift") is not None


def test_an_unreadable_memory_goes_by_what_the_process_knows(chat: ChatServer) -> None:
    memory = Memory()
    r = reporter(chat, memory)
    memory.fail_reads = memory.fail_writes = True
    told(r, drifted(), drifted())
    r.close()
    assert events(chat) == ["drift.appeared prod"]


def test_a_failed_post_is_tried_again_and_the_other_destination_not_repeated(chat: ChatServer) -> None:
    r = reporter(chat, Memory())
    chat.inject(server_error(500, path=chat.slack_path), times=FAST.attempts)
    told(r, drifted())
    assert (len(chat.slack_messages), len(chat.webhook_payloads)) == (0, 1)
    told(r, drifted())
    r.close()
    assert (len(chat.slack_messages), len(chat.webhook_payloads)) == (1, 1)


# --- the digest -----------------------------------------------------------------------------------


def test_digest_slots_of_a_cron_and_an_interval() -> None:
    assert digest_slot(WEEKDAYS_9, MONDAY_9 + timedelta(minutes=10)) == MONDAY_9
    assert digest_slot(WEEKDAYS_9, MONDAY_9 - timedelta(seconds=1)) is None  # Sunday's none; Friday's too old
    assert digest_slot(WEEKDAYS_9, MONDAY_9 + timedelta(hours=2)) is None  # missed by more than the grace
    hourly = DigestConfig(interval_s=3600)
    assert digest_slot(hourly, MONDAY_9 + timedelta(minutes=59)) == MONDAY_9  # every replica counts from 2000-01-01


def test_the_digest_goes_once_per_slot_from_the_leader_across_restarts(chat: ChatServer) -> None:
    memory, clock = Memory(), Clock(MONDAY_9 + timedelta(minutes=1))
    leading = [False]
    r = reporter(chat, memory, digest=WEEKDAYS_9, leading=lambda: leading[0], now=clock)
    told(r, drifted(), clean("dev"))
    r.digest_if_due()
    assert chat.webhook_payloads[-1]["event"] == "drift.appeared"  # a follower sends no digest
    leading[0] = True
    r.digest_if_due()
    r.digest_if_due()
    r.close()
    restarted = reporter(chat, memory, digest=WEEKDAYS_9, leading=lambda: True, now=clock)
    told(restarted, drifted(), clean("dev"))
    restarted.digest_if_due()
    clock.now += timedelta(days=1)  # Tuesday's slot
    restarted.digest_if_due()
    restarted.close()
    digests = [p for p in chat.webhook_payloads if p["event"] == "drift.digest"]
    assert [p["slot"] for p in digests] == ["2024-05-06T09:00:00+02:00", "2024-05-07T09:00:00+02:00"]
    assert digests[0]["environments"][0]["objects"][0]["owners"] == ["kubectl-edit"]
    assert len([m for m in chat.slack_messages if m["text"].startswith("Open drift")]) == 2


def test_a_new_leader_waits_for_a_first_pass_of_every_environment(chat: ChatServer) -> None:
    memory, clock = Memory(), Clock(MONDAY_9 + timedelta(minutes=1))
    r = reporter(chat, memory, digest=WEEKDAYS_9, leading=lambda: True, now=clock)
    told(r, drifted())  # dev not seen yet
    r.digest_if_due()
    assert chat.webhook_payloads[-1]["event"] == "drift.appeared"
    clock.now = MONDAY_9 + DIGEST_WAIT
    r.digest_if_due()
    r.close()
    assert chat.webhook_payloads[-1]["event"] == "drift.digest" and chat.webhook_payloads[-1]["unchecked"] == ["dev"]


def test_no_open_drift_sends_no_digest_but_the_slot_is_done(chat: ChatServer) -> None:
    memory, clock = Memory(), Clock(MONDAY_9 + timedelta(minutes=1))
    r = reporter(chat, memory, digest=WEEKDAYS_9, leading=lambda: True, now=clock)
    told(r, clean(), clean("dev"))
    r.digest_if_due()
    r.close()
    assert chat.requests == [] and memory.stored.fingerprint("slack.digest") == "2024-05-06T09:00:00+02:00"


def test_a_sharded_leader_reads_every_environments_drift_for_the_digest(chat: ChatServer) -> None:
    """Another replica owns prod: this leader never passed it, yet its drift is in the digest."""
    memory, clock = Memory(), Clock(MONDAY_9 + timedelta(minutes=1))
    r = reporter(chat, memory, digest=WEEKDAYS_9, leading=lambda: True, now=clock,
                 check_drift=lambda: [drifted(), clean("dev")])  # fmt: skip
    r.digest_if_due()  # no pass seen at all: no waiting for first passes either
    r.close()
    (digest,) = [p for p in chat.webhook_payloads if p["event"] == "drift.digest"]
    assert [e["environment"] for e in digest["environments"]] == ["prod"] and digest["unchecked"] == []


def test_a_digest_whose_drift_cannot_be_read_goes_by_the_passes_seen(chat: ChatServer) -> None:
    def unreadable() -> list[PassResult]:
        raise ClusterError("cannot reach the Kubernetes API")

    memory, clock = Memory(), Clock(MONDAY_9 + timedelta(minutes=1))
    r = reporter(chat, memory, digest=WEEKDAYS_9, leading=lambda: True, now=clock, check_drift=unreadable)
    told(r, drifted(), clean("dev"))
    r.digest_if_due()
    r.close()
    (digest,) = [p for p in chat.webhook_payloads if p["event"] == "drift.digest"]
    assert [e["environment"] for e in digest["environments"]] == ["prod"]
