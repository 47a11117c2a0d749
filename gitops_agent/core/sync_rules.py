"""The pure rules of one sync: what must be refused before anything is written, and which objects
need no apply at all. The cluster verbs (``gitops_agent.cluster``) ask these; they decide nothing
on their own."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from gitops_agent.core.diff import covers
from gitops_agent.core.inventory import Inventory
from gitops_agent.core.prepare import ENV_LABEL, MANAGED_BY, MANAGED_BY_LABEL, MANIFEST_HASH_ANNOTATION, PreparedObject
from gitops_agent.errors import ValidationError
from gitops_agent.model import KubeObject, ObjectKey


def refuse_empty(
    environment: str, prepared: Iterable[PreparedObject], inventory: Inventory | None, *, allow_empty: bool
) -> None:
    """A snapshot that renders nothing would prune everything: refuse unless the environment says so."""
    managed = [p for p in prepared if p.inventoried]
    if not managed and inventory and inventory.keys and not allow_empty:
        raise ValidationError(
            f"environment {environment}: the snapshot renders zero objects; refusing to prune all "
            f"{len(inventory.keys)} objects it manages (set allow_empty: true on the environment if "
            "that is really what you want)"
        )


#: may this environment take over an object labelled for ``owner``? (yes when ``owner``'s own
#: snapshot no longer has it: the same commit moved it here, a hand-over)
TakeOver = Callable[[str, ObjectKey], bool]


def never(owner: str, key: ObjectKey) -> bool:
    return False


def refuse_foreign(
    environment: str,
    prepared: Iterable[PreparedObject],
    live: Mapping[ObjectKey, KubeObject],
    *,
    may_take_over: TakeOver = never,
) -> None:
    """Two environments must never manage one object: refuse one labelled for another environment,
    unless that environment gave it up (a hand-over)."""
    for p in prepared:
        owner = ((live.get(p.key) or {}).get("metadata") or {}).get("labels", {}).get(ENV_LABEL)
        if owner and owner != environment and not may_take_over(owner, p.key):
            raise ValidationError(
                f"{p.source}: {p.key} is already managed by environment {owner!r}; "
                "two environments must not manage the same object"
            )


def settled(
    p: PreparedObject, live: KubeObject | None, *, only: frozenset[ObjectKey] | None = None, force: bool = False
) -> bool:
    """Nothing to apply: outside the objects asked for, intent unchanged since the last apply
    (a commit is a snapshot: drift alone is not re-applied), or live already covers the manifest."""
    if live is None:
        return False
    if only is not None and p.key not in only:
        return True
    if _owner(live) != _owner(p.manifest):
        return False  # another environment's, or released: taking it over is a write
    if not force and only is None and p.manifest_hash and applied_hash(live) == p.manifest_hash:
        return True
    return covers(p.manifest, live)


def applied_hash(live: KubeObject) -> str | None:
    """The manifest hash the agent last applied to this live object."""
    found = ((live.get("metadata") or {}).get("annotations") or {}).get(MANIFEST_HASH_ANNOTATION)
    return str(found) if found is not None else None


def _owner(obj: KubeObject) -> str | None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    owner = labels.get(ENV_LABEL)
    return str(owner) if owner is not None else None


def waits_for_first_stage(p: PreparedObject, *, kind_served: bool, new_namespaces: set[str]) -> bool:
    """Can the server validate this object only after stage one (its Namespace or CRD) is applied?"""
    if p.first_stage:
        return False
    return not kind_served or p.key.namespace in new_namespaces


def new_namespaces(prepared: Iterable[PreparedObject], live: Mapping[ObjectKey, KubeObject]) -> set[str]:
    return {p.key.name for p in prepared if p.key.kind == "Namespace" and p.key not in live}


def created_by_agent(live: KubeObject | None, environment: str) -> bool:
    """Does this live object carry the labels the agent writes for ``environment``?"""
    labels = ((live or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(ENV_LABEL) == environment and labels.get(MANAGED_BY_LABEL) == MANAGED_BY


def refuse_foreign_hooks(
    environment: str, prepared: Iterable[PreparedObject], live: Mapping[ObjectKey, KubeObject]
) -> None:
    """A hook re-created before it runs (before-hook-creation) deletes the live object of its name:
    only one the agent created for this environment, never someone else's (refused before any write)."""
    for p in prepared:
        if p.hook is None or not p.hook.recreated or p.key not in live:
            continue
        if not created_by_agent(live[p.key], environment):
            raise ValidationError(
                f"{p.source}: {p.key}: a hook with delete policy before-hook-creation, and an object of that "
                f"name exists that the agent did not create for {environment}: it is not deleted (rename the hook, "
                "or delete the object)"
            )
