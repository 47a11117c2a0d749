"""``gitops-agent run``: wires logging, the daemon, the HTTP server, leader election and signals.

Kept out of ``cli.py`` so the command line stays a thin table of commands, and out of
``daemon.py`` so the daemon can be tested without sockets, signals or a Lease.

Shutdown on SIGTERM/SIGINT, in this order: no new passes; wait (bounded) for the passes in flight;
release the Lease (only if none is still running: a running pass keeps it until it expires, so the
other replica cannot start a second writer); stop the HTTP server; exit 0.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType

from gitops_agent.adapters.kube import KubeClient
from gitops_agent.daemon import Daemon, DaemonOptions, cluster_probe
from gitops_agent.leader import LeaderElector, LeaderOptions, default_identity
from gitops_agent.logging_setup import setup_logging
from gitops_agent.metrics import Metrics
from gitops_agent.server import AgentServer, parse_listen, read_webhook_secret
from gitops_agent.service import Agent, PassListener

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    listen: str | None = None  # default: server.listen from the config
    log_format: str | None = None  # json | text; default: text on a terminal, else JSON
    leader_election: bool = True
    kubeconfig: str | None = None
    shutdown_timeout_s: float = 60.0


#: builds the reporters (GitHub statuses, chat) told of each pass; given the daemon's metrics so a
#: GitHub client can count its requests (``GitHubClient(on_request=metrics.count_github_request)``)
Reporters = Callable[[Metrics], Sequence[PassListener]]


def run(
    agent: Agent,
    options: RunOptions,
    *,
    reporters: Reporters = lambda metrics: (),
    previewer: Callable[[int, str, str], object] | None = None,
) -> int:
    """Runs until SIGTERM or SIGINT; returns the exit code (0 after a graceful stop). Everything
    that can fail on bad input (webhook secret, listen address, credentials) fails before anything
    starts."""
    setup_logging(options.log_format)
    config = agent.config
    secret = read_webhook_secret(config.server.webhook_secret_file)
    if secret is None:
        log.warning("no webhook secret configured (server.webhook_secret_file): GitHub webhooks are refused")
    identity = default_identity()
    metrics = Metrics(agent.request_counts)
    daemon = Daemon(
        agent,
        metrics=metrics,
        options=DaemonOptions(identity=identity, shutdown_timeout_s=options.shutdown_timeout_s),
        probe=cluster_probe(agent.kube, config),
        listeners=reporters(metrics),
    )
    daemon.previewer = previewer  # pull_request webhooks: (number, head sha, base branch)
    elector = _elector(daemon, options, identity, config.agent.namespace, config.agent.field_manager)
    server = AgentServer(parse_listen(options.listen or config.server.listen), daemon, webhook_secret=secret)
    stop = _stop_on_signals()
    server.start()
    daemon.start()
    if elector is None:
        log.info("leader election disabled: this process leads")
        daemon.set_leading(True)
    else:
        elector.start()
    log.info("serving on %s; environments: %s", server.url, ", ".join(e.name for e in config.environments))
    while not stop.wait(1.0):
        pass
    return _shut_down(agent, daemon, elector, server)


def _elector(
    daemon: Daemon, options: RunOptions, identity: str, namespace: str, field_manager: str
) -> LeaderElector | None:
    """The Lease's elector, wired to the daemon both ways: verdicts and relayed pushes in, a
    follower's pushes out."""
    if not options.leader_election:
        return None
    kube = KubeClient.connect(kubeconfig=options.kubeconfig)
    leader_options = LeaderOptions(namespace=namespace, identity=identity, field_manager=field_manager)
    elector = LeaderElector(kube, leader_options, on_change=daemon.set_leading, on_push=daemon.push)
    daemon.relay = elector.relay_push
    return elector


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("%s received: shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def _shut_down(agent: Agent, daemon: Daemon, elector: LeaderElector | None, server: AgentServer) -> int:
    agent.stopping.set()  # a pass following its rollout stops waiting; one that is writing finishes
    idle = daemon.stop()
    if elector is not None:
        elector.stop(release=idle)
    server.stop()
    if idle:
        log.info("stopped")
        return 0
    # A pass is still running in a worker thread the interpreter would wait for at exit; each apply
    # is idempotent and the next leader re-runs the pass, so leave now rather than hang.
    log.warning("exiting with a pass still running; the next leader re-runs it")
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)
