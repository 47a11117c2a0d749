"""The composition root: every object the agent runs with is built here, once, with its
collaborators — no attribute is set after construction. The command line asks for a ``Wiring``
(one-shot commands) or, from ``composition.daemon``, a ``DaemonWiring`` (``gitops-agent run``: kept
apart so one-shot commands never import the scheduler, the HTTP server or Prometheus); tests build
agents the same way.

One GitHub client per process, shared by the reporter, previews and proposals, counting its
requests into the daemon's metrics. Chat has a listener of its own (``chat_reporting``), which
keeps what it told in the agent's namespace of the current context's cluster.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gitops_agent.adapters.git_source import GitCredentials, GitSource
from gitops_agent.adapters.helm import ChartCache, Helm
from gitops_agent.adapters.renderer import Kustomize
from gitops_agent.agent import Agent
from gitops_agent.chat_reporting import ChatReporter
from gitops_agent.cluster.chat_memory import ChatMemoryStore
from gitops_agent.cluster.clients import Clusters
from gitops_agent.cluster.lock import Locks, LockSettings
from gitops_agent.config import Config, EnvironmentConfig, GitHubConfig, read_secret_file
from gitops_agent.core.env_lock import LockTimes
from gitops_agent.core.helm import Capabilities, api_versions, kube_version
from gitops_agent.errors import ConfigError
from gitops_agent.leader import default_identity
from gitops_agent.queries import Queries
from gitops_agent.reconcile import FollowSettings, PassListener, PassResult, Reconciler
from gitops_agent.reporting import Reporter
from gitops_agent.snapshots import Snapshots

if TYPE_CHECKING:  # built only when configured: their HTTP stack costs every command ~0.2s to import
    from gitops_agent.adapters.chat import ChatNotifier
    from gitops_agent.adapters.github import AppAuth, GitHubClient, TokenAuth


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
    identity: str | None = None,
    lock: LockSettings | None = None,
) -> Agent:
    """The agent of one config: git source, renderer, clusters, passes and reads. ``identity``
    names this process in the environments' locks (default: ``leader.default_identity``)."""
    repo = config.repo
    credentials = GitCredentials(token_file=repo.token_file, token_env=repo.token_env, ssh_key_file=repo.ssh_key_file)
    git_cache = Path(repo.cache_dir) if repo.cache_dir else default_cache_dir()
    source = GitSource(repo.url, git_cache, credentials=credentials)
    kustomize = Kustomize(config.agent.kustomize or os.environ.get("GITOPS_AGENT_KUSTOMIZE"))
    clusters = clusters or Clusters(kubeconfig=kubeconfig, impersonate=impersonate)
    charts = ChartCache(Path(config.agent.chart_cache or git_cache.parent / "charts"), Helm(config.agent.helm))
    snapshots = Snapshots(config, source, kustomize, charts=charts, capabilities=capabilities_of(clusters))
    locks = Locks(
        identity or default_identity(),
        namespace=config.agent.namespace,
        field_manager=config.agent.field_manager,
        settings=lock or lock_settings(),
        stop=stopping,
    )
    reconciler = Reconciler(
        config, snapshots, clusters, locks=locks, listeners=listeners, follow_settings=follow, stopping=stopping
    )
    return Agent(
        config,
        snapshots=snapshots,
        clusters=clusters,
        reconciler=reconciler,
        queries=Queries(config, snapshots, clusters),
    )


def capabilities_of(clusters: Clusters) -> Callable[[EnvironmentConfig], Capabilities]:
    """An environment's cluster as helm's ``.Capabilities`` see it: its version and every API
    version discovery lists (read when a chart renders)."""

    def read(env: EnvironmentConfig) -> Capabilities:
        kube = clusters.kube(env)
        return Capabilities(kube_version(kube.server_version()), api_versions(kube.discover().served()))

    return read


def lock_settings(wait_s: float | None = None) -> LockSettings:
    """How long a pass waits for another holder of its environment's lock (``--lock-timeout``), and
    how long a lock lives unrenewed: ``$GITOPS_AGENT_LOCK_DURATION`` seconds (default 30; tests
    shorten it to see a lock expire)."""
    base = LockSettings()
    duration = os.environ.get("GITOPS_AGENT_LOCK_DURATION")
    try:
        times = LockTimes.of(float(duration)) if duration else base.times
    except ValueError as exc:
        raise ConfigError(f"$GITOPS_AGENT_LOCK_DURATION: expected seconds above 0, got {duration!r}") from exc
    return LockSettings(times=times, wait_s=base.wait_s if wait_s is None else wait_s, poll_s=base.poll_s)


# --- GitHub and chat ---------------------------------------------------------------------------


def github_client(config: Config, *, on_request: Callable[[str, int], None] | None = None) -> GitHubClient | None:
    """The configured repository's client, or None when the config has no ``github:``. The
    credential files are read here, never echoed: errors name the file, not its content."""
    if config.github is None:
        return None
    from gitops_agent.adapters.github import GitHubClient  # here: see TYPE_CHECKING above

    auth = _github_auth(config.github, config)
    return GitHubClient(config.github.api_url, config.github.repository, auth, on_request=on_request)


def require_github(github: GitHubClient | None, config: Config, why: str) -> GitHubClient:
    """The client, or a ConfigError saying what needs it."""
    if github is None:
        raise ConfigError(f"{config.source}: {why}: add a github: section (repository, token_file)")
    return github


def _github_auth(github: GitHubConfig, config: Config) -> TokenAuth | AppAuth:
    from gitops_agent.adapters.github import AppAuth, TokenAuth

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
    from gitops_agent.adapters.chat import ChatNotifier

    return ChatNotifier(
        slack_webhook_url=read_secret_file(config.chat.slack_webhook_url_file, "chat.slack_webhook_url_file", config),
        webhook_url=read_secret_file(config.chat.webhook_url_file, "chat.webhook_url_file", config),
    )


def reporter(config: Config, github: GitHubClient | None) -> Reporter | None:
    """A Reporter of commit statuses; None without ``github:``."""
    if github is None:
        return None
    return Reporter(github=github, target_url=_target_url(config))


def chat_reporter(
    config: Config,
    clusters: Clusters,
    *,
    leading: Callable[[], bool] | None = None,
    check_drift: Callable[[], Sequence[PassResult]] | None = None,
) -> ChatReporter | None:
    """The chat listener for the config's ``chat:`` section (None without one). ``leading`` (the
    daemon's) lets it send the digest while this replica leads, reading every environment's drift
    with ``check_drift``; one-shot commands send none."""
    notifier = chat_notifier(config)
    if notifier is None or config.chat is None:
        return None
    agent = config.agent
    memory = ChatMemoryStore(clusters.home_kube, namespace=agent.namespace, field_manager=agent.field_manager)
    return ChatReporter(
        notifier,
        memory,
        environments=[env.name for env in config.environments],
        target_url=_target_url(config),
        digest=config.chat.digest,
        leading=leading,
        check_drift=check_drift,
    )


def _target_url(config: Config) -> str | None:
    return config.github.target_url if config.github else None


# --- one-shot commands -------------------------------------------------------------------------


@dataclass
class Wiring:
    """What a one-shot command runs with; ``close`` sends what the reporters still hold."""

    agent: Agent
    github: GitHubClient | None
    reporter: Reporter | None = None
    chat: ChatReporter | None = None

    def close(self) -> None:
        if self.reporter is not None:
            self.reporter.close()  # statuses of this run are sent before the command returns
        elif self.github is not None:
            self.github.close()
        if self.chat is not None:
            self.chat.close()  # chat messages of this run too: it waits for them (bounded)
        self.agent.close()


def command_wiring(
    config: Config,
    *,
    kubeconfig: str | None,
    report: bool,
    github: bool,
    follow: FollowSettings | None = None,
    lock_wait_s: float | None = None,
) -> Wiring:
    """``report``: the command applies (``sync``, ``rollback --now``), so GitHub and chat hear of it;
    ``github``: it talks to GitHub (credentials are read only then); ``follow``: how a rollout is
    followed after an apply (``--no-wait``, ``--timeout``, progress lines); ``lock_wait_s``: how long
    a pass waits for another holder of its environment's lock (``--lock-timeout``)."""
    client = github_client(config) if github else None
    clusters = Clusters(kubeconfig=kubeconfig)
    told = reporter(config, client) if report else None
    chat = chat_reporter(config, clusters) if report else None
    agent = build_agent(
        config,
        kubeconfig=kubeconfig,
        listeners=[listener for listener in (told, chat) if listener is not None],
        clusters=clusters,
        follow=follow or FollowSettings(),
        lock=lock_settings(lock_wait_s),
    )
    return Wiring(agent, client, told, chat)
