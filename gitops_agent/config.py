"""The agent's configuration file: parsed once, validated strictly, frozen.

Unknown keys are errors rather than silently ignored: a typo such as ``polcy: enforce`` would
otherwise leave prod on the default policy without anyone noticing. Every error names the file,
the key (as a dotted path) and what was expected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from gitops_agent.core.drift import ExpectedManager, IgnoreRule
from gitops_agent.core.health_custom import CustomRule, RuleError, compile_rule
from gitops_agent.core.helm import (
    ChartSource,
    HelmSpec,
    release_problem,
    repo_problem,
    values_path_problem,
    version_problem,
)
from gitops_agent.core.pr_env import (
    DEFAULT_MAX,
    DEFAULT_NAMESPACE_PATTERN,
    DEFAULT_TTL_S,
    looks_derived,
    pattern_problem,
)
from gitops_agent.core.promote import PromotableField
from gitops_agent.core.render_box import DEFAULT_RENDER_LIMITS, RenderLimits, prefix_problem
from gitops_agent.core.scope import Scope
from gitops_agent.errors import ConfigError
from gitops_agent.model import api_group

DEFAULT_CONFIG_NAME = "gitops-agent.yaml"
CONFIG_ENV_VAR = "GITOPS_AGENT_CONFIG"
POLICIES = ("report", "enforce", "manual")
PROPAGATIONS = ("background", "foreground", "orphan")
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
#: the shortest digest interval: more often is a flood, not a reminder
MIN_DIGEST_INTERVAL_S = 60.0
_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?$")
_SIZE_RE = re.compile(r"^(\d+)\s*(Ki|Mi|Gi|KiB|MiB|GiB)?$")
_SIZE_UNITS = {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
RENDER_KEYS = frozenset({"allow_remote", "timeout", "max_output"})


#: Managers that legitimately own fields after an apply, by default (drift issue): the HPA writes
#: ``spec.replicas`` as kube-controller-manager.
DEFAULT_EXPECTED_MANAGERS: tuple[ExpectedManager, ...] = (
    ExpectedManager("kube-controller-manager", ("/spec/replicas",)),
    ExpectedManager("vpa-recommender", ("/spec/template/spec/containers",)),
    ExpectedManager("argo-rollouts"),
)


@dataclass(frozen=True)
class RepoConfig:
    url: str
    branch: str = "main"
    poll_interval_s: float = 60.0
    token_file: str | None = None
    token_env: str | None = None
    ssh_key_file: str | None = None
    cache_dir: str | None = None


@dataclass(frozen=True)
class EnvironmentConfig:
    name: str
    path: str
    namespace: str
    policy: str = "report"
    branch: str | None = None
    context: str | None = None
    create_namespace: bool = True
    prune: bool = True
    allow_empty: bool = False
    prune_propagation: str = "background"
    health_timeout_s: float | None = None
    interval_s: float | None = None
    expected_managers: tuple[ExpectedManager, ...] = DEFAULT_EXPECTED_MANAGERS
    ignore: tuple[IgnoreRule, ...] = ()
    #: what the environment may write; default: its own namespace only (see core.scope)
    scope: Scope | None = None
    #: every request of the environment is made as this ServiceAccount (``namespace/name`` or a
    #: name in the environment's namespace), so the cluster's RBAC bounds it too
    service_account: str | None = None
    #: kinds pruning may delete though it never does by default (Namespace, PersistentVolumeClaim,
    #: CustomResourceDefinition: deleting them deletes what they hold)
    prune_allow: tuple[str, ...] = ()
    #: what its render may reach and produce: the top-level ``render:`` with its own keys over it
    render: RenderLimits = DEFAULT_RENDER_LIMITS
    #: how its chart renders (release, chart source, values); None: a chart directory renders with
    #: its own values.yaml under the environment's name, any other directory without helm
    helm: HelmSpec | None = None

    @property
    def boundary(self) -> Scope:
        return self.scope or Scope(namespaces=(self.namespace,))

    @property
    def impersonate(self) -> str | None:
        """The user name the API server knows the environment's ServiceAccount by."""
        if not self.service_account:
            return None
        namespace, _, name = self.service_account.rpartition("/")
        return f"system:serviceaccount:{namespace or self.namespace}:{name}"


@dataclass(frozen=True)
class AgentConfig:
    """Where the agent keeps its own state in the cluster, and under which name it writes."""

    namespace: str = "gitops-agent"
    field_manager: str = "gitops-agent"
    kustomize: str | None = None
    helm: str | None = None  # the helm binary (default: $GITOPS_AGENT_HELM, else helm on PATH)
    chart_cache: str | None = None  # pulled charts (default: beside the git cache)


@dataclass(frozen=True)
class GitHubConfig:
    repository: str
    api_url: str = "https://api.github.com"
    token_file: str | None = None
    app_id: str | None = None
    installation_id: str | None = None
    private_key_file: str | None = None
    target_url: str | None = None


@dataclass(frozen=True)
class DigestConfig:
    """When the drift digest is sent: a cron expression in a time zone, or every ``interval_s``
    (slots counted from 2000-01-01T00:00 in the time zone, so every replica agrees on them)."""

    cron: str | None = None
    interval_s: float | None = None
    timezone: str = "UTC"


@dataclass(frozen=True)
class ChatConfig:
    slack_webhook_url_file: str | None = None
    webhook_url_file: str | None = None
    digest: DigestConfig | None = None


@dataclass(frozen=True)
class ServerConfig:
    listen: str = "0.0.0.0:8080"  # webhooks and probes
    webhook_secret_file: str | None = None
    status_listen: str = "0.0.0.0:9090"  # /status, /metrics (and the probes)
    status_token_file: str | None = None  # a bearer token the status listener requires
    max_connections: int = 256  # on the webhook listener


@dataclass(frozen=True)
class PromotionConfig:
    fields: tuple[PromotableField, ...] = ()


@dataclass(frozen=True)
class PullRequestEnvironmentConfig:
    """An environment that gets a copy per pull request (``core.pr_env``), in a namespace of its own."""

    environment: str
    namespace: str = DEFAULT_NAMESPACE_PATTERN  # {number} and {env}
    ttl_s: float = DEFAULT_TTL_S  # since the last deploy
    max: int = DEFAULT_MAX  # PR environments of this environment at once
    url: str | None = None  # the status's link ({number}, {env}, {namespace}); default github.target_url
    quota: dict[str, Any] | None = None  # a ResourceQuota's spec
    limit_range: dict[str, Any] | None = None  # a LimitRange's spec


@dataclass(frozen=True)
class Config:
    repo: RepoConfig
    environments: tuple[EnvironmentConfig, ...]
    agent: AgentConfig = field(default_factory=AgentConfig)
    github: GitHubConfig | None = None
    chat: ChatConfig | None = None
    server: ServerConfig = field(default_factory=ServerConfig)
    source: str = ""  # the file it was read from, for messages
    promotion: PromotionConfig = field(default_factory=PromotionConfig)
    render: RenderLimits = DEFAULT_RENDER_LIMITS
    pull_request_environments: tuple[PullRequestEnvironmentConfig, ...] = ()
    #: ``health_rules``: the user's CEL health rules, compiled (``core.health_custom``)
    health_rules: tuple[CustomRule, ...] = ()

    def environment(self, name: str) -> EnvironmentConfig:
        for env in self.environments:
            if env.name == name:
                return env
        known = ", ".join(e.name for e in self.environments)
        raise ConfigError(f"{self.source}: no environment named {name!r} (known: {known})")

    def branch_of(self, env: EnvironmentConfig) -> str:
        return env.branch or self.repo.branch


def find_config_path(explicit: str | None) -> Path:
    """``--config``, else ``$GITOPS_AGENT_CONFIG``, else ``./gitops-agent.yaml``."""
    chosen = explicit or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_NAME
    return Path(chosen)


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found (pass --config PATH or set ${CONFIG_ENV_VAR})") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc
    return parse_config(text, source=str(path))


def parse_config(text: str, *, source: str) -> Config:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    return _Reader(source).config(data)


T = TypeVar("T")


class _Reader:
    """Walks the parsed YAML with the dotted path of every key, for precise error messages.
    Over 15 methods on purpose: one per kind of value, one per section, all naming ``source``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}: {message}")

    def mapping(
        self, value: Any, where: str, allowed: Collection[str], required: Collection[str] = ()
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {_type_name(value)}")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise self.fail(where, f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
        missing = sorted(set(required) - set(value))
        if missing:
            raise self.fail(where, f"missing required key {missing[0]!r}")
        return value

    def string(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(where, f"expected a non-empty string, got {_type_name(value)}")
        return value

    def opt(self, data: Mapping[str, Any], key: str, where: str, read: Callable[[Any, str], T]) -> T | None:
        return None if data.get(key) is None else read(data[key], f"{where}.{key}")

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true or false, got {_type_name(value)}")
        return value

    def choice(self, value: Any, where: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(where, f"expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    def duration(self, value: Any, where: str) -> float:
        """``90``, ``90s``, ``5m``, ``1h30m`` -> seconds."""
        if isinstance(value, bool):
            raise self.fail(where, "expected a duration such as 60s, 5m or 1h")
        if isinstance(value, int | float):
            seconds = float(value)
        else:
            match = _DURATION_RE.match(str(value).strip())
            if not match or not any(match.groups()):
                raise self.fail(where, f"expected a duration such as 60s, 5m or 1h, got {value!r}")
            h, m, s = (int(g or 0) for g in match.groups())
            seconds = float(h * 3600 + m * 60 + s)
        if seconds <= 0:
            raise self.fail(where, "expected a positive duration")
        return seconds

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list of strings, got {_type_name(value)}")
        return tuple(self.string(v, f"{where}[{i}]") for i, v in enumerate(value))

    def items(self, value: Any, where: str) -> list[tuple[Any, str]]:
        """The items of a list, each with its own dotted path (``where[i]``)."""
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list, got {_type_name(value)}")
        return [(item, f"{where}[{i}]") for i, item in enumerate(value)]

    def pointers(self, value: Any, where: str) -> tuple[str, ...]:
        paths = self.strings(value, where)
        for i, p in enumerate(paths):
            if not p.startswith("/"):
                raise self.fail(f"{where}[{i}]", f"expected a JSON pointer starting with '/', got {p!r}")
        return paths

    # --- sections -------------------------------------------------------------------------

    def config(self, data: Any) -> Config:
        keys = {"repo", "environments", "agent", "github", "chat", "server", "promotion", "render",
                "pull_request_environments", "health_rules"}  # fmt: skip
        top = self.mapping(data, "top level", keys, {"repo", "environments"})
        envs = top["environments"]
        if not isinstance(envs, list) or not envs:
            raise self.fail("environments", "expected a non-empty list of environments")
        render = self.render(top.get("render") or {}, "render", DEFAULT_RENDER_LIMITS)
        environments = tuple(self.environment(e, f"environments[{i}]", render) for i, e in enumerate(envs))
        seen: set[str] = set()
        agent = self.agent(top.get("agent") or {})
        for i, env in enumerate(environments):
            if env.name in seen:
                raise self.fail(f"environments[{i}].name", f"duplicate environment name {env.name!r}")
            if env.namespace == agent.namespace:
                why = f"{env.namespace!r} is the agent's own namespace (agent.namespace); no environment writes there"
                raise self.fail(f"environments[{i}].namespace", why)
            seen.add(env.name)
        return Config(
            repo=self.repo(top["repo"]),
            environments=environments,
            agent=agent,
            github=self.opt(top, "github", "", lambda v, w: self.github(v)),
            chat=self.opt(top, "chat", "", lambda v, w: self.chat(v)),
            server=self.server(top.get("server") or {}),
            source=self.source,
            promotion=self.promotion(top.get("promotion") or {}),
            render=render,
            pull_request_environments=self.pr_environments(top.get("pull_request_environments") or [], environments),
            health_rules=self.health_rules(top.get("health_rules") or []),
        )

    def health_rules(self, value: Any) -> tuple[CustomRule, ...]:
        """``health_rules``: per api_version/kind, CEL for current (required), in_progress, failed
        and message; compiled here, so a bad expression stops the load naming its rule."""
        rules: list[CustomRule] = []
        keys = ("api_version", "kind", "current", "in_progress", "failed", "message")
        for item, w in self.items(value, "health_rules"):
            data = self.mapping(item, w, keys, ("api_version", "kind", "current"))
            api_version, kind = (
                self.string(data["api_version"], f"{w}.api_version"),
                self.string(data["kind"], f"{w}.kind"),
            )
            if any((r.group, r.kind) == (api_group(api_version), kind) for r in rules):
                raise self.fail(w, f"a second rule for {api_version} {kind}")
            exprs = {k: self.opt(data, k, w, self.string) for k in keys[2:]}
            try:
                rules.append(compile_rule(f"{w} ({api_version} {kind})", api_version, kind, exprs))
            except RuleError as exc:
                raise ConfigError(f"{self.source}: {exc}") from None
        return tuple(rules)

    def pr_environments(
        self, value: Any, environments: tuple[EnvironmentConfig, ...]
    ) -> tuple[PullRequestEnvironmentConfig, ...]:
        """``pull_request_environments``: which environments get one per PR, and how."""
        known = {e.name for e in environments}
        out: list[PullRequestEnvironmentConfig] = []
        for item, w in self.items(value, "pull_request_environments"):
            keys = {"environment", "namespace", "ttl", "max", "url", "quota", "limit_range"}
            d = self.mapping(item, w, keys, {"environment"})
            env = self.string(d["environment"], f"{w}.environment")
            if env not in known:
                raise self.fail(f"{w}.environment", f"no environment named {env!r} (known: {', '.join(sorted(known))})")
            if any(o.environment == env for o in out):
                raise self.fail(f"{w}.environment", f"{env!r} is listed twice")
            pattern = self.string(d.get("namespace", DEFAULT_NAMESPACE_PATTERN), f"{w}.namespace")
            if problem := pattern_problem(pattern, env):
                raise self.fail(f"{w}.namespace", problem)
            cap = d.get("max", DEFAULT_MAX)
            if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
                raise self.fail(f"{w}.max", f"expected a positive whole number, got {cap!r}")
            out.append(
                PullRequestEnvironmentConfig(
                    environment=env, namespace=pattern, max=cap,
                    ttl_s=self.duration(d.get("ttl", "72h"), f"{w}.ttl"),
                    url=self.opt(d, "url", w, self.string),
                    quota=self.opt(d, "quota", w, lambda v, at: self.spec(v, at, {"hard", "scopes", "scopeSelector"})),
                    limit_range=self.opt(d, "limit_range", w, lambda v, at: self.spec(v, at, {"limits"})),
                )
            )  # fmt: skip
        for i, e in enumerate(environments):
            if out and looks_derived(e.name):
                why = f"{e.name!r} is how PR environments are named (pr-<number>-<env>); choose another name"
                raise self.fail(f"environments[{i}].name", why)
        return tuple(out)

    def spec(self, value: Any, where: str, keys: set[str]) -> dict[str, Any]:
        """A ResourceQuota's spec (``hard`` …) or a LimitRange's (``limits``); the API server checks the rest."""
        return dict(self.mapping(value, where, keys, {min(keys)}))

    def repo(self, data: Any) -> RepoConfig:
        keys = {"url", "branch", "poll_interval", "token_file", "token_env", "ssh_key_file", "cache_dir"}
        d = self.mapping(data, "repo", keys, {"url"})
        return RepoConfig(
            url=self.string(d["url"], "repo.url"),
            branch=self.string(d.get("branch", "main"), "repo.branch"),
            poll_interval_s=self.duration(d.get("poll_interval", 60), "repo.poll_interval"),
            token_file=self.opt(d, "token_file", "repo", self.string),
            token_env=self.opt(d, "token_env", "repo", self.string),
            ssh_key_file=self.opt(d, "ssh_key_file", "repo", self.string),
            cache_dir=self.opt(d, "cache_dir", "repo", self.string),
        )

    def environment(self, data: Any, where: str, render: RenderLimits = DEFAULT_RENDER_LIMITS) -> EnvironmentConfig:
        keys = {
            "name", "path", "namespace", "policy", "branch", "context", "create_namespace", "prune",
            "allow_empty", "prune_propagation", "health_timeout", "interval", "expected_managers", "ignore",
            "scope", "service_account", "prune_allow", "render", "helm",
        }  # fmt: skip
        d = self.mapping(data, where, keys, {"name", "path", "namespace"})
        name = self.string(d["name"], f"{where}.name")
        if not _NAME_RE.match(name):
            raise self.fail(f"{where}.name", f"{name!r} is not a valid name (lowercase letters, digits, '-')")
        managers = DEFAULT_EXPECTED_MANAGERS
        if "expected_managers" in d:
            managers = self.expected_managers(d["expected_managers"], f"{where}.expected_managers")
        return EnvironmentConfig(
            name=name,
            path=self.string(d["path"], f"{where}.path"),
            namespace=self.string(d["namespace"], f"{where}.namespace"),
            policy=self.choice(d.get("policy", "report"), f"{where}.policy", POLICIES),
            branch=self.opt(d, "branch", where, self.string),
            context=self.opt(d, "context", where, self.string),
            create_namespace=self.boolean(d.get("create_namespace", True), f"{where}.create_namespace"),
            prune=self.boolean(d.get("prune", True), f"{where}.prune"),
            allow_empty=self.boolean(d.get("allow_empty", False), f"{where}.allow_empty"),
            prune_propagation=self.choice(
                d.get("prune_propagation", "background"), f"{where}.prune_propagation", PROPAGATIONS
            ),
            health_timeout_s=self.opt(d, "health_timeout", where, self.duration),
            interval_s=self.opt(d, "interval", where, self.duration),
            expected_managers=managers,
            ignore=self.ignore_rules(d.get("ignore", []), f"{where}.ignore"),
            scope=self.scope(d["scope"], f"{where}.scope") if "scope" in d else None,
            service_account=self.opt(d, "service_account", where, self.string),
            prune_allow=self.strings(d.get("prune_allow", []), f"{where}.prune_allow"),
            render=self.render(d.get("render") or {}, f"{where}.render", render),
            helm=self.opt(d, "helm", where, self.helm),
        )

    def helm(self, value: Any, where: str) -> HelmSpec:
        """``helm:``: release, chart (repo, name, version: pinned), values files, inline values."""
        d = self.mapping(value, where, {"release", "chart", "values", "values_inline"})
        release = self.opt(d, "release", where, self.string)
        if release is not None and (problem := release_problem(release)):
            raise self.fail(f"{where}.release", problem)
        values = self.strings(d.get("values", []), f"{where}.values")
        for i, path in enumerate(values):
            if problem := values_path_problem(path):
                raise self.fail(f"{where}.values[{i}]", problem)
        inline = d.get("values_inline")
        if inline is not None and not isinstance(inline, dict):
            raise self.fail(f"{where}.values_inline", f"expected a mapping of values, got {_type_name(inline)}")
        text = yaml.safe_dump(inline, sort_keys=False) if inline else ""
        return HelmSpec(release, self.opt(d, "chart", where, self.chart), values, text)

    def chart(self, value: Any, where: str) -> ChartSource:
        d = self.mapping(value, where, {"repo", "name", "version"}, {"repo", "name"})
        if "version" not in d:
            raise self.fail(
                f"{where}.version",
                "missing: pin the chart's version (e.g. 1.2.3), so a new release never deploys unasked",
            )
        repo = self.string(d["repo"], f"{where}.repo")
        version = self.string(str(d["version"]), f"{where}.version")
        for key, problem in (("repo", repo_problem(repo)), ("version", version_problem(version))):
            if problem:
                raise self.fail(f"{where}.{key}", problem)
        return ChartSource(repo, self.string(d["name"], f"{where}.name"), version)

    def render(self, value: Any, where: str, base: RenderLimits) -> RenderLimits:
        """``render:`` (top level, or an environment's over it): remote prefixes, time, output."""
        d = self.mapping(value, where, RENDER_KEYS)
        allow = base.allow_remote
        if "allow_remote" in d:
            allow = self.strings(d["allow_remote"], f"{where}.allow_remote")
            for i, prefix in enumerate(allow):
                if problem := prefix_problem(prefix):
                    raise self.fail(f"{where}.allow_remote[{i}]", problem)
        return RenderLimits(
            allow_remote=allow,
            timeout_s=self.duration(d["timeout"], f"{where}.timeout") if "timeout" in d else base.timeout_s,
            max_output_bytes=self.size(d["max_output"], f"{where}.max_output")
            if "max_output" in d
            else base.max_output_bytes,
        )

    def size(self, value: Any, where: str) -> int:
        """``8388608``, ``512Ki``, ``8Mi``, ``1GiB`` -> bytes (more than 0)."""
        match = None if isinstance(value, bool) else _SIZE_RE.match(str(value).strip())
        if match is None or int(match.group(1)) <= 0:
            raise self.fail(where, f"expected a size such as 8Mi, 512Ki or a number of bytes, got {value!r}")
        return int(match.group(1)) * _SIZE_UNITS[match.group(2)]

    def scope(self, value: Any, where: str) -> Scope:
        d = self.mapping(value, where, {"namespaces", "cluster_kinds", "deny_kinds"}, {"namespaces"})
        namespaces = self.strings(d["namespaces"], f"{where}.namespaces")
        if not namespaces:
            raise self.fail(f"{where}.namespaces", "list at least one namespace (glob), e.g. the environment's own")
        return Scope(
            namespaces=namespaces,
            cluster_kinds=self.strings(d.get("cluster_kinds", []), f"{where}.cluster_kinds"),
            deny_kinds=self.strings(d.get("deny_kinds", []), f"{where}.deny_kinds"),
        )

    def expected_managers(self, value: Any, where: str) -> tuple[ExpectedManager, ...]:
        out = []
        for item, w in self.items(value, where):
            if isinstance(item, str):
                out.append(ExpectedManager(self.string(item, w)))
                continue
            d = self.mapping(item, w, {"manager", "paths", "kinds"}, {"manager"})
            manager = self.string(d["manager"], f"{w}.manager")
            paths = self.pointers(d.get("paths", []), f"{w}.paths")
            out.append(ExpectedManager(manager, paths, kinds=self.strings(d.get("kinds", []), f"{w}.kinds")))
        return tuple(out)

    def ignore_rules(self, value: Any, where: str) -> tuple[IgnoreRule, ...]:
        out = []
        for item, w in self.items(value, where):
            d = self.mapping(item, w, {"kind", "group", "name", "namespace", "paths"}, {"kind", "paths"})
            out.append(
                IgnoreRule(
                    kind=self.string(d["kind"], f"{w}.kind"),
                    paths=self.pointers(d["paths"], f"{w}.paths"),
                    group=self.opt(d, "group", w, lambda v, _w: str(v)),
                    name=self.opt(d, "name", w, self.string),
                    namespace=self.opt(d, "namespace", w, self.string),
                )
            )
        return tuple(out)

    def agent(self, data: Any) -> AgentConfig:
        d = self.mapping(data, "agent", {"namespace", "field_manager", "kustomize", "helm", "chart_cache"})
        return AgentConfig(
            namespace=self.string(d.get("namespace", "gitops-agent"), "agent.namespace"),
            field_manager=self.string(d.get("field_manager", "gitops-agent"), "agent.field_manager"),
            kustomize=self.opt(d, "kustomize", "agent", self.string),
            helm=self.opt(d, "helm", "agent", self.string),
            chart_cache=self.opt(d, "chart_cache", "agent", self.string),
        )

    def github(self, data: Any) -> GitHubConfig:
        keys = {"api_url", "repository", "token_file", "app_id", "installation_id", "private_key_file", "target_url"}
        d = self.mapping(data, "github", keys, {"repository"})
        repository = self.string(d["repository"], "github.repository")
        if repository.count("/") != 1:
            raise self.fail("github.repository", f"expected owner/name, got {repository!r}")
        cfg = GitHubConfig(
            repository=repository,
            api_url=self.string(d.get("api_url", "https://api.github.com"), "github.api_url").rstrip("/"),
            token_file=self.opt(d, "token_file", "github", self.string),
            app_id=self.opt(d, "app_id", "github", lambda v, w: self.string(str(v), w)),
            installation_id=self.opt(d, "installation_id", "github", lambda v, w: self.string(str(v), w)),
            private_key_file=self.opt(d, "private_key_file", "github", self.string),
            target_url=self.opt(d, "target_url", "github", self.string),
        )
        app = (cfg.app_id, cfg.installation_id, cfg.private_key_file)
        if cfg.token_file is None and not all(app):
            raise self.fail("github", "set token_file, or app_id + installation_id + private_key_file")
        return cfg

    def chat(self, data: Any) -> ChatConfig:
        d = self.mapping(data, "chat", {"slack_webhook_url_file", "webhook_url_file", "digest"})
        return ChatConfig(
            slack_webhook_url_file=self.opt(d, "slack_webhook_url_file", "chat", self.string),
            webhook_url_file=self.opt(d, "webhook_url_file", "chat", self.string),
            digest=self.opt(d, "digest", "chat", self.digest),
        )

    def digest(self, data: Any, where: str) -> DigestConfig:
        d = self.mapping(data, where, {"cron", "interval", "timezone"})
        if ("cron" in d) == ("interval" in d):
            raise self.fail(where, 'set exactly one of cron (e.g. "0 9 * * 1-5") and interval (e.g. 24h)')
        interval = self.opt(d, "interval", where, self.duration)
        if interval is not None and interval < MIN_DIGEST_INTERVAL_S:
            raise self.fail(f"{where}.interval", "expected at least 1m: a digest more often is a flood")
        cfg = DigestConfig(
            cron=self.opt(d, "cron", where, self.string),
            interval_s=interval,
            timezone=self.string(d.get("timezone", "UTC"), f"{where}.timezone"),
        )
        try:
            ZoneInfo(cfg.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail(
                f"{where}.timezone", f"unknown time zone {cfg.timezone!r} (e.g. UTC, Europe/Berlin)"
            ) from None
        try:
            digest_trigger(cfg)
        except ValueError as exc:
            why = f"not a cron expression (minute hour day-of-month month day-of-week): {exc}"
            raise self.fail(f"{where}.cron", why) from None
        return cfg

    def promotion(self, data: Any) -> PromotionConfig:
        d = self.mapping(data, "promotion", {"fields"})
        out = []
        for item, w in self.items(d.get("fields", []), "promotion.fields"):
            f = self.mapping(item, w, {"kind", "path"}, {"kind", "path"})
            path = self.string(f["path"], f"{w}.path")
            if not path.startswith("/"):
                raise self.fail(f"{w}.path", f"expected a JSON pointer starting with '/', got {path!r}")
            out.append(PromotableField(self.string(f["kind"], f"{w}.kind"), path))
        return PromotionConfig(tuple(out))

    def server(self, data: Any) -> ServerConfig:
        keys = {"listen", "webhook_secret_file", "status_listen", "status_token_file", "max_connections"}
        d = self.mapping(data, "server", keys)
        connections = d.get("max_connections", ServerConfig.max_connections)
        if isinstance(connections, bool) or not isinstance(connections, int) or connections < 1:
            raise self.fail("server.max_connections", f"expected a positive whole number, got {connections!r}")
        return ServerConfig(
            listen=self.string(d.get("listen", "0.0.0.0:8080"), "server.listen"),
            webhook_secret_file=self.opt(d, "webhook_secret_file", "server", self.string),
            status_listen=self.string(d.get("status_listen", "0.0.0.0:9090"), "server.status_listen"),
            status_token_file=self.opt(d, "status_token_file", "server", self.string),
            max_connections=connections,
        )


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), type(value).__name__)


def digest_trigger(digest: DigestConfig) -> BaseTrigger:
    """The APScheduler trigger whose fire times are the digest's slots; ValueError when the cron
    expression is not one."""
    zone = ZoneInfo(digest.timezone)
    if digest.cron is not None:
        fields = digest.cron.split()
        if len(fields) != 5:
            raise ValueError(f"expected 5 fields, got {len(fields)}")
        minute, hour, day, month, weekday = fields
        return CronTrigger(
            minute=minute, hour=hour, day=day, month=month, day_of_week=_cron_weekdays(weekday), timezone=zone
        )
    return IntervalTrigger(seconds=digest.interval_s or 0, start_date=datetime(2000, 1, 1, tzinfo=zone), timezone=zone)


_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _cron_weekdays(field: str) -> str:
    """Cron's day of week (0 and 7: Sunday; ``1-5``: Monday to Friday) as day names: APScheduler's
    own numbers start at Monday, so ``1-5`` given as is would run Tuesday to Saturday."""
    days: set[int] = set()
    for part in field.lower().split(","):
        span, _, step = part.partition("/")
        every = int(step) if step else 1
        if every < 1:
            raise ValueError(f"step {step!r} in the day of week")
        if span == "*":
            low, high = 0, 6
        elif "-" in span:
            first, last = span.split("-", 1)
            low, high = _cron_day(first), _cron_day(last)
        else:
            low = high = _cron_day(span)
            high = 6 if step else high
        if high < low:
            raise ValueError(f"day-of-week range {span!r} runs backwards")
        days.update(d % 7 for d in range(low, high + 1, every))
    return ",".join(_CRON_DAYS[d] for d in sorted(days))


def _cron_day(token: str) -> int:
    if token.isdigit() and int(token) <= 7:
        return int(token)
    if token[:3] in _CRON_DAYS:
        return _CRON_DAYS.index(token[:3])
    raise ValueError(f"{token!r} is not a day of week (0-7 or sun-sat)")


def read_secret_file(path: str | None, key: str, config: Config) -> str | None:
    """The content of a credential file named in the config (None when not set), stripped; errors
    name the key and the file, never the content."""
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{config.source}: {key}: cannot read {path}: {exc.strerror}") from None
    if not text:
        raise ConfigError(f"{config.source}: {key}: {path} is empty")
    return text
