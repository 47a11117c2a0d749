"""``gitops-agent run``: runs what ``composition.daemon_wiring`` built until SIGTERM or SIGINT.

Start-up creates the agent's namespace when missing (it holds the Leases), then joins the members
(``membership``) and leader election. Shutdown, in this order: no new passes; wait (bounded) for
the passes in flight; leave the members and release the Lease (only if none is still running: a
running pass keeps its environment's lock until it expires, so no second writer starts); stop the
HTTP server; exit 0.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

from gitops_agent.composition.daemon import DaemonWiring

log = logging.getLogger(__name__)


def serve(wiring: DaemonWiring) -> int:
    """Starts the server, the scheduler and leader election; returns the exit code (0 after a
    graceful stop)."""
    config = wiring.agent.config
    if config.server.webhook_secret_file is None:
        log.warning("no webhook secret configured (server.webhook_secret_file): GitHub webhooks are refused")
    stop = _stop_on_signals()
    if wiring.membership is not None:
        wiring.membership.ensure_namespace()  # before anything starts: a clear error, exit 1
    wiring.server.start()
    wiring.scheduler.start()
    if wiring.elector is None:
        log.info("leader election disabled: this process leads")
        wiring.scheduler.set_leading(True)
    else:
        wiring.elector.start()
    if wiring.membership is not None:
        wiring.membership.start()
    log.info(
        "serving webhooks and probes on %s, status and metrics on %s%s; environments: %s",
        wiring.server.url, wiring.server.status_url,
        " (bearer token required)" if wiring.server.status_token else "",
        ", ".join(e.name for e in config.environments),
    )  # fmt: skip
    while not stop.wait(1.0):
        pass
    return shut_down(wiring)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("%s received: shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def shut_down(wiring: DaemonWiring) -> int:
    wiring.stopping.set()  # a pass following its rollout stops waiting; one that is writing finishes
    idle = wiring.scheduler.stop()
    if wiring.membership is not None:
        wiring.membership.stop(leave=idle)
    if wiring.elector is not None:
        wiring.elector.stop(release=idle)
    wiring.server.stop()
    if wiring.approvals is not None:
        wiring.approvals.close()  # replies and check runs queued before the server stopped are sent
    if wiring.reporter is not None:
        wiring.reporter.close()
    if wiring.chat is not None:
        wiring.chat.close()  # what chat was to hear of the last passes is sent
    if idle:
        log.info("stopped")
        return 0
    # A pass is still running in a worker thread the interpreter would wait for at exit; each apply
    # is idempotent and the next leader re-runs the pass, so leave now rather than hang.
    log.warning("exiting with a pass still running; the next leader re-runs it")
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)
