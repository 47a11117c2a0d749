"""core.chat_memory: what is news against what was told, the record's ConfigMap, two writers merged."""

from __future__ import annotations

from gitops_agent.core.chat_memory import (
    CHAT_MEMORY_NAME,
    ChatMemory,
    Told,
    chat_memory_configmap,
    decide,
    digest_due,
    drift_open_since,
    memory_key,
    merge_memory,
    parse_chat_memory,
    told_now,
)

T1, T2, T3 = "2024-05-01T10:00:00Z", "2024-05-01T11:00:00Z", "2024-05-01T12:00:00Z"


def test_news_only_when_the_state_differs_from_what_was_told() -> None:
    assert decide(None, None) is None  # all well, nothing told
    assert decide(None, "a") == "news"
    assert decide("a", "a") is None  # the same again
    assert decide("a", "b") == "news"  # changed
    assert decide("a", None) == "resolved"


def test_drift_stays_open_since_it_first_appeared_while_it_changes() -> None:
    first = told_now(None, "a", T1)
    changed = told_now(first, "b", T2)
    assert (first.since, changed.since, changed.at) == (T1, T1, T2)
    resolved = told_now(changed, None, T3)
    assert resolved == Told(None, T3)
    assert told_now(resolved, "c", T3).since == T3  # open again: a new since


def test_the_record_round_trips_through_its_configmap() -> None:
    memory = ChatMemory({memory_key("slack", "prod", "drift"): Told("a", T1, T1), "slack.digest": Told("s", T2)})
    cm = chat_memory_configmap("gitops-agent", memory)
    assert cm["metadata"]["name"] == CHAT_MEMORY_NAME and "resourceVersion" not in cm["metadata"]
    assert cm["metadata"]["labels"]["gitops-agent.io/role"] == "chat-memory"
    assert set(cm["data"]) == {"slack.prod.drift", "slack.digest"}
    cm["metadata"]["resourceVersion"] = "42"
    back = parse_chat_memory(cm)
    assert back == memory and back.version == "42"
    assert chat_memory_configmap("gitops-agent", back)["metadata"]["resourceVersion"] == "42"


def test_an_entry_that_does_not_parse_is_forgotten_not_fatal() -> None:
    cm = {
        "metadata": {"resourceVersion": "1"},
        "data": {"a": "{", "b": "[]", "c": '{"at": 3}', "d": f'{{"at": "{T1}"}}'},
    }
    assert parse_chat_memory(cm).entries == {"d": Told(None, T1)}
    assert parse_chat_memory(None) == ChatMemory()


def test_two_writers_merge_key_by_key_and_the_later_word_wins() -> None:
    theirs = ChatMemory({"s.prod.drift": Told("x", T3), "s.dev.drift": Told("y", T1)}, version="7")
    ours = {"s.prod.drift": Told("a", T2), "s.dev.drift": Told(None, T2), "s.prod.sync": Told("f", T2)}
    merged = merge_memory(ours, theirs)
    assert merged.version == "7"
    assert merged.entries == {
        "s.prod.drift": Told("x", T3),
        "s.dev.drift": Told(None, T2),
        "s.prod.sync": Told("f", T2),
    }


def test_a_digest_is_due_once_per_slot() -> None:
    slot = "2024-05-06T09:00:00+02:00"
    assert digest_due(None, slot)
    assert not digest_due(Told(slot, T1), slot)
    assert not digest_due(Told("2024-05-06T07:00:00+00:00", T1), slot)  # the same instant, another zone
    assert digest_due(Told("2024-05-03T09:00:00+02:00", T1), slot)
    assert digest_due(Told("garbage", T1), slot)


def test_drift_open_since_is_the_earliest_any_destination_remembers() -> None:
    memory = ChatMemory({"slack.prod.drift": Told("a", T2, T2), "webhook.prod.drift": Told("a", T3, T1)})
    assert drift_open_since(memory, ["slack", "webhook"], "prod") == T1
    assert drift_open_since(memory, ["slack"], "dev") == ""
