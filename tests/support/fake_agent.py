"""A fake of our own agent (``agent.Agent``) for daemon, server and leader tests, in the
unit and the integration tier alike.

It stands in for the whole pass (git, render, Kubernetes): these tests are about scheduling,
coalescing, HTTP and shutdown, not about apply or drift, which are tested against the real API
server elsewhere.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from gitops_agent.config import Config, EnvironmentConfig, parse_config
from gitops_agent.core.ledger import FAILED
from gitops_agent.errors import GitOpsError
from gitops_agent.reconcile import PassRequest, PassResult

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def config(extra_env: str = "", poll: str = "1h") -> Config:
    return parse_config(
        f"""
repo: {{url: https://example.invalid/config.git, branch: main, poll_interval: {poll}}}
environments:
  - {{name: dev, path: envs/dev, namespace: dev}}
  - {{name: prod, path: envs/prod, namespace: prod, branch: release{extra_env}}}
""",
        source="test.yaml",
    )


class FakeAgent:
    """Counts fetches and passes, records concurrency per environment, can hold a pass on a gate."""

    def __init__(self, cfg: Config | None = None) -> None:
        self.config = cfg or config()
        self.fetches = 0
        self.fetch_error: GitOpsError | None = None
        self.passes: Counter[str] = Counter()
        self.fetch_errors_seen: list[GitOpsError | None] = []
        self.max_active: Counter[str] = Counter()
        self.gates: dict[str, threading.Event] = {}
        self.entered: dict[str, threading.Event] = {}
        self.result: Callable[[EnvironmentConfig], PassResult] | None = None
        self._active: Counter[str] = Counter()
        self._lock = threading.Lock()

    def fetch(self) -> GitOpsError | None:
        with self._lock:
            self.fetches += 1
        return self.fetch_error

    def target_commit(self, env: EnvironmentConfig) -> str:
        return COMMIT

    def hold(self, name: str) -> threading.Event:
        """The next passes of ``name`` wait until the returned event is set."""
        self.gates[name] = threading.Event()
        self.entered[name] = threading.Event()
        return self.gates[name]

    def reconcile(self, env: EnvironmentConfig, request: PassRequest | None = None) -> PassResult:
        fetch_error = (request or PassRequest()).fetch_error
        with self._lock:
            self._active[env.name] += 1
            self.max_active[env.name] = max(self.max_active[env.name], self._active[env.name])
            self.fetch_errors_seen.append(fetch_error)
        try:
            if env.name in self.entered:
                self.entered[env.name].set()
            if env.name in self.gates:
                assert self.gates[env.name].wait(10), "test gate never opened"
            if fetch_error is not None:
                result = PassResult(env.name, "", FAILED, error=str(fetch_error), reason=fetch_error.reason)
            elif self.result is not None:
                result = self.result(env)
            else:
                result = PassResult(env.name, COMMIT, "up-to-date")
            return result
        finally:
            with self._lock:
                self._active[env.name] -= 1
                self.passes[env.name] += 1

    def request_counts(self) -> dict[str, int]:
        return {"get": 2, "apply": 1}
