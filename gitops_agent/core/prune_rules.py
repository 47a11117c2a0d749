"""What pruning does to an object a commit removed: delete it, release it (take the agent's labels
off and leave it in place), or keep it. Pure: the live object and the inventory's word on it come in.

Only what the agent created is deleted. An object it adopted (one that existed before the agent
first applied it: a hand-made Namespace given a label through git) is released, unless annotated
``gitops-agent.io/prune: allowed``. Namespaces, PersistentVolumeClaims and CRDs are released too,
unless the environment lists their kind in ``prune_allow``: deleting them deletes what they hold
(every object in the namespace, the volume's data, every custom resource of the kind, cluster-wide).
An object another environment's snapshot now holds is handed over to it (released), never deleted
and recreated.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from gitops_agent.core.prepare import ENV_LABEL, MANAGED_BY_LABEL, MANIFEST_HASH_ANNOTATION, PRUNE_ANNOTATION
from gitops_agent.model import KubeObject, ObjectKey

#: deleting one of these deletes what it holds
HOLDING_KINDS = frozenset(
    {("", "Namespace"), ("", "PersistentVolumeClaim"), ("apiextensions.k8s.io", "CustomResourceDefinition")}
)


class PruneStep(enum.Enum):
    DELETE = "delete"
    RELEASE = "release"
    KEEP = "keep"


@dataclass(frozen=True)
class PruneDecision:
    step: PruneStep
    reason: str = ""
    #: the UID the delete is conditional on: an object recreated by someone since is never deleted
    uid: str = ""


def decide_prune(
    key: ObjectKey,
    live: KubeObject | None,
    environment: str,
    *,
    adopted: bool = False,
    allow_kinds: Iterable[str] = (),
    claimed_by: str | None = None,
) -> PruneDecision:
    if live is None:
        return PruneDecision(PruneStep.KEEP, "already gone")
    meta = live.get("metadata") or {}
    annotation = (meta.get("annotations") or {}).get(PRUNE_ANNOTATION)
    if annotation == "disabled":
        return PruneDecision(PruneStep.KEEP, f"protected by annotation {PRUNE_ANNOTATION}: disabled")
    owner = (meta.get("labels") or {}).get(ENV_LABEL)
    if owner != environment:
        holder = f"environment {owner!r}" if owner else "nobody (label removed)"
        return PruneDecision(PruneStep.KEEP, f"labelled as managed by {holder}, not {environment!r}; left in place")
    if meta.get("deletionTimestamp"):
        return PruneDecision(PruneStep.KEEP, "already being deleted")
    if claimed_by:
        return PruneDecision(PruneStep.RELEASE, f"handed over to environment {claimed_by!r}, whose snapshot has it now")
    if adopted and annotation != "allowed":
        return PruneDecision(
            PruneStep.RELEASE,
            f"it existed before the agent applied it: released, not deleted (annotate {PRUNE_ANNOTATION}: allowed "
            "to let pruning delete it)",
        )
    if (key.group, key.kind) in HOLDING_KINDS and not any(k in (key.kind, key.group_kind) for k in allow_kinds):
        return PruneDecision(
            PruneStep.RELEASE,
            f"a {key.kind} is deleted only where the environment lists it in prune_allow (deleting it deletes what it "
            "holds): released",
        )
    return PruneDecision(PruneStep.DELETE, uid=str(meta.get("uid") or ""))


def release_patch() -> KubeObject:
    """A JSON merge patch taking the agent's marks off an object it leaves in place."""
    return {
        "metadata": {
            "labels": {ENV_LABEL: None, MANAGED_BY_LABEL: None},
            "annotations": {MANIFEST_HASH_ANNOTATION: None},
        }
    }
