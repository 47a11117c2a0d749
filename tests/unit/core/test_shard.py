"""Rendezvous hashing of environments over members: balanced, stable, and a member joining or
leaving moves only its own share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gitops_agent.core.lease import format_time
from gitops_agent.core.shard import (
    MEMBER_LABEL,
    assignments,
    expired_members,
    live_members,
    member_body,
    member_name,
    moved,
    owned_by,
    owner,
)

ENVS = [f"env-{i}" for i in range(1200)]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_no_member_owns_nothing() -> None:
    assert owner("dev", []) is None
    assert owned_by("a", ENVS, []) == frozenset()


def test_one_member_owns_everything() -> None:
    assert owned_by("a", ENVS, ["a"]) == frozenset(ENVS)


def test_same_answer_whatever_the_order_of_members() -> None:
    assert assignments(ENVS, ["a", "b", "c"]) == assignments(ENVS, ["c", "a", "b"])


def test_balanced_across_members() -> None:
    members = ["replica-a-1f2e3d", "replica-b-9a8b7c", "replica-c-445566"]
    counts = {m: len(owned_by(m, ENVS, members)) for m in members}
    assert sum(counts.values()) == len(ENVS)
    assert all(300 <= n <= 500 for n in counts.values()), counts  # 400 each, give or take


def test_a_member_joining_takes_only_its_share() -> None:
    before = assignments(ENVS, ["a", "b", "c"])
    after = assignments(ENVS, ["a", "b", "c", "d"])
    changed = moved(before, after)
    assert changed and all(after[env] == "d" for env in changed)
    assert 200 <= len(changed) <= 400  # about a quarter


def test_a_member_leaving_hands_over_only_its_own() -> None:
    before = assignments(ENVS, ["a", "b", "c"])
    after = assignments(ENVS, ["a", "c"])
    assert moved(before, after) == {env for env, who in before.items() if who == "b"}


def test_not_a_member_owns_nothing() -> None:
    assert owned_by("z", ENVS, ["a", "b"]) == frozenset()


def test_member_name_is_a_valid_object_name() -> None:
    assert member_name("Replica_A.local-1f2e3d") == "gitops-agent-member-replica-a.local-1f2e3d"
    assert len(member_name("x" * 400)) <= 253


def _lease(identity: str, renewed: datetime, duration_s: float = 15) -> dict:
    body = member_body(identity=identity, namespace="ns", now=renewed, duration_s=duration_s, previous=None)
    body["spec"]["renewTime"] = format_time(renewed)
    return body


def test_live_and_expired_members() -> None:
    leases = [_lease("a", NOW), _lease("b", NOW - timedelta(seconds=20)), _lease("c", NOW - timedelta(seconds=5))]
    assert live_members(leases, NOW) == ("a", "c")
    assert expired_members(leases, NOW) == (member_name("b"),)


def test_member_lease_is_labelled_for_listing() -> None:
    body = _lease("a", NOW)
    assert body["metadata"]["labels"][MEMBER_LABEL] == "true"
    assert body["spec"]["holderIdentity"] == "a"
