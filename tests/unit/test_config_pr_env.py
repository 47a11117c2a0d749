"""``pull_request_environments:``: what it accepts, and mistakes named by key."""

from __future__ import annotations

import pytest

from gitops_agent.config import PullRequestEnvironmentConfig, parse_config
from gitops_agent.errors import ConfigError

BASE = """
repo:
  url: https://github.com/acme/config.git
environments:
  - name: dev
    path: environments/dev
    namespace: shop-dev
"""


def parse(extra: str) -> tuple[PullRequestEnvironmentConfig, ...]:
    return parse_config(BASE + extra, source="a.yaml").pull_request_environments


def test_defaults_and_every_key() -> None:
    assert parse("") == ()
    (plain,) = parse("pull_request_environments:\n  - environment: dev\n")
    assert plain == PullRequestEnvironmentConfig("dev", "pr-{number}-{env}", 72 * 3600.0, 10)
    (full,) = parse(
        """
pull_request_environments:
  - environment: dev
    namespace: "preview-{env}-{number}"
    ttl: 24h
    max: 3
    url: "https://pr-{number}.dev.example.com"
    quota: {hard: {pods: "10"}}
    limit_range: {limits: [{type: Container, default: {cpu: 200m}}]}
"""
    )
    assert (full.namespace, full.ttl_s, full.max, full.url) == (
        "preview-{env}-{number}", 86400.0, 3, "https://pr-{number}.dev.example.com",
    )  # fmt: skip
    assert full.quota == {"hard": {"pods": "10"}}
    assert full.limit_range == {"limits": [{"type": "Container", "default": {"cpu": "200m"}}]}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("{environment: qa}", r"pull_request_environments\[0\].environment: no environment named 'qa'"),
        ("{environment: dev, namespace: 'pr-{env}'}", r"\.namespace: must contain \{number\}"),
        ("{environment: dev, namespace: 'pr-{number}-{branch}'}", r"unknown placeholder \{branch\}"),
        ("{environment: dev, namespace: 'PR-{number}'}", r"is not a DNS label"),
        ("{environment: dev, namespace: 'pr-{number}-" + "x" * 50 + "'}", r"longer than 63 characters"),
        ("{environment: dev, max: 0}", r"\.max: expected a positive whole number"),
        ("{environment: dev, ttl: soon}", r"\.ttl: expected a duration"),
        ("{environment: dev, quota: {pods: 1}}", r"\.quota: unknown key 'pods'"),
        ("{environment: dev, limit_range: {}}", r"\.limit_range: missing required key 'limits'"),
        ("{environment: dev, size: 1}", r"pull_request_environments\[0\]: unknown key 'size'"),
    ],
)
def test_mistakes_name_the_key(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(f"pull_request_environments:\n  - {item}\n")


def test_an_environment_listed_twice_or_named_like_a_pr_environment_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"\[1\]\.environment: 'dev' is listed twice"):
        parse("pull_request_environments: [{environment: dev}, {environment: dev}]\n")
    clash = BASE + "  - {name: pr-1-dev, path: x, namespace: y}\npull_request_environments: [{environment: dev}]\n"
    with pytest.raises(ConfigError, match=r"environments\[1\]\.name: 'pr-1-dev' is how PR environments are named"):
        parse_config(clash, source="a.yaml")
