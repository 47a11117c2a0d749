"""The composition root of ``gitops-agent run``: the agent, metrics, the one GitHub client, the
reporters (statuses, chat), the scheduler, leader election and the HTTP server, each built once with its
collaborators."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gitops_agent.adapters.git_cache import GitCache
from gitops_agent.adapters.kube import KubeClient
from gitops_agent.agent import Agent
from gitops_agent.approvals import ApprovalChecks, Approvals, GitHubWrites
from gitops_agent.chat_reporting import ChatReporter
from gitops_agent.cluster.clients import Clusters
from gitops_agent.cluster.watch import WatchCache
from gitops_agent.composition import build_agent, chat_reporter, github_client, reporter
from gitops_agent.config import Config
from gitops_agent.errors import ConfigError
from gitops_agent.git_hygiene import PullRefKeeper
from gitops_agent.leader import LeaderElector, LeaderOptions, PushRelay, default_identity
from gitops_agent.membership import Membership, MembershipOptions
from gitops_agent.metrics import Metrics
from gitops_agent.pr_environments import PullRequestEnvironments
from gitops_agent.readiness import cluster_probe
from gitops_agent.reporting import Reporter
from gitops_agent.scheduler import Scheduler, SchedulerOptions
from gitops_agent.server import AgentServer, parse_listen, read_status_token, read_webhook_secret
from gitops_agent.status_board import StatusBoard

if TYPE_CHECKING:
    from gitops_agent.adapters.github import GitHubClient


@dataclass(frozen=True)
class RunOptions:
    listen: str | None = None  # default: server.listen from the config
    log_format: str | None = None  # json | text; default: text on a terminal, else JSON
    leader_election: bool = True
    kubeconfig: str | None = None
    shutdown_timeout_s: float = 60.0
    status_listen: str | None = None  # default: server.status_listen from the config


@dataclass
class DaemonWiring:
    agent: Agent
    metrics: Metrics
    scheduler: Scheduler
    server: AgentServer
    elector: LeaderElector | None
    reporter: Reporter | None
    stopping: threading.Event = field(default_factory=threading.Event)
    approvals: Approvals | None = None
    chat: ChatReporter | None = None
    #: the replicas sharing the environments; None without leader election (one process runs all)
    membership: Membership | None = None


def daemon_wiring(config: Config, options: RunOptions) -> DaemonWiring:
    """Everything ``gitops-agent run`` runs. Everything that can fail on bad input (webhook secret,
    listen address, credentials) fails here, before anything starts."""
    secret = read_webhook_secret(config.server.webhook_secret_file)
    status_token = read_status_token(config.server.status_token_file)
    address = parse_listen(options.listen or config.server.listen)
    status_address = parse_listen(options.status_listen or config.server.status_listen)
    identity = default_identity()
    stopping = threading.Event()
    clusters = Clusters(kubeconfig=options.kubeconfig)
    metrics = Metrics(clusters.request_counts)
    github = github_client(config, on_request=metrics.count_github_request)
    told = reporter(config, github)
    # the digest goes out while this replica leads (the scheduler, made below, knows), listing
    # every environment's drift as the agent (made below) reads it, whichever replica owns it
    chat = chat_reporter(config, clusters, leading=lambda: scheduler.leading, check_drift=lambda: agent.drift_all())
    writes = GitHubWrites() if github is not None else None
    checks = _approval_checks(config, github, writes)
    listeners = [x for x in (told, chat, checks) if x is not None]
    # the environments' locks name this process as its Lease does
    agent = build_agent(config, listeners=listeners, stopping=stopping, clusters=clusters, identity=identity)
    duration = lease_duration_s()
    lease = LeaderOptions(
        namespace=config.agent.namespace, identity=identity, field_manager=config.agent.field_manager,
        lease_duration_s=duration, renew_interval_s=duration / 3, renew_deadline_s=duration * 2 / 3,
    )  # fmt: skip
    lease_kube = KubeClient.connect(kubeconfig=options.kubeconfig) if options.leader_election else None
    scheduler = Scheduler(
        agent,
        metrics=metrics,
        options=SchedulerOptions(identity=identity, shutdown_timeout_s=options.shutdown_timeout_s),
        probe=cluster_probe(agent.clusters.agent_kube, config),
        relay=PushRelay(lease_kube, lease).relay if lease_kube is not None else None,
        previewer=_previewer(agent, github),
        # previews fetch pull-request heads: the keeper bounds them and measures the cache
        pull_refs=PullRefKeeper(GitCache(agent.snapshots.source), on_measure=metrics.observe_git_cache),
        pr_environments=PullRequestEnvironments(agent, github) if config.pull_request_environments else None,
    )
    watches = watch_live_state(agent, scheduler)
    metrics.read_watch_cache(watches.sizes, watches.watch_count)
    elector = membership = None
    if lease_kube is not None:
        elector = LeaderElector(lease_kube, lease, on_change=scheduler.set_leading, on_push=scheduler.push)
        member = MembershipOptions(
            namespace=lease.namespace, identity=identity, lease_duration_s=duration,
            renew_interval_s=lease.renew_interval_s, renew_deadline_s=lease.renew_deadline_s,
            field_manager=lease.field_manager,
        )  # fmt: skip
        relayed = functools.partial(scheduler.push, relay=False)  # its owner passes it, nobody else
        membership = Membership(lease_kube, member, on_change=scheduler.set_members, on_push=relayed)
        scheduler.member_relay = membership.relay
        scheduler.set_members(())  # sharded from the start: owns nothing until it joined, even leading
        scheduler.gates += [_joined(membership), _elected(elector)]
    approvals = None
    if github is not None and writes is not None:
        approvals = Approvals(config, github, scheduler, writes, checks)
    server = AgentServer(
        address, scheduler, webhook_secret=secret, approvals=approvals, status_address=status_address,
        status_token=status_token, max_connections=config.server.max_connections,
        board=StatusBoard(scheduler, agent), watch_cache=watches.sizes,
    )  # fmt: skip
    return DaemonWiring(agent, metrics, scheduler, server, elector, told, stopping, approvals, chat, membership)


def lease_duration_s() -> float:
    """How long the leader's and the members' Leases live unrenewed: ``$GITOPS_AGENT_LEASE_DURATION``
    seconds (default 15; tests shorten it to see a replica's share move). Renewed three times per
    duration, given up after two thirds of it."""
    raw = os.environ.get("GITOPS_AGENT_LEASE_DURATION") or "15"
    try:
        duration = float(raw)
    except ValueError:
        duration = 0.0
    if duration <= 0:
        raise ConfigError(f"$GITOPS_AGENT_LEASE_DURATION: expected seconds above 0, got {raw!r}")
    return duration


def _joined(membership: Membership) -> Callable[[], str | None]:
    return lambda: None if membership.joined else "not a member yet (membership Lease not written)"


def _elected(elector: LeaderElector) -> Callable[[], str | None]:
    return lambda: None if elector.settled else "leader election has not read or written its Lease yet"


def watch_live_state(agent: Agent, scheduler: Scheduler) -> WatchCache:
    """Drift checks read watched live state; a change to a managed object passes its environment
    at once; watches follow the environments this replica reconciles."""
    watches = WatchCache(
        agent.config.agent.field_manager, lambda env: scheduler.trigger([env], urgent=True), owns=scheduler.owns
    )
    agent.reconciler.watches = watches
    return watches


def _approval_checks(config: Config, github: GitHubClient | None, writes: GitHubWrites | None) -> ApprovalChecks | None:
    """The "Apply to <env>" check runs: an App only (GitHub takes check runs from Apps alone) and
    only when an environment is ``manual``."""
    if github is None or writes is None or not github.is_app:
        return None
    if not any(env.policy == "manual" for env in config.environments):
        return None
    return ApprovalChecks(config, github, writes, config.github.target_url if config.github else None)


def _previewer(agent: Agent, github: GitHubClient | None) -> Callable[[int, str, str], object] | None:
    """Previews pull requests for ``pull_request`` webhooks; None without GitHub."""
    if github is None:
        return None
    from gitops_agent.preview import preview_pull_request

    target_url = agent.config.github.target_url if agent.config.github else None

    def preview(number: int, head_sha: str, base_ref: str) -> object:
        return preview_pull_request(agent, github, number, head_sha, base_ref=base_ref, target_url=target_url)

    return preview
