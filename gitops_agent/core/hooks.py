"""Sync hooks, pure: which objects of a snapshot are hooks, in which phase, with which delete
policies and weight; and what a hook's run means.

Three dialects are understood, the first found wins (Argo CD also lets its own win over Helm's):

============================================  =============================================
annotation value                              treated as
============================================  =============================================
``gitops-agent.io/hook: pre-sync``            pre-sync hook
``gitops-agent.io/hook: post-sync``           post-sync hook
``argocd.argoproj.io/hook: PreSync``          pre-sync hook
``argocd.argoproj.io/hook: PostSync``         post-sync hook
``argocd.argoproj.io/hook: Sync``             an ordinary object (applied with the rest)
``argocd.argoproj.io/hook: Skip``             not applied
``argocd.argoproj.io/hook: SyncFail``,        not applied (the agent runs no hook when a pass
``PostDelete``                                fails, or when an application is deleted)
``helm.sh/hook: pre-install, pre-upgrade``    pre-sync hook
``helm.sh/hook: post-install, post-upgrade``  post-sync hook
``helm.sh/hook: test, test-success, …``       not applied (tests are not part of a sync)
``helm.sh/hook: pre-delete, post-delete,      not applied (the agent deletes no release and
pre-rollback, post-rollback, crd-install``    rolls back by applying an older commit)
============================================  =============================================

Delete policies (``gitops-agent.io/hook-delete-policy``, ``argocd.argoproj.io/hook-delete-policy``,
``helm.sh/hook-delete-policy``; comma-separated): before-hook-creation (the default, as in Argo CD
and Helm: a Job's template is immutable, so a hook runs again as a new object), hook-succeeded,
hook-failed. Weight (``gitops-agent.io/hook-weight``, ``argocd.argoproj.io/sync-wave``,
``helm.sh/hook-weight``; an integer, default 0) orders hooks within a phase, lowest first.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from gitops_agent.errors import ValidationError
from gitops_agent.model import Health, HealthStatus, KubeObject, ObjectHealth, ObjectKey

#: written on every hook the agent applies, whatever dialect named it: a live object carrying it
#: is a hook (never drift, never pruned)
HOOK_ANNOTATION = "gitops-agent.io/hook"


class Phase(enum.StrEnum):
    PRE_SYNC = "pre-sync"
    POST_SYNC = "post-sync"


class DeletePolicy(enum.StrEnum):
    BEFORE_HOOK_CREATION = "before-hook-creation"
    HOOK_SUCCEEDED = "hook-succeeded"
    HOOK_FAILED = "hook-failed"


@dataclass(frozen=True)
class Hook:
    phase: Phase
    delete_policies: frozenset[DeletePolicy] = frozenset({DeletePolicy.BEFORE_HOOK_CREATION})
    weight: int = 0

    @property
    def recreated(self) -> bool:
        return DeletePolicy.BEFORE_HOOK_CREATION in self.delete_policies


@dataclass(frozen=True)
class Classified:
    """An object as the annotations say: ``hook`` when it is one, ``skipped`` (why) when it is
    not applied at all, neither for an ordinary object."""

    hook: Hook | None = None
    skipped: str = ""


@dataclass(frozen=True)
class _Dialect:
    hook: str
    delete_policy: str
    weight: str
    #: value (lower case) -> phase, or None: known, not applied (the text says why)
    values: Mapping[str, Phase | str | None]
    policies: Mapping[str, DeletePolicy]


_POLICIES = {p.value: p for p in DeletePolicy}
_CAMEL_POLICIES = {"hooksucceeded": DeletePolicy.HOOK_SUCCEEDED, "hookfailed": DeletePolicy.HOOK_FAILED}
_CAMEL_POLICIES["beforehookcreation"] = DeletePolicy.BEFORE_HOOK_CREATION
_NOT_ON_DELETE = "the agent deletes no release"
_NOT_ON_ROLLBACK = "the agent rolls back by applying an older commit"
_TEST = "Helm test hooks are not part of a sync"

DIALECTS = (
    _Dialect(
        HOOK_ANNOTATION,
        "gitops-agent.io/hook-delete-policy",
        "gitops-agent.io/hook-weight",
        {"pre-sync": Phase.PRE_SYNC, "post-sync": Phase.POST_SYNC},
        _POLICIES,
    ),
    _Dialect(
        "argocd.argoproj.io/hook",
        "argocd.argoproj.io/hook-delete-policy",
        "argocd.argoproj.io/sync-wave",
        {
            "presync": Phase.PRE_SYNC,
            "postsync": Phase.POST_SYNC,
            "sync": None,
            "skip": "Skip: not applied",
            "syncfail": "SyncFail hooks are not run: a failed pass runs no hook",
            "postdelete": f"PostDelete hooks are not run: {_NOT_ON_DELETE}",
        },
        _CAMEL_POLICIES,
    ),
    _Dialect(
        "helm.sh/hook",
        "helm.sh/hook-delete-policy",
        "helm.sh/hook-weight",
        {
            "pre-install": Phase.PRE_SYNC,
            "pre-upgrade": Phase.PRE_SYNC,
            "post-install": Phase.POST_SYNC,
            "post-upgrade": Phase.POST_SYNC,
            "test": _TEST,
            "test-success": _TEST,
            "test-failure": _TEST,
            "pre-delete": _NOT_ON_DELETE,
            "post-delete": _NOT_ON_DELETE,
            "pre-rollback": _NOT_ON_ROLLBACK,
            "post-rollback": _NOT_ON_ROLLBACK,
            "crd-install": "crd-install is Helm 2's: put the CRD in the snapshot",
        },
        _POLICIES,
    ),
)


def classify(manifest: KubeObject, where: str = "") -> Classified:
    """What the object's hook annotations make of it. ValidationError (naming ``where``, the
    annotation and the value) for a value no dialect defines, a hook in two phases, a bad weight."""
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    for dialect in DIALECTS:
        if dialect.hook in annotations:
            return _classify(dialect, annotations, where)
    return Classified()


def _classify(d: _Dialect, annotations: Mapping[str, str], where: str) -> Classified:
    values = _tokens(annotations[d.hook])
    unknown = [v for v in values if v.lower() not in d.values]
    if unknown or not values:
        known = ", ".join(sorted(d.values))
        raise ValidationError(f"{where}: {d.hook}: {unknown[0] if unknown else '(empty)'!r} is not one of {known}")
    meanings = [d.values[v.lower()] for v in values]
    phases = {m for m in meanings if isinstance(m, Phase)}
    if len(phases) > 1:
        raise ValidationError(f"{where}: {d.hook}: a hook runs in one phase: split it into a pre- and a post-sync hook")
    if not phases:
        if None in meanings:  # Argo CD's Sync: an ordinary object
            return Classified()
        return Classified(skipped=f"{d.hook}: {', '.join(m for m in meanings if isinstance(m, str))}")
    return Classified(Hook(phases.pop(), _policies(d, annotations, where), _weight(d, annotations, where)))


def _tokens(text: str) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]


def _policies(d: _Dialect, annotations: Mapping[str, str], where: str) -> frozenset[DeletePolicy]:
    values = _tokens(annotations.get(d.delete_policy, ""))
    if not values:
        return frozenset({DeletePolicy.BEFORE_HOOK_CREATION})
    policies = set()
    for v in values:
        policy = d.policies.get(v.lower())
        if policy is None:
            raise ValidationError(f"{where}: {d.delete_policy}: {v!r} is not one of {', '.join(sorted(d.policies))}")
        policies.add(policy)
    return frozenset(policies)


def _weight(d: _Dialect, annotations: Mapping[str, str], where: str) -> int:
    text = str(annotations.get(d.weight, "0")).strip()
    if not re.fullmatch(r"[-+]?\d+", text):
        raise ValidationError(f"{where}: {d.weight}: {text!r} is not an integer")
    return int(text)


# --- a hook's run ----------------------------------------------------------------------------------


def is_hook(obj: KubeObject) -> bool:
    """A live object the agent applied as a hook."""
    return HOOK_ANNOTATION in ((obj.get("metadata") or {}).get("annotations") or {})


def in_phase(manifests: Iterable[KubeObject], phase: Phase) -> bool:
    """Does a snapshot hold hooks of ``phase``? (it was validated: no value is unknown)"""
    return any((c := classify(m).hook) is not None and c.phase is phase for m in manifests)


def run_order(hooks: Iterable[tuple[ObjectKey, Hook]]) -> list[list[ObjectKey]]:
    """Hooks in groups of equal weight, lowest first; a group runs side by side."""
    groups: dict[int, list[ObjectKey]] = {}
    for key, hook in sorted(hooks, key=lambda kh: (kh[1].weight, kh[0])):
        groups.setdefault(hook.weight, []).append(key)
    return [groups[w] for w in sorted(groups)]


def failure(phase: Phase, health: Health, objects: Sequence[ObjectHealth]) -> str:
    """Why a group of hooks did not succeed, naming the hook ("" when every one is Current)."""
    if health.status is HealthStatus.CURRENT:
        return ""
    for o in objects:
        if o.status is HealthStatus.FAILED:
            return f"{phase} hook {o.key} failed: {_explained(o)}"
    stuck = next((o for o in objects if o.status is not HealthStatus.CURRENT), None)
    named = f"{phase} hook {stuck.key}" if stuck else f"{phase} hooks"
    return f"{named} did not complete: {health.message}"


def _explained(o: ObjectHealth) -> str:
    """The Job's verdict first, then what its pods said: the follower explains a failed workload as
    "name: <pods> (<verdict>)" ("BackoffLimitExceeded: ... (0/1 succeeded, 1 failed, container c
    exited 1 (Error))")."""
    m = re.fullmatch(rf"{re.escape(o.key.name)}: (.*?) \((failed \(.*)\)", o.message, flags=re.DOTALL)
    return f"{_reason(m.group(2))} ({m.group(1)})" if m else _reason(o.message)


def _reason(message: str) -> str:
    """A Job's "failed (BackoffLimitExceeded): text" as "BackoffLimitExceeded: text"."""
    m = re.fullmatch(r"failed \(([^)]*)\)(.*)", message, flags=re.DOTALL)
    return f"{m.group(1)}{m.group(2)}" if m else message


def to_delete_after(hook: Hook, *, succeeded: bool) -> bool:
    """hook-succeeded / hook-failed: delete the hook once it ran (after its outcome was read)."""
    wanted = DeletePolicy.HOOK_SUCCEEDED if succeeded else DeletePolicy.HOOK_FAILED
    return wanted in hook.delete_policies
