"""The composition root: the GitHub client built from the config (credentials read from their files,
never quoted), agents and daemons wired at construction."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_agent.chat_reporting import ChatReporter
from gitops_agent.composition import (
    build_agent,
    command_wiring,
    github_client,
    lock_settings,
    require_github,
)
from gitops_agent.config import parse_config
from gitops_agent.core.env_lock import LockTimes
from gitops_agent.errors import ConfigError
from gitops_agent.reconcile import FollowSettings

BASE = """
repo: {url: https://github.com/acme/config.git}
environments: [{name: dev, path: environments/dev, namespace: shop-dev}]
"""


def config(github: str = "") -> str:
    return BASE + (f"github: {github}\n" if github else "")


def test_no_github_section_means_no_client_and_a_command_that_needs_one_says_what_to_add() -> None:
    cfg = parse_config(config(), source="a.yaml")
    assert github_client(cfg) is None
    with pytest.raises(ConfigError, match=r"a\.yaml: preview posts statuses: add a github: section"):
        require_github(github_client(cfg), cfg, "preview posts statuses")


def test_the_token_file_is_read_and_the_client_points_at_the_repository(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("ghp_secretvalue\n")
    cfg = parse_config(config(f"{{repository: acme/config, token_file: {tmp_path / 't'}}}"), source="a.yaml")
    client = github_client(cfg)
    assert client is not None and (client.owner, client.repo) == ("acme", "config")
    client.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "a.yaml: github.token_file: cannot read {path}: No such file"),
        ("  \n", "a.yaml: github.token_file: {path} is empty"),
    ],
    ids=["missing", "empty"],
)
def test_an_unusable_token_file_is_named(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content)
    cfg = parse_config(config(f"{{repository: acme/config, token_file: {path}}}"), source="a.yaml")
    with pytest.raises(ConfigError) as caught:
        github_client(cfg)
    assert str(caught.value).startswith(message.format(path=path))


def test_a_command_reads_github_credentials_only_when_it_talks_to_github(tmp_path: Path) -> None:
    cfg = parse_config(
        config(f"{{repository: acme/config, token_file: {tmp_path / 'missing'}}}").replace(
            "url: https://github.com/acme/config.git", f"url: {tmp_path}, cache_dir: {tmp_path / 'cache'}"
        ),
        source="a.yaml",
    )
    quiet = command_wiring(cfg, kubeconfig=None, report=False, github=False)
    assert quiet.github is None and quiet.reporter is None
    assert quiet.agent.reconciler.listeners == ()
    quiet.close()
    with pytest.raises(ConfigError, match=r"github\.token_file"):
        command_wiring(cfg, kubeconfig=None, report=True, github=True)


def test_an_agent_is_built_with_its_listeners_and_follow_settings(tmp_path: Path) -> None:
    cfg = parse_config(
        BASE.replace("url: https://github.com/acme/config.git", f"url: {tmp_path}, cache_dir: {tmp_path / 'c'}"),
        source="a.yaml",
    )

    class Heard:
        def applying(self, environment: str, commit: str) -> None: ...

        def finished(self, result: object) -> None: ...

    heard = Heard()
    agent = build_agent(cfg, listeners=[heard], follow=FollowSettings(enabled=False, poll_s=0.5))
    assert agent.reconciler.listeners == (heard,)
    assert agent.reconciler.follow_settings == FollowSettings(enabled=False, poll_s=0.5)
    assert agent.queries.snapshots is agent.snapshots is agent.reconciler.snapshots
    assert agent.queries.clusters is agent.clusters is agent.reconciler.clusters
    agent.close()


def test_lock_settings_wait_as_asked_and_live_as_long_as_the_environment_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITOPS_AGENT_LOCK_DURATION", raising=False)
    default = lock_settings()
    assert (default.wait_s, default.times) == (30, LockTimes(30, 5, 20))
    assert lock_settings(0).wait_s == 0
    monkeypatch.setenv("GITOPS_AGENT_LOCK_DURATION", "3")
    assert lock_settings().times == LockTimes.of(3)
    monkeypatch.setenv("GITOPS_AGENT_LOCK_DURATION", "0")
    with pytest.raises(ConfigError, match=r"\$GITOPS_AGENT_LOCK_DURATION: expected seconds above 0, got '0'"):
        lock_settings()


def test_chat_has_a_listener_of_its_own_and_only_commands_that_apply_get_it(tmp_path: Path) -> None:
    url = tmp_path / "chat-url"
    url.write_text("https://hooks.example/secret\n")
    cfg = parse_config(
        BASE.replace("url: https://github.com/acme/config.git", f"url: {tmp_path}, cache_dir: {tmp_path / 'c'}")
        + f"chat: {{webhook_url_file: {url}, digest: {{interval: 1h}}}}\n",
        source="a.yaml",
    )
    applying = command_wiring(cfg, kubeconfig=None, report=True, github=False)
    assert applying.reporter is None and isinstance(applying.chat, ChatReporter)
    assert applying.agent.reconciler.listeners == (applying.chat,)
    assert applying.chat.notifier.destinations == ("webhook",)
    assert applying.chat.memory.namespace == "gitops-agent"  # type: ignore[attr-defined]
    applying.close()
    reading = command_wiring(cfg, kubeconfig=None, report=False, github=False)
    assert reading.chat is None and reading.agent.reconciler.listeners == ()
    reading.close()
