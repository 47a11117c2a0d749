"""A GitHub client from the agent's ``github:`` config: the credential files read, never echoed.

The client (:mod:`gitops_agent.adapters.github`) takes credentials, not file names; this is the one
place that turns ``github.token_file`` or the App's ``private_key_file`` into them, with a message
naming the file (never its content) when it cannot.
"""

from __future__ import annotations

from gitops_agent.adapters.github import AppAuth, GitHubClient, TokenAuth
from gitops_agent.config import Config, GitHubConfig, read_secret_file
from gitops_agent.errors import ConfigError


def github_client(config: Config) -> GitHubClient | None:
    """The configured repository's client, or None when the config has no ``github:``."""
    if config.github is None:
        return None
    return GitHubClient(config.github.api_url, config.github.repository, _auth(config.github, config))


def require_github(config: Config, why: str) -> GitHubClient:
    """The client, or a ConfigError saying what needs it."""
    client = github_client(config)
    if client is None:
        raise ConfigError(f"{config.source}: {why}: add a github: section (repository, token_file)")
    return client


def _auth(github: GitHubConfig, config: Config) -> TokenAuth | AppAuth:
    token = read_secret_file(github.token_file, "github.token_file", config)
    if token is not None:
        return TokenAuth(token)
    key = read_secret_file(github.private_key_file, "github.private_key_file", config)
    if github.app_id and github.installation_id and key is not None:
        return AppAuth(github.app_id, github.installation_id, key)
    raise ConfigError(f"{config.source}: github: set token_file, or app_id + installation_id + private_key_file")
