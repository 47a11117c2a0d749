"""The config file: what it accepts, and that every mistake names the file, the key and the fix."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gitops_agent.config import (
    DEFAULT_EXPECTED_MANAGERS,
    ChatConfig,
    DigestConfig,
    PromotionConfig,
    digest_trigger,
    find_config_path,
    load_config,
    parse_config,
)
from gitops_agent.core.promote import PromotableField
from gitops_agent.core.scope import Scope
from gitops_agent.errors import ConfigError

MINIMAL = """
repo:
  url: https://github.com/acme/config.git
environments:
  - name: dev
    path: environments/dev
    namespace: shop-dev
"""

FULL = """
repo:
  url: file:///srv/config
  branch: main
  poll_interval: 1m30s
  token_file: /var/run/secrets/token
agent:
  namespace: ops
  field_manager: my-agent
environments:
  - name: dev
    path: environments/dev
    namespace: shop-dev
    policy: enforce
  - name: prod
    path: environments/prod
    branch: release
    namespace: shop-prod
    context: prod-cluster
    policy: manual
    create_namespace: false
    prune_propagation: foreground
    health_timeout: 10m
    expected_managers:
      - argo-rollouts
      - manager: kube-controller-manager
        paths: [/spec/replicas]
    ignore:
      - kind: Deployment
        name: api
        paths: [/spec/template/metadata/annotations]
github:
  repository: acme/config
  token_file: /var/run/secrets/gh
chat:
  slack_webhook_url_file: /var/run/secrets/slack
"""


def test_minimal_config_gets_sensible_defaults() -> None:
    config = parse_config(MINIMAL, source="a.yaml")
    env = config.environment("dev")
    assert (config.repo.branch, config.repo.poll_interval_s) == ("main", 60.0)
    assert (env.policy, env.create_namespace, env.prune, env.allow_empty) == ("report", True, True, False)
    assert env.expected_managers == DEFAULT_EXPECTED_MANAGERS
    assert config.agent.field_manager == "gitops-agent"


def test_full_config_is_read_into_typed_fields() -> None:
    config = parse_config(FULL, source="a.yaml")
    prod = config.environment("prod")
    assert config.repo.poll_interval_s == 90.0
    assert config.branch_of(prod) == "release"
    assert config.branch_of(config.environment("dev")) == "main"
    assert (prod.policy, prod.context, prod.health_timeout_s) == ("manual", "prod-cluster", 600.0)
    assert [m.manager for m in prod.expected_managers] == ["argo-rollouts", "kube-controller-manager"]
    assert prod.expected_managers[1].paths == ("/spec/replicas",)
    assert prod.ignore[0].paths == ("/spec/template/metadata/annotations",)
    assert config.github is not None and config.github.repository == "acme/config"
    assert config.agent.namespace == "ops"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(MINIMAL.replace("namespace: shop-dev", "namespace: shop-dev\n    polcy: enforce"),
                     "environments[0]: unknown key 'polcy'", id="unknown-key"),
        pytest.param(MINIMAL.replace("namespace: shop-dev", "namespace: shop-dev\n    policy: always"),
                     "environments[0].policy: expected one of report, enforce, manual, got 'always'", id="bad-policy"),
        pytest.param(MINIMAL.replace("    namespace: shop-dev\n", ""),
                     "environments[0]: missing required key 'namespace'", id="missing-namespace"),
        pytest.param(MINIMAL.replace("url: https", "token: abc\n  url: https"),
                     "repo: unknown key 'token'", id="inline-credential"),
        pytest.param(MINIMAL + "  - name: dev\n    path: x\n    namespace: y\n",
                     "environments[1].name: duplicate environment name 'dev'", id="duplicate-env"),
        pytest.param(MINIMAL.replace("url: https", "poll_interval: soon\n  url: https"),
                     "repo.poll_interval: expected a duration", id="bad-duration"),
        pytest.param("repo: [", "not valid YAML", id="malformed-yaml"),
        pytest.param("environments: []\nrepo: {url: x}", "environments: expected a non-empty list", id="no-envs"),
        pytest.param(MINIMAL + "github:\n  repository: acme/config\n",
                     "github: set token_file, or app_id", id="github-without-credentials"),
        pytest.param(MINIMAL.replace("name: dev", "name: Dev_1"), "is not a valid name", id="bad-env-name"),
        pytest.param(MINIMAL + "    ignore:\n      - kind: Deployment\n        paths: [spec/replicas]\n",
                     "ignore[0].paths[0]: expected a JSON pointer", id="ignore-not-a-pointer"),
    ],
)  # fmt: skip
def test_mistakes_name_the_file_and_the_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(text, source="conf/agent.yaml")
    assert str(err.value).startswith("conf/agent.yaml: ")
    assert expected in str(err.value)


def test_unknown_environment_lists_the_known_ones() -> None:
    config = parse_config(FULL, source="a.yaml")
    with pytest.raises(ConfigError, match=r"no environment named 'qa' \(known: dev, prod\)"):
        config.environment("qa")


def test_config_path_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITOPS_AGENT_CONFIG", "/etc/from-env.yaml")
    assert find_config_path("/explicit.yaml") == Path("/explicit.yaml")
    assert find_config_path(None) == Path("/etc/from-env.yaml")
    monkeypatch.delenv("GITOPS_AGENT_CONFIG")
    assert find_config_path(None) == Path("gitops-agent.yaml")


def test_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found .*--config PATH"):
        load_config(tmp_path / "nope.yaml")


# --- promotion: which fields besides images carry a release's identity ---------------------------


def test_promotion_is_optional_and_empty_by_default() -> None:
    assert parse_config(MINIMAL, source="a.yaml").promotion == PromotionConfig()


def test_promotable_fields_are_read_in_order() -> None:
    text = MINIMAL + (
        "promotion:\n"
        "  fields:\n"
        "    - {kind: Deployment, path: /metadata/annotations/acme.io~1version}\n"
        "    - {kind: ConfigMap, path: /data/APP_VERSION}\n"
    )
    assert parse_config(text, source="a.yaml").promotion.fields == (
        PromotableField("Deployment", "/metadata/annotations/acme.io~1version"),
        PromotableField("ConfigMap", "/data/APP_VERSION"),
    )


@pytest.mark.parametrize(
    ("promotion", "message"),
    [
        ("{feilds: []}", "a.yaml: promotion: unknown key 'feilds'"),
        ("{fields: {kind: Deployment}}", "a.yaml: promotion.fields: expected a list, got a mapping"),
        ("{fields: [{kind: Deployment}]}", "a.yaml: promotion.fields[0]: missing required key 'path'"),
        ("{fields: [{kind: Deployment, path: spec.x}]}", "promotion.fields[0].path: expected a JSON pointer"),
        ("{fields: [{kind: '', path: /x}]}", "promotion.fields[0].kind: expected a non-empty string"),
    ],
    ids=["unknown-key", "not-a-list", "missing-path", "not-a-pointer", "empty-kind"],
)
def test_mistakes_name_the_key(promotion: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(MINIMAL + f"promotion: {promotion}\n", source="a.yaml")


# --- boundaries: scope, service_account, prune_allow -------------------------------------------


def test_scope_defaults_to_the_environment_namespace_and_is_read_in_full() -> None:
    text = MINIMAL + (
        "    service_account: deployer\n    prune_allow: [PersistentVolumeClaim]\n"
        "    scope: {namespaces: [shop-dev, 'shop-dev-*'], cluster_kinds: [ClusterRole], deny_kinds: [Secret]}\n"
    )
    env = parse_config(text, source="a.yaml").environments[0]
    assert env.boundary == Scope(("shop-dev", "shop-dev-*"), ("ClusterRole",), ("Secret",))
    assert env.impersonate == "system:serviceaccount:shop-dev:deployer"
    assert env.prune_allow == ("PersistentVolumeClaim",)
    plain = parse_config(MINIMAL, source="a.yaml").environments[0]
    assert plain.boundary == Scope(("shop-dev",)) and plain.impersonate is None


def test_an_environment_may_not_live_in_the_agent_s_namespace_nor_have_an_empty_scope() -> None:
    with pytest.raises(ConfigError, match=r"environments\[0\]\.namespace: 'gitops-agent' is the agent's own"):
        parse_config(MINIMAL.replace("namespace: shop-dev", "namespace: gitops-agent"), source="a.yaml")
    with pytest.raises(ConfigError, match=r"environments\[0\]\.scope\.namespaces: list at least one"):
        parse_config(MINIMAL + "    scope: {namespaces: []}\n", source="a.yaml")


def chat_digest(digest: str) -> str:
    return MINIMAL + f"chat:\n  webhook_url_file: /run/url\n  digest: {digest}\n"


def test_the_chat_digest_is_a_cron_in_a_time_zone_or_an_interval() -> None:
    cron = parse_config(chat_digest('{cron: "0 9 * * 1-5", timezone: Europe/Berlin}'), source="a.yaml").chat
    assert cron is not None and cron.digest == DigestConfig(cron="0 9 * * 1-5", timezone="Europe/Berlin")
    every = parse_config(chat_digest("{interval: 24h}"), source="a.yaml").chat
    assert every is not None and every.digest == DigestConfig(interval_s=86400.0)
    assert parse_config(FULL, source="a.yaml").chat == ChatConfig(slack_webhook_url_file="/var/run/secrets/slack")


def test_cron_weekdays_are_cron_s_not_apscheduler_s() -> None:
    """APScheduler counts weekdays from Monday; cron from Sunday (0 and 7)."""
    weekdays = digest_trigger(DigestConfig(cron="0 9 * * 1-5", timezone="UTC"))
    sunday = datetime(2024, 5, 5, 12, 0, tzinfo=UTC)
    assert weekdays.get_next_fire_time(None, sunday) == datetime(2024, 5, 6, 9, 0, tzinfo=UTC)  # Monday
    sundays = digest_trigger(DigestConfig(cron="30 8 * * 0", timezone="UTC"))
    assert sundays.get_next_fire_time(None, sunday) == datetime(2024, 5, 12, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("digest", "message"),
    [
        ("{}", 'a.yaml: chat.digest: set exactly one of cron (e.g. "0 9 * * 1-5") and interval'),
        ('{cron: "0 9 * * *", interval: 1h}', "a.yaml: chat.digest: set exactly one of cron"),
        ('{cron: "0 9 * *"}', "a.yaml: chat.digest.cron: not a cron expression (minute hour day-of-month month "),
        ('{cron: "61 9 * * *"}', "a.yaml: chat.digest.cron: not a cron expression"),
        ('{cron: "0 9 * * 8"}', "a.yaml: chat.digest.cron: not a cron expression"),
        (
            '{cron: "0 9 * * *", timezone: Mars/Olympus}',
            "a.yaml: chat.digest.timezone: unknown time zone 'Mars/Olympus'",
        ),
        ("{interval: 10s}", "a.yaml: chat.digest.interval: expected at least 1m"),
        ("{interval: soon}", "a.yaml: chat.digest.interval: expected a duration"),
        ('{cron: "0 9 * * *", at: 9}', "a.yaml: chat.digest: unknown key 'at'"),
    ],
)
def test_a_bad_digest_schedule_says_what_is_wrong(digest: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(chat_digest(digest), source="a.yaml")
    assert str(caught.value).startswith(message)


def test_the_server_s_two_listeners_and_their_defaults() -> None:
    server = parse_config(MINIMAL, source="a.yaml").server
    assert (server.listen, server.status_listen, server.max_connections) == ("0.0.0.0:8080", "0.0.0.0:9090", 256)
    assert server.status_token_file is None and server.webhook_secret_file is None
    text = MINIMAL + "server: {status_listen: '127.0.0.1:9999', status_token_file: /t, max_connections: 32}\n"
    server = parse_config(text, source="a.yaml").server
    assert (server.status_listen, server.status_token_file, server.max_connections) == ("127.0.0.1:9999", "/t", 32)


@pytest.mark.parametrize("value", ["0", "-1", "many", "true", "1.5"])
def test_max_connections_is_a_positive_whole_number(value: str) -> None:
    with pytest.raises(ConfigError, match=r"server\.max_connections: expected a positive whole number"):
        parse_config(MINIMAL + f"server: {{max_connections: {value}}}\n", source="a.yaml")
