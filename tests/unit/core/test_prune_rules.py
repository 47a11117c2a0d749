"""core.prune_rules: delete only what the agent created; release what it adopted, what holds other
objects, and what another environment now has."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_agent.core.prepare import ENV_LABEL, MANAGED_BY_LABEL, MANIFEST_HASH_ANNOTATION, PRUNE_ANNOTATION
from gitops_agent.core.prune_rules import PruneStep, decide_prune, release_patch
from gitops_agent.model import ObjectKey

CM = ObjectKey("", "ConfigMap", "shop", "x")
NS = ObjectKey("", "Namespace", "", "shop")
PVC = ObjectKey("", "PersistentVolumeClaim", "shop", "data")
CRD = ObjectKey("apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.x.io")


def live(
    labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None, **meta: Any
) -> dict[str, Any]:
    return {"metadata": {"name": "x", "uid": "u-1", "labels": labels or {}, "annotations": annotations or {}, **meta}}


OURS = {ENV_LABEL: "dev"}


@pytest.mark.parametrize(
    ("key", "obj", "kwargs", "step", "reason"),
    [
        (CM, live(OURS), {}, PruneStep.DELETE, ""),
        (CM, None, {}, PruneStep.KEEP, "already gone"),
        (CM, live(OURS, {PRUNE_ANNOTATION: "disabled"}), {}, PruneStep.KEEP, "protected by annotation"),
        (CM, live({ENV_LABEL: "prod"}), {}, PruneStep.KEEP, "managed by environment 'prod'"),
        (CM, live({}), {}, PruneStep.KEEP, "nobody (label removed)"),
        (CM, live(OURS, deletionTimestamp="2026-12-02T00:00:00Z"), {}, PruneStep.KEEP, "already being deleted"),
        (CM, live(OURS), {"adopted": True}, PruneStep.RELEASE, "existed before the agent applied it"),
        (CM, live(OURS, {PRUNE_ANNOTATION: "allowed"}), {"adopted": True}, PruneStep.DELETE, ""),
        (CM, live(OURS), {"claimed_by": "staging"}, PruneStep.RELEASE, "handed over to environment 'staging'"),
        (NS, live(OURS), {}, PruneStep.RELEASE, "a Namespace is deleted only where the environment lists it"),
        (NS, live(OURS), {"allow_kinds": ["Namespace"]}, PruneStep.DELETE, ""),
        (PVC, live(OURS), {}, PruneStep.RELEASE, "prune_allow"),
        (PVC, live(OURS), {"allow_kinds": ["PersistentVolumeClaim"]}, PruneStep.DELETE, ""),
        (CRD, live(OURS), {}, PruneStep.RELEASE, "prune_allow"),
        (CRD, live(OURS), {"allow_kinds": ["CustomResourceDefinition.apiextensions.k8s.io"]}, PruneStep.DELETE, ""),
        (NS, live(OURS), {"adopted": True, "allow_kinds": ["Namespace"]}, PruneStep.RELEASE, "existed before"),
    ],
)
def test_what_pruning_does(
    key: ObjectKey, obj: dict[str, Any] | None, kwargs: dict[str, Any], step: PruneStep, reason: str
) -> None:
    decision = decide_prune(key, obj, "dev", **kwargs)
    assert decision.step is step
    assert reason in decision.reason if reason else decision.reason == ""
    assert decision.uid == ("u-1" if step is PruneStep.DELETE else "")


def test_a_release_takes_off_the_agent_s_marks_only() -> None:
    patch = release_patch()
    assert patch == {
        "metadata": {
            "labels": {ENV_LABEL: None, MANAGED_BY_LABEL: None},
            "annotations": {MANIFEST_HASH_ANNOTATION: None},
        }
    }
