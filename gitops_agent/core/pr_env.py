"""Ephemeral pull-request environments, pure: names, labels, the namespace move, expiry, the cap,
what is swept and what the commit status says (Argo CD's ApplicationSet pull-request generator).

A PR environment is a configured environment (``dev``) rendered at a pull request's head and
applied into a namespace of its own (``pr-42-dev``), as an environment named ``pr-<number>-<env>``
whose scope is that namespace only. What lives in the cluster is the record: the namespace carries
the agent's labels (PR number, environment, expiry), so the set of live PR environments is read
from the cluster, never kept in memory, and a restarted agent loses none of them.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gitops_agent.core.prepare import MANAGED_BY, MANAGED_BY_LABEL
from gitops_agent.core.report import DESCRIPTION_LIMIT, cut
from gitops_agent.model import DesiredObject, KubeObject, ObjectKey, api_group

#: the status context on the pull request's head, per configured environment
STATUS_CONTEXT = "gitops-agent/pr-env/{env}"
#: pull_request actions that (re)deploy the head: a new PR, a reopened one, a push to it
DEPLOY_ACTIONS = frozenset({"opened", "reopened", "synchronize"})
DEFAULT_NAMESPACE_PATTERN = "pr-{number}-{env}"
DEFAULT_TTL_S = 72 * 3600.0
DEFAULT_MAX = 10

# The namespace's labels: what the agent reads back to find its PR environments.
PR_ENV_LABEL = "gitops-agent.io/pr-environment"  # the derived environment's name (pr-42-dev)
PR_OF_LABEL = "gitops-agent.io/pr-of"  # the configured environment (dev)
PR_NUMBER_LABEL = "gitops-agent.io/pr-number"
PR_EXPIRES_LABEL = "gitops-agent.io/pr-expires"  # Unix seconds: label values cannot hold a timestamp's ':'
#: which agent (by its namespace) made it: two agents on one cluster never sweep each other's
AGENT_LABEL = "gitops-agent.io/agent-namespace"
PR_HEAD_ANNOTATION = "gitops-agent.io/pr-head"
PR_EXPIRES_AT_ANNOTATION = "gitops-agent.io/pr-expires-at"

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_PLACEHOLDERS = frozenset({"number", "env"})
#: the longest PR number the namespace pattern is checked with (GitHub's numbers are int32)
LONGEST_NUMBER = 2147483647
#: a configured environment may not be named like a PR environment: their state would collide
_DERIVED_NAME = re.compile(r"pr-[0-9]+-.+")


def environment_name(number: int, env: str) -> str:
    """The derived environment's name: its ledger, inventory and lock are kept under it."""
    return f"pr-{number}-{env}"


def looks_derived(name: str) -> bool:
    return bool(_DERIVED_NAME.fullmatch(name))


def namespace_name(pattern: str, number: int, env: str) -> str:
    return pattern.format(number=number, env=env)


def pattern_problem(pattern: str, env: str) -> str:
    """Why ``pattern`` cannot name PR namespaces of ``env`` ("" when it can): only ``{number}`` and
    ``{env}``, ``{number}`` required (else PRs share a namespace), and a DNS label of at most 63
    characters for any PR number."""
    try:
        fields = [name for _, name, spec, conv in string.Formatter().parse(pattern) if name is not None]
    except ValueError as exc:
        return f"not a pattern: {exc}"
    unknown = sorted(set(fields) - _PLACEHOLDERS)
    if unknown:
        return f"unknown placeholder {{{unknown[0]}}} (use {{number}} and {{env}})"
    if "number" not in fields:
        return "must contain {number}: each pull request needs a namespace of its own"
    longest = namespace_name(pattern, LONGEST_NUMBER, env)
    if len(longest) > 63:
        return f"{longest!r} (the longest PR number) is longer than 63 characters, a namespace's limit"
    if not _DNS_LABEL.fullmatch(longest):
        return f"{longest!r} is not a DNS label (lowercase letters, digits and '-', starting and ending alphanumeric)"
    return ""


# --- the namespace ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrNamespace:
    """What the agent asks of a PR environment's namespace."""

    name: str
    environment: str  # the derived environment (pr-42-dev)
    base: str  # the configured one (dev)
    number: int
    head: str
    expires: int  # Unix seconds


def expiry(now: float, ttl_s: float) -> int:
    """Every deploy renews it: a PR nobody pushed to for ``ttl`` goes, an active one stays."""
    return int(now + ttl_s)


def selector(agent_namespace: str, **labels: str) -> str:
    """The label selector of this agent's PR namespaces (narrowed by ``labels``)."""
    pairs = {MANAGED_BY_LABEL: MANAGED_BY, AGENT_LABEL: agent_namespace, **labels}
    return ",".join([f"{k}={v}" for k, v in pairs.items()] + [PR_ENV_LABEL])


def namespace_manifest(ns: PrNamespace, agent_namespace: str) -> KubeObject:
    labels = {
        MANAGED_BY_LABEL: MANAGED_BY,
        AGENT_LABEL: agent_namespace,
        PR_ENV_LABEL: ns.environment,
        PR_OF_LABEL: ns.base,
        PR_NUMBER_LABEL: str(ns.number),
        PR_EXPIRES_LABEL: str(ns.expires),
    }
    annotations = {PR_HEAD_ANNOTATION: ns.head, PR_EXPIRES_AT_ANNOTATION: timestamp(ns.expires)}
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": ns.name, "labels": labels, "annotations": annotations},
    }


def guard_manifests(
    namespace: str, quota: Mapping[str, Any] | None, limits: Mapping[str, Any] | None
) -> list[KubeObject]:
    """The optional ResourceQuota and LimitRange, named after the agent, in the PR's namespace."""
    meta = {"name": "gitops-agent-pr", "namespace": namespace, "labels": {MANAGED_BY_LABEL: MANAGED_BY}}
    out: list[KubeObject] = []
    if quota:
        out.append({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": meta, "spec": dict(quota)})
    if limits:
        out.append({"apiVersion": "v1", "kind": "LimitRange", "metadata": meta, "spec": dict(limits)})
    return out


@dataclass(frozen=True)
class LivePrEnvironment:
    """A PR environment as its namespace says it is."""

    namespace: str
    environment: str
    base: str
    number: int
    head: str
    expires: int
    uid: str = ""


def parse_namespace(obj: Mapping[str, Any]) -> LivePrEnvironment | None:
    """A PR environment from its namespace; None when the labels are not the agent's or one is being
    deleted already (it counts no longer)."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else None
    if meta is None or meta.get("deletionTimestamp"):
        return None
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    number, expires = str(labels.get(PR_NUMBER_LABEL, "")), str(labels.get(PR_EXPIRES_LABEL, ""))
    if labels.get(MANAGED_BY_LABEL) != MANAGED_BY or not number.isdigit() or not expires.isdigit():
        return None
    return LivePrEnvironment(
        namespace=str(meta.get("name", "")),
        environment=str(labels.get(PR_ENV_LABEL, "")),
        base=str(labels.get(PR_OF_LABEL, "")),
        number=int(number),
        head=str(annotations.get(PR_HEAD_ANNOTATION, "")),
        expires=int(expires),
        uid=str(meta.get("uid", "")),
    )


def timestamp(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the move --------------------------------------------------------------------------------------

#: (group, kind) -> namespaced? None when the API server does not serve the kind
ScopeLookup = Callable[[str, str], bool | None]


@dataclass(frozen=True)
class Moved:
    """A snapshot moved into a PR namespace: what is applied, and what is left out and why."""

    objects: tuple[DesiredObject, ...]
    left_out: tuple[str, ...] = ()  # "ClusterRole/reader (cluster-scoped)"


def move_into(objects: Iterable[DesiredObject], namespace: str, scope_of: ScopeLookup) -> Moved:
    """Every namespaced object into ``namespace`` (whatever namespace it named); cluster-scoped
    objects, and kinds the cluster does not serve, are left out: a PR environment shares the
    cluster's cluster-scoped objects with the real environments and may change none of them."""
    kept: list[DesiredObject] = []
    left: list[str] = []
    for obj in objects:
        namespaced = scope_of(api_group(str(obj.manifest.get("apiVersion", ""))), obj.key.kind)
        if not namespaced:
            why = "cluster-scoped" if namespaced is False else "kind not served by the cluster"
            left.append(f"{ObjectKey(obj.key.group, obj.key.kind, '', obj.key.name)} ({why})")
            continue
        manifest = {**obj.manifest, "metadata": {**(obj.manifest.get("metadata") or {}), "namespace": namespace}}
        kept.append(DesiredObject(ObjectKey.of(manifest), manifest, obj.source))
    return Moved(tuple(kept), tuple(left))


# --- decisions -------------------------------------------------------------------------------------


def over_cap(live: Sequence[LivePrEnvironment], base: str, number: int, cap: int) -> str:
    """Why PR ``number`` gets no environment of ``base`` ("" when it may): one it has already is
    updated; a new one only while fewer than ``cap`` exist."""
    mine = [e for e in live if e.base == base]
    if any(e.number == number for e in mine) or len(mine) < cap:
        return ""
    return (
        f"not deployed: {len(mine)} PR environments of {base} exist, the most allowed (max {cap}); close one and push"
    )


def expired(env: LivePrEnvironment, now: float) -> bool:
    return env.expires <= now


def pull_is_open(pull: Any) -> bool | None:
    """GitHub's answer to ``GET pulls/{number}``: is it open? None when it does not say."""
    state = pull.get("state") if isinstance(pull, Mapping) else None
    return state == "open" if state in ("open", "closed") else None


# --- the commit status -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How a deploy ended, for the status: ``health`` is a kstatus word or "" (not followed)."""

    environment: str
    namespace: str
    error: str = ""
    changes: str = ""
    health: str = ""
    health_message: str = ""
    left_out: tuple[str, ...] = ()


def status_of(o: Outcome) -> tuple[str, str]:
    """(GitHub state, description within 140 characters)."""
    left = f"; {len(o.left_out)} cluster-scoped left out" if o.left_out else ""
    if o.error:
        return "error", cut(f"{o.namespace}: failed: {o.error}", DESCRIPTION_LIMIT)
    if o.health == "Current":
        return "success", cut(f"{o.namespace}: deployed, healthy ({o.changes or 'no change'}){left}", DESCRIPTION_LIMIT)
    if o.health == "Failed":
        return "failure", cut(f"{o.namespace}: rollout failed: {o.health_message}{left}", DESCRIPTION_LIMIT)
    waiting = f": {o.health_message}" if o.health_message else ""
    return "pending", cut(f"{o.namespace}: deployed, not healthy yet{waiting}{left}", DESCRIPTION_LIMIT)


def deploying(namespace: str) -> str:
    return cut(f"deploying the head into {namespace}", DESCRIPTION_LIMIT)
