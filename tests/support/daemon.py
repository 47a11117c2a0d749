"""A ``gitops-agent run`` daemon in the test's process, on loopback ports, leading at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml

from gitops_agent.composition.daemon import DaemonWiring, RunOptions, daemon_wiring
from gitops_agent.config import parse_config
from gitops_agent.serve import shut_down


@contextmanager
def running_daemon(config: dict[str, Any], kubeconfig: str) -> Iterator[DaemonWiring]:
    """The daemon of ``config`` (its ``server`` set to free loopback ports), serving and leading
    until the block ends, then shut down as SIGTERM does."""
    config = {**config, "server": {"listen": "127.0.0.1:0", "status_listen": "127.0.0.1:0"}}
    wiring = daemon_wiring(
        parse_config(yaml.safe_dump(config), source="agent.yaml"),
        RunOptions(leader_election=False, kubeconfig=kubeconfig, shutdown_timeout_s=10),
    )
    wiring.server.start()
    wiring.scheduler.start()
    wiring.scheduler.set_leading(True)
    try:
        yield wiring
    finally:
        shut_down(wiring)
