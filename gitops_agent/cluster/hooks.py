"""Running a phase's sync hooks (rules in ``core.hooks``): by weight, a group of equal weight side by
side — the previous run of each deleted first (before-hook-creation: only one the agent created for
this environment, and only the very object read), then applied, then followed until Current, Failed
or late; then deleted as its policy says (hook-succeeded, hook-failed). The first group that does not
succeed stops the phase: nothing after it is written.

Following is injected (``WaitForHooks``: the pass follows hooks as it follows a rollout), as is the
``guard`` (the environment's lock) called before each write."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from gitops_agent.cluster.api import ClusterApi
from gitops_agent.cluster.apply import Guard, unguarded
from gitops_agent.cluster.model import SyncOptions
from gitops_agent.core.hooks import Phase, failure, run_order, to_delete_after
from gitops_agent.core.prepare import PreparedObject
from gitops_agent.core.sync_rules import created_by_agent
from gitops_agent.errors import ClusterError, GitOpsError
from gitops_agent.model import Health, HealthStatus, ObjectHealth, ObjectKey

#: follow these objects until they are all Current, one is Failed, or time runs out
WaitForHooks = Callable[[Sequence[ObjectKey]], tuple[Health, tuple[ObjectHealth, ...]]]
#: a previous run being deleted: how long until its name is free again
GONE_TIMEOUT_S = 60.0
POLL_S = 0.2


class HookFailedError(ClusterError):
    """A hook failed, or did not complete in time: the pass stops, reported like a failed rollout."""

    reason = "HookFailed"


def run_hooks(
    api: ClusterApi,
    hooks: Sequence[PreparedObject],
    phase: Phase,
    o: SyncOptions,
    *,
    wait: WaitForHooks,
    guard: Guard = unguarded,
) -> tuple[ObjectKey, ...]:
    """Runs ``phase``'s hooks among ``hooks``; returns what ran. HookFailedError naming the hook
    when one failed, ClusterError when one could not be written."""
    by_key = {p.key: p for p in hooks if p.hook is not None and p.hook.phase is phase}
    ran: list[ObjectKey] = []
    for group in run_order((k, p.hook) for k, p in by_key.items() if p.hook is not None):
        guard()  # still the environment's one writer?
        for key in group:
            _write(api, by_key[key], o)
        health, objects = wait(group)
        ran.extend(group)
        why = failure(phase, health, objects)
        _delete_after(api, [by_key[k] for k in group], objects)
        if why:
            raise HookFailedError(why)
    return tuple(ran)


def _write(api: ClusterApi, p: PreparedObject, o: SyncOptions) -> None:
    try:
        if p.hook is not None and p.hook.recreated:
            _delete_previous(api, p, o)
        api.kube.apply(p.manifest, api.resource_for(p), field_manager=o.field_manager)
    except GitOpsError as exc:
        raise ClusterError(f"{p.hook.phase if p.hook else 'hook'} hook {p.key} could not be written: {exc}") from exc


def _delete_previous(api: ClusterApi, p: PreparedObject, o: SyncOptions) -> None:
    """before-hook-creation: the previous run goes, and its name is free, before the hook is created."""
    live = api.get(p.key)
    if live is None:
        return
    if not created_by_agent(live, o.environment):  # refused before any write; someone put it there since
        raise ClusterError(f"{p.key} exists and was not created by the agent for {o.environment}: not deleted")
    uid = str((live.get("metadata") or {}).get("uid") or "")
    info = api.resource(p.key.group, p.key.kind)
    api.kube.delete(info, p.key.namespace, p.key.name, propagation="Background", uid=uid)
    deadline = time.monotonic() + GONE_TIMEOUT_S
    while (now := api.get(p.key)) is not None and (now.get("metadata") or {}).get("uid") == uid:
        if time.monotonic() > deadline:
            raise ClusterError(f"its previous run was not gone {GONE_TIMEOUT_S:.0f}s after it was deleted")
        time.sleep(POLL_S)


def _delete_after(api: ClusterApi, group: Sequence[PreparedObject], objects: Sequence[ObjectHealth]) -> None:
    """hook-succeeded / hook-failed, once the outcome is read; a hook still running is left alone."""
    status = {o.key: o.status for o in objects}
    for p in group:
        done = status.get(p.key)
        if p.hook is None or done not in (HealthStatus.CURRENT, HealthStatus.FAILED):
            continue
        if to_delete_after(p.hook, succeeded=done is HealthStatus.CURRENT):
            info = api.resource(p.key.group, p.key.kind)
            api.kube.delete(info, p.key.namespace, p.key.name, propagation="Background")
