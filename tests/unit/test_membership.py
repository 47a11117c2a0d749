"""The membership loop's own rules over a fake Lease store (the cluster behaviour is in
tests/integration/test_sharding.py): members read after renewing, expired Leases deleted, a member
that cannot renew past its deadline owns nothing, pushes noted on its Lease consumed once, the
namespace created or a clear error."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from gitops_agent.core.shard import member_name
from gitops_agent.errors import ClusterError, ConflictError, ForbiddenError, GitOpsError
from gitops_agent.membership import Membership, MembershipOptions
from tests.unit.test_leader import Clock


class Store:
    """Leases by name, resourceVersion-checked, like the API server; ``down`` is an outage."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.namespaces: set[str] = set()
        self.version = 0
        self.down = False
        self.forbid_namespaces = False

    def _check(self) -> None:
        if self.down:
            raise ClusterError("cannot reach the Kubernetes API: refused")

    def get(self, info: Any, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        if info.kind == "Namespace":
            return {"metadata": {"name": name}} if name in self.namespaces else None
        return copy.deepcopy(self.leases.get(name))

    def list(self, info: Any, *, namespace: str | None = None, label_selector: str | None = None) -> list[Any]:
        self._check()
        return [copy.deepcopy(v) for v in self.leases.values()]

    def create(self, obj: dict[str, Any], info: Any, *, field_manager: str) -> dict[str, Any]:
        self._check()
        name = obj["metadata"]["name"]
        if info.kind == "Namespace":
            if self.forbid_namespaces:
                raise ForbiddenError("namespaces is forbidden")
            self.namespaces.add(name)
            return obj
        if name in self.leases:
            raise ConflictError("exists")
        return self._store(obj)

    def replace(self, obj: dict[str, Any], info: Any, *, field_manager: str) -> dict[str, Any]:
        self._check()
        live = self.leases[obj["metadata"]["name"]]
        if obj["metadata"].get("resourceVersion") != live["metadata"]["resourceVersion"]:
            raise ConflictError("modified")
        return self._store(obj)

    def delete(self, info: Any, namespace: str, name: str) -> bool:
        self._check()
        return self.leases.pop(name, None) is not None

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.leases[stored["metadata"]["name"]] = stored
        return copy.deepcopy(stored)


def member(
    store: Store, clock: Clock, me: str, seen: list[tuple[str, ...]], pushed: list[str] | None = None
) -> Membership:
    options = MembershipOptions(
        namespace="ns", identity=me, lease_duration_s=15, renew_interval_s=5, renew_deadline_s=10
    )
    on_push = pushed.append if pushed is not None else (lambda ref: None)
    return Membership(store, options, on_change=seen.append, on_push=on_push, now=clock.now, clock=clock)


def test_members_join_and_an_expired_one_is_dropped_and_deleted() -> None:
    store, clock, seen_a, seen_b = Store(), Clock(), [], []
    a, b = member(store, clock, "a", seen_a), member(store, clock, "b", seen_b)
    assert a.step() == ("a",) and a.joined
    assert b.step() == ("a", "b")
    assert a.step() == ("a", "b")
    clock.t += 16  # b stopped renewing
    assert a.step() == ("a",)
    assert member_name("b") not in store.leases
    assert seen_a == [("a",), ("a", "b"), ("a",)]


def test_a_member_that_cannot_renew_past_its_deadline_owns_nothing() -> None:
    store, clock, seen = Store(), Clock(), []
    a = member(store, clock, "a", seen)
    a.step()
    store.down = True
    clock.t += 5
    assert a.step() == ("a",)  # within the deadline: still a member
    clock.t += 6
    assert a.step() == () and not a.joined
    store.down = False
    assert a.step() == ("a",)


def test_a_relayed_push_is_consumed_by_the_next_renewal_once() -> None:
    store, clock, pushed = Store(), Clock(), []
    a, b = member(store, clock, "a", [], pushed), member(store, clock, "b", [])
    a.step()
    assert b.relay("a", "refs/heads/main")
    assert not b.relay("gone", "refs/heads/main")  # no such member
    a.step()
    a.step()
    assert pushed == ["refs/heads/main"]


def test_leaving_deletes_the_lease() -> None:
    store, clock = Store(), Clock()
    a = member(store, clock, "a", [])
    a.step()
    a.stop(leave=True)
    assert store.leases == {}


def test_the_namespace_is_created_or_a_clear_error_says_what_to_do() -> None:
    store, clock = Store(), Clock()
    member(store, clock, "a", []).ensure_namespace()
    assert store.namespaces == {"ns"}
    forbidden = Store()
    forbidden.forbid_namespaces = True
    with pytest.raises(
        GitOpsError, match=r"namespace 'ns' \(agent.namespace\) does not exist .*kubectl create namespace ns"
    ):
        member(forbidden, clock, "a", []).ensure_namespace()


class WatchedStore(Store):
    """A store whose watch of one Lease yields what ``events`` holds (then the server's timeout)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.watched: list[tuple[str, str | None]] = []

    def watch(self, info: Any, **kw: Any) -> Any:
        self.watched.append((kw["resource_version"], kw["field_selector"]))
        yield from self.events


def test_between_renewals_a_relayed_push_ends_the_wait_at_once() -> None:
    """The owner watches its own Lease: a push noted on it is taken now, not at the next renewal."""
    store, clock, seen = WatchedStore(), Clock(), []
    a, b = member(store, clock, "a", seen), member(store, clock, "b", [])
    a.step()
    b.step()
    assert b.relay("a", "refs/heads/main")
    store.events = [("MODIFIED", store.leases[member_name("a")])]
    started = time.monotonic()
    a._until_pushed(5.0)
    assert time.monotonic() - started < 1.0
    version, selector = store.watched[-1]
    assert selector == f"metadata.name={member_name('a')}" and version != ""
    store.events = [("MODIFIED", copy.deepcopy(store.leases[member_name("b")]))]  # no ref noted: wait on
    started = time.monotonic()
    a._until_pushed(1.0)
    assert time.monotonic() - started >= 0.9
