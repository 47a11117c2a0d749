"""The watch cache's own bookkeeping, no cluster involved: a burst of changes asks for one pass,
only of an environment this replica reconciles, and nothing is read for one it does not."""

from __future__ import annotations

import threading
import time

from gitops_agent.cluster.watch import WatchCache, WatchOptions


def cache(told: list[str]) -> WatchCache:
    return WatchCache("gitops-agent", told.append, WatchOptions(debounce_s=0.05))


def test_a_burst_of_changes_asks_for_one_pass() -> None:
    told: list[str] = []
    watches = cache(told)
    watches.set_environments(["dev"])
    for _ in range(5):
        watches._changed("dev")
    time.sleep(0.3)
    assert told == ["dev"]
    watches._changed("dev")  # a later change: another pass
    time.sleep(0.3)
    assert told == ["dev", "dev"]


def test_no_pass_for_an_environment_not_reconciled_here() -> None:
    told: list[str] = []
    watches = cache(told)
    watches.set_environments(["dev"])
    watches._changed("prod")
    watches._changed("dev")
    watches.set_environments([])  # moved away before the debounce ended
    time.sleep(0.3)
    assert told == []


def test_nothing_read_or_watched_for_an_environment_not_owned() -> None:
    owned = threading.Event()
    watches = WatchCache("gitops-agent", lambda env: None, owns=lambda env: owned.is_set())
    assert watches.lists("dev", None, []) is None  # type: ignore[arg-type]  # never reaches a client
    assert not watches.synced("dev") and watches.object_count() == 0
    watches.stop()
