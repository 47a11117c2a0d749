"""When the daemon runs a pass: intervals, jitter, shared fetches and coalesced triggers.

Pure decisions, so the rules are tested without threads or clocks (the daemon passes ``now``):

- every environment has its own interval (``environments[].interval``, else ``repo.poll_interval``)
  and a jitter, so replicas of many agents don't hit git and the API server in lockstep;
- the config repo is fetched once for several environments: a pass fetches only when the last
  fetch *started* longer ago than a small threshold, or when a push arrived after it started;
- requests for a pass coalesce: at most one pass of an environment runs, and a flood of webhook
  pushes during that pass leaves a single "run again" flag, never a queue of passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

MAX_JITTER_S = 30.0
JITTER_FRACTION = 0.1


def interval_of(own_interval_s: float | None, poll_interval_s: float) -> float:
    """Seconds between two scheduled passes of an environment: its own interval, else the repo's."""
    return own_interval_s if own_interval_s is not None else poll_interval_s


def jitter_of(interval_s: float) -> float:
    """Up to 10% of the interval, at most 30s: spreads load without making a pass late."""
    return min(interval_s * JITTER_FRACTION, MAX_JITTER_S)


def fetch_due(*, last_started: float | None, invalidated: float | None, now: float, max_age_s: float) -> bool:
    """Fetch again? Yes when never fetched, when the last fetch started ``max_age_s`` ago or more, or
    when a push arrived since it started (that fetch may have missed the pushed commit)."""
    if last_started is None:
        return True
    if invalidated is not None and invalidated >= last_started:
        return True
    return now - last_started >= max_age_s


@dataclass(frozen=True)
class PassState:
    """One environment's pass: is it running, and was another one asked for while it ran?"""

    running: bool = False
    pending: bool = False


def request_pass(state: PassState, *, urgent: bool) -> tuple[PassState, bool]:
    """Ask for a pass; returns the new state and whether the caller should start one now.

    A busy environment starts nothing. An ``urgent`` request (a push) sets the pending flag, so one
    more pass runs right after the current one, which may have fetched before the push. A periodic
    tick is dropped instead: the running pass already is this interval's pass.
    """
    if state.running:
        return (replace(state, pending=True) if urgent else state), False
    return PassState(running=True), True


def finish_pass(state: PassState) -> tuple[PassState, bool]:
    """A pass ended; returns the new state and whether to run one more (a request came meanwhile)."""
    if state.pending:
        return PassState(running=True), True
    return PassState(), False


def environments_for_ref(branches: Mapping[str, str], ref: str) -> tuple[str, ...]:
    """Environments that follow the pushed branch (``refs/heads/<branch>``); tags match none.
    ``branches``: each environment's name and the branch it follows, in the config's order."""
    prefix = "refs/heads/"
    if not ref.startswith(prefix):
        return ()
    branch = ref[len(prefix) :]
    return tuple(name for name, followed in branches.items() if followed == branch)
