"""The composition root: every object the agent runs with is built here, once, with its
collaborators — no attribute is set after construction. The command line asks for a ``Wiring``
(one-shot commands) or a ``DaemonWiring`` (``gitops-agent run``); tests build agents the same way.

One GitHub client per process, shared by the reporter, previews and proposals, counting its
requests into the daemon's metrics.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gitops_agent.adapters.chat import ChatNotifier
from gitops_agent.adapters.git_source import GitCredentials, GitSource
from gitops_agent.adapters.github import AppAuth, GitHubClient, TokenAuth
from gitops_agent.adapters.kube import KubeClient
from gitops_agent.adapters.renderer import Kustomize
from gitops_agent.agent import Agent
from gitops_agent.cluster.clients import Clusters
from gitops_agent.config import Config, GitHubConfig, read_secret_file
from gitops_agent.errors import ConfigError
from gitops_agent.leader import LeaderElector, LeaderOptions, PushRelay, default_identity
from gitops_agent.metrics import Metrics
from gitops_agent.queries import Queries
from gitops_agent.readiness import cluster_probe
from gitops_agent.reconcile import FollowSettings, PassListener, Reconciler
from gitops_agent.reporting import Reporter
from gitops_agent.scheduler import Scheduler, SchedulerOptions
from gitops_agent.server import AgentServer, parse_listen, read_webhook_secret
from gitops_agent.snapshots import Snapshots


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gitops-agent" / "repos"


def build_agent(
    config: Config,
    *,
    kubeconfig: str | None = None,
    impersonate: str | None = None,
    listeners: Sequence[PassListener] = (),
    follow: FollowSettings | None = None,
    stopping: threading.Event | None = None,
    clusters: Clusters | None = None,
) -> Agent:
    """The agent of one config: git source, renderer, clusters, passes and reads."""
    repo = config.repo
    credentials = GitCredentials(token_file=repo.token_file, token_env=repo.token_env, ssh_key_file=repo.ssh_key_file)
    source = GitSource(
        repo.url, Path(repo.cache_dir) if repo.cache_dir else default_cache_dir(), credentials=credentials
    )
    kustomize = Kustomize(config.agent.kustomize or os.environ.get("GITOPS_AGENT_KUSTOMIZE"))
    snapshots = Snapshots(config, source, kustomize)
    clusters = clusters or Clusters(kubeconfig=kubeconfig, impersonate=impersonate)
    reconciler = Reconciler(config, snapshots, clusters, listeners=listeners, follow_settings=follow, stopping=stopping)
    return Agent(
        config,
        snapshots=snapshots,
        clusters=clusters,
        reconciler=reconciler,
        queries=Queries(config, snapshots, clusters),
    )


# --- GitHub and chat ---------------------------------------------------------------------------


def github_client(config: Config, *, on_request: Callable[[str, int], None] | None = None) -> GitHubClient | None:
    """The configured repository's client, or None when the config has no ``github:``. The
    credential files are read here, never echoed: errors name the file, not its content."""
    if config.github is None:
        return None
    auth = _github_auth(config.github, config)
    return GitHubClient(config.github.api_url, config.github.repository, auth, on_request=on_request)


def require_github(github: GitHubClient | None, config: Config, why: str) -> GitHubClient:
    """The client, or a ConfigError saying what needs it."""
    if github is None:
        raise ConfigError(f"{config.source}: {why}: add a github: section (repository, token_file)")
    return github


def _github_auth(github: GitHubConfig, config: Config) -> TokenAuth | AppAuth:
    token = read_secret_file(github.token_file, "github.token_file", config)
    if token is not None:
        return TokenAuth(token)
    key = read_secret_file(github.private_key_file, "github.private_key_file", config)
    if github.app_id and github.installation_id and key is not None:
        return AppAuth(github.app_id, github.installation_id, key)
    raise ConfigError(f"{config.source}: github: set token_file, or app_id + installation_id + private_key_file")


def chat_notifier(config: Config) -> ChatNotifier | None:
    if config.chat is None:
        return None
    return ChatNotifier(
        slack_webhook_url=read_secret_file(config.chat.slack_webhook_url_file, "chat.slack_webhook_url_file", config),
        webhook_url=read_secret_file(config.chat.webhook_url_file, "chat.webhook_url_file", config),
    )


def reporter(config: Config, github: GitHubClient | None) -> Reporter | None:
    """A Reporter for the config's ``github:`` and ``chat:`` sections; None when neither is set."""
    chat = chat_notifier(config)
    if github is None and chat is None:
        return None
    return Reporter(github=github, chat=chat, target_url=config.github.target_url if config.github else None)


# --- one-shot commands -------------------------------------------------------------------------


@dataclass
class Wiring:
    """What a one-shot command runs with; ``close`` sends what the reporter still holds."""

    agent: Agent
    github: GitHubClient | None
    reporter: Reporter | None = None

    def close(self) -> None:
        if self.reporter is not None:
            self.reporter.close()  # statuses of this run are sent before the command returns
        elif self.github is not None:
            self.github.close()
        self.agent.close()


def command_wiring(
    config: Config, *, kubeconfig: str | None, report: bool, github: bool, follow: bool = True
) -> Wiring:
    """``report``: the command applies (``sync``, ``rollback --now``), so GitHub and chat hear of it;
    ``github``: it talks to GitHub (credentials are read only then)."""
    client = github_client(config) if github else None
    told = reporter(config, client) if report else None
    agent = build_agent(
        config, kubeconfig=kubeconfig, listeners=[told] if told else (), follow=FollowSettings(enabled=follow)
    )
    return Wiring(agent, client, told)


# --- the daemon --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    listen: str | None = None  # default: server.listen from the config
    log_format: str | None = None  # json | text; default: text on a terminal, else JSON
    leader_election: bool = True
    kubeconfig: str | None = None
    shutdown_timeout_s: float = 60.0


@dataclass
class DaemonWiring:
    agent: Agent
    metrics: Metrics
    scheduler: Scheduler
    server: AgentServer
    elector: LeaderElector | None
    reporter: Reporter | None
    stopping: threading.Event = field(default_factory=threading.Event)


def daemon_wiring(config: Config, options: RunOptions) -> DaemonWiring:
    """Everything ``gitops-agent run`` runs. Everything that can fail on bad input (webhook secret,
    listen address, credentials) fails here, before anything starts."""
    secret = read_webhook_secret(config.server.webhook_secret_file)
    address = parse_listen(options.listen or config.server.listen)
    identity = default_identity()
    stopping = threading.Event()
    clusters = Clusters(kubeconfig=options.kubeconfig)
    metrics = Metrics(clusters.request_counts)
    github = github_client(config, on_request=metrics.count_github_request)
    told = reporter(config, github)
    agent = build_agent(config, listeners=[told] if told else (), stopping=stopping, clusters=clusters)
    lease = LeaderOptions(namespace=config.agent.namespace, identity=identity, field_manager=config.agent.field_manager)
    lease_kube = KubeClient.connect(kubeconfig=options.kubeconfig) if options.leader_election else None
    scheduler = Scheduler(
        agent,
        metrics=metrics,
        options=SchedulerOptions(identity=identity, shutdown_timeout_s=options.shutdown_timeout_s),
        probe=cluster_probe(agent.clusters.kube, config),
        relay=PushRelay(lease_kube, lease).relay if lease_kube is not None else None,
        previewer=_previewer(agent, github),
    )
    elector = None
    if lease_kube is not None:
        elector = LeaderElector(lease_kube, lease, on_change=scheduler.set_leading, on_push=scheduler.push)
    server = AgentServer(address, scheduler, webhook_secret=secret)
    return DaemonWiring(agent, metrics, scheduler, server, elector, told, stopping)


def _previewer(agent: Agent, github: GitHubClient | None) -> Callable[[int, str, str], object] | None:
    """Previews pull requests for ``pull_request`` webhooks; None without GitHub."""
    if github is None:
        return None
    from gitops_agent.preview import preview_pull_request

    target_url = agent.config.github.target_url if agent.config.github else None

    def preview(number: int, head_sha: str, base_ref: str) -> object:
        return preview_pull_request(agent, github, number, head_sha, base_ref=base_ref, target_url=target_url)

    return preview
