"""Sync hooks classified as Helm charts, Argo CD applications and the agent's own annotation write
them; and what a hook's run means."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gitops_agent.core.hooks import (
    HOOK_ANNOTATION,
    Classified,
    DeletePolicy,
    Hook,
    Phase,
    classify,
    failure,
    in_phase,
    is_hook,
    run_order,
    to_delete_after,
)
from gitops_agent.core.prepare import prepare
from gitops_agent.errors import ValidationError
from gitops_agent.model import DesiredObject, Health, HealthStatus, ObjectHealth, ObjectKey

BEFORE, SUCCEEDED, FAILED = DeletePolicy.BEFORE_HOOK_CREATION, DeletePolicy.HOOK_SUCCEEDED, DeletePolicy.HOOK_FAILED

# As `helm create` and the Helm docs write a migration hook.
HELM_JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: "shop-migrate"
  annotations:
    "helm.sh/hook": pre-install,pre-upgrade
    "helm.sh/hook-weight": "-5"
    "helm.sh/hook-delete-policy": before-hook-creation,hook-succeeded
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: "shop:1.2"}]
"""

# As Argo CD's docs write the same hook.
ARGO_JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  generateName: schema-migrate-
  name: shop-migrate
  annotations:
    argocd.argoproj.io/hook: PreSync
    argocd.argoproj.io/sync-wave: "-5"
    argocd.argoproj.io/hook-delete-policy: BeforeHookCreation,HookSucceeded
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: "shop:1.2"}]
"""


def with_annotations(**annotations: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": annotations}}


def test_a_helm_and_an_argo_cd_migration_hook_are_classified_the_same() -> None:
    helm, argo = classify(yaml.safe_load(HELM_JOB)), classify(yaml.safe_load(ARGO_JOB))
    assert helm == argo == Classified(Hook(Phase.PRE_SYNC, frozenset({BEFORE, SUCCEEDED}), -5))


@pytest.mark.parametrize(
    ("annotations", "phase"),
    [
        ({"gitops-agent.io/hook": "pre-sync"}, Phase.PRE_SYNC),
        ({"gitops-agent.io/hook": "post-sync"}, Phase.POST_SYNC),
        ({"argocd.argoproj.io/hook": "PreSync"}, Phase.PRE_SYNC),
        ({"argocd.argoproj.io/hook": "PostSync"}, Phase.POST_SYNC),
        ({"helm.sh/hook": "pre-install"}, Phase.PRE_SYNC),
        ({"helm.sh/hook": "pre-upgrade"}, Phase.PRE_SYNC),
        ({"helm.sh/hook": "post-install, post-upgrade"}, Phase.POST_SYNC),
        ({"helm.sh/hook": "pre-install,pre-delete"}, Phase.PRE_SYNC),  # the part that applies
    ],
)
def test_phases(annotations: dict[str, str], phase: Phase) -> None:
    hook = classify(with_annotations(**annotations)).hook
    assert hook is not None and hook.phase is phase
    assert hook.delete_policies == {BEFORE}, "before-hook-creation is the default, as in Argo CD and Helm"
    assert hook.weight == 0


@pytest.mark.parametrize(
    ("annotations", "why"),
    [
        ({"argocd.argoproj.io/hook": "Skip"}, "Skip"),
        ({"argocd.argoproj.io/hook": "SyncFail"}, "SyncFail hooks are not run"),
        ({"argocd.argoproj.io/hook": "PostDelete"}, "deletes no release"),
        ({"helm.sh/hook": "test"}, "Helm test hooks"),
        ({"helm.sh/hook": "test-success"}, "Helm test hooks"),
        ({"helm.sh/hook": "pre-delete,post-delete"}, "deletes no release"),
        ({"helm.sh/hook": "pre-rollback"}, "older commit"),
    ],
)
def test_hooks_a_sync_never_runs_are_skipped_with_a_note(annotations: dict[str, str], why: str) -> None:
    classified = classify(with_annotations(**annotations))
    assert classified.hook is None and why in classified.skipped


def test_argo_cd_sync_is_an_ordinary_object_and_no_annotation_too() -> None:
    assert classify(with_annotations(**{"argocd.argoproj.io/hook": "Sync"})) == Classified()
    assert classify({"kind": "ConfigMap", "metadata": {"name": "c"}}) == Classified()


def test_the_agents_own_annotation_wins_then_argo_cds_over_helms() -> None:
    both = with_annotations(**{"argocd.argoproj.io/hook": "PostSync", "helm.sh/hook": "pre-install"})
    assert classify(both).hook == Hook(Phase.POST_SYNC)
    ours = {**both["metadata"]["annotations"], HOOK_ANNOTATION: "pre-sync"}
    assert classify(with_annotations(**ours)).hook == Hook(Phase.PRE_SYNC)


def test_delete_policies_in_each_dialect() -> None:
    ours = classify(
        with_annotations(**{HOOK_ANNOTATION: "post-sync", "gitops-agent.io/hook-delete-policy": "hook-failed"})
    )
    assert ours.hook == Hook(Phase.POST_SYNC, frozenset({FAILED}))
    argo = with_annotations(
        **{"argocd.argoproj.io/hook": "PostSync", "argocd.argoproj.io/hook-delete-policy": "HookFailed"}
    )
    assert classify(argo).hook == Hook(Phase.POST_SYNC, frozenset({FAILED}))


@pytest.mark.parametrize(
    ("annotations", "words"),
    [
        ({HOOK_ANNOTATION: "presync"}, "'presync' is not one of"),
        ({"argocd.argoproj.io/hook": "Later"}, "'Later' is not one of"),
        ({"helm.sh/hook": "pre-install,post-install"}, "one phase"),
        ({"helm.sh/hook": "pre-install", "helm.sh/hook-weight": "first"}, "'first' is not an integer"),
        ({"helm.sh/hook": "pre-install", "helm.sh/hook-delete-policy": "never"}, "'never' is not one of"),
    ],
)
def test_a_value_no_dialect_defines_is_refused_naming_the_object(annotations: dict[str, str], words: str) -> None:
    with pytest.raises(ValidationError, match=words) as caught:
        classify(with_annotations(**annotations), "app.yaml: Pod/p")
    assert str(caught.value).startswith("app.yaml: Pod/p: ")


def test_prepare_marks_hooks_never_inventoried_and_leaves_skipped_objects_out() -> None:
    objects = [
        DesiredObject(ObjectKey("batch", "Job", "", "shop-migrate"), yaml.safe_load(ARGO_JOB), "hooks.yaml"),
        DesiredObject(ObjectKey("", "Pod", "", "p"), with_annotations(**{"helm.sh/hook": "test"}), "tests.yaml"),
        DesiredObject(
            ObjectKey("", "ConfigMap", "", "c"),
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
            "c.yaml",
        ),
    ]
    prepared = prepare(objects, environment="dev", default_namespace="shop", scope_of=lambda g, k: True)
    by_kind = {p.key.kind: p for p in prepared}
    assert set(by_kind) == {"Job", "ConfigMap"}, "the Helm test Pod is not applied"
    job = by_kind["Job"]
    assert job.hook is not None and job.hook.phase is Phase.PRE_SYNC and not job.inventoried
    assert job.manifest["metadata"]["annotations"][HOOK_ANNOTATION] == "pre-sync" and is_hook(job.manifest)
    assert by_kind["ConfigMap"].hook is None and by_kind["ConfigMap"].inventoried
    assert in_phase([o.manifest for o in objects], Phase.PRE_SYNC)
    assert not in_phase([o.manifest for o in objects], Phase.POST_SYNC)


def test_weights_order_groups_lowest_first_names_within() -> None:
    a, b, c = (ObjectKey("batch", "Job", "ns", n) for n in "abc")
    order = run_order([(c, Hook(Phase.PRE_SYNC, weight=1)), (b, Hook(Phase.PRE_SYNC)), (a, Hook(Phase.PRE_SYNC))])
    assert order == [[a, b], [c]]


def test_a_failed_hook_is_named_with_the_jobs_reason() -> None:
    key = ObjectKey("batch", "Job", "shop", "migrate")
    failed = ObjectHealth(
        key, HealthStatus.FAILED, "failed (BackoffLimitExceeded): Job has reached the specified backoff limit"
    )
    words = failure(Phase.PRE_SYNC, Health(HealthStatus.FAILED, "x"), [failed])
    assert (
        words
        == "pre-sync hook Job/shop/migrate failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
    )
    late = ObjectHealth(key, HealthStatus.IN_PROGRESS, "running: 1 active, 0 succeeded, 0 failed")
    words = failure(Phase.POST_SYNC, Health(HealthStatus.FAILED, "timed out after 30s: …"), [late])
    assert words == "post-sync hook Job/shop/migrate did not complete: timed out after 30s: …"
    assert failure(Phase.PRE_SYNC, Health(HealthStatus.CURRENT, "healthy"), []) == ""


def test_a_failed_hook_explained_by_its_pods_says_the_verdict_first() -> None:
    key = ObjectKey("batch", "Job", "shop", "migrate")
    pods = "migrate: 0/1 succeeded, 1 failed, container c exited 1 (Error)"
    failed = ObjectHealth(key, HealthStatus.FAILED, f"{pods} (failed (BackoffLimitExceeded): backoff limit reached)")
    assert failure(Phase.PRE_SYNC, Health(HealthStatus.FAILED, "x"), [failed]) == (
        "pre-sync hook Job/shop/migrate failed: BackoffLimitExceeded: backoff limit reached"
        " (0/1 succeeded, 1 failed, container c exited 1 (Error))"
    )


def test_delete_after_as_the_policy_says() -> None:
    both = Hook(Phase.PRE_SYNC, frozenset({SUCCEEDED, FAILED}))
    assert to_delete_after(both, succeeded=True) and to_delete_after(both, succeeded=False)
    assert not to_delete_after(Hook(Phase.PRE_SYNC), succeeded=True)
