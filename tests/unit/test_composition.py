"""The composition root: the GitHub client built from the config (credentials read from their files,
never quoted), agents and daemons wired at construction."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_agent.composition import github_client, require_github
from gitops_agent.config import parse_config
from gitops_agent.errors import ConfigError

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
