"""core.scope: what an environment may write."""

from __future__ import annotations

import pytest

from gitops_agent.core.scope import Scope, ScopedObject, check_scope, violation
from gitops_agent.errors import ValidationError
from gitops_agent.model import ObjectKey

AGENT = "gitops-agent"
DEV = Scope(namespaces=("shop-dev", "shop-dev-*"))


def obj(group: str, kind: str, namespace: str, name: str, namespaced: bool | None = None) -> ScopedObject:
    return ScopedObject(ObjectKey(group, kind, namespace, name), "app.yaml", namespaced)


@pytest.mark.parametrize(
    ("o", "rule"),
    [
        (obj("", "ConfigMap", "shop-dev", "a", True), ""),
        (obj("", "ConfigMap", "shop-dev-feature-1", "a", True), ""),
        (obj("", "ConfigMap", "shop-prod", "a", True), "namespace 'shop-prod' is not one of scope.namespaces"),
        (obj("", "ConfigMap", AGENT, "ledger-prod", True), "the agent's own"),
        (obj("apps", "Deployment", AGENT, "steal", True), "the agent's own"),
        (obj("", "Namespace", "", "shop-dev", False), ""),
        (obj("", "Namespace", "", "shop-prod", False), "Namespace 'shop-prod' is not one of scope.namespaces"),
        (obj("", "Namespace", "", AGENT, False), "the agent's own"),
        (obj("rbac.authorization.k8s.io", "ClusterRoleBinding", "", "admin", False), "not in scope.cluster_kinds"),
        (obj("x.io", "Gizmo", "", "g", False), "cluster-scoped kind Gizmo.x.io is not in scope.cluster_kinds"),
    ],
)
def test_the_default_boundary_is_the_environment_s_namespaces(o: ScopedObject, rule: str) -> None:
    found = violation(o, DEV, agent_namespace=AGENT)
    assert (rule in found and found) if rule else found == ""


def test_cluster_kinds_and_deny_kinds() -> None:
    scope = Scope(namespaces=("shop-dev",), cluster_kinds=("ClusterRole", "Gizmo.x.io"), deny_kinds=("Secret",))
    assert (
        violation(obj("rbac.authorization.k8s.io", "ClusterRole", "", "r", False), scope, agent_namespace=AGENT) == ""
    )
    assert violation(obj("x.io", "Gizmo", "", "g", False), scope, agent_namespace=AGENT) == ""
    assert "scope.deny_kinds" in violation(obj("", "Secret", "shop-dev", "s", True), scope, agent_namespace=AGENT)
    # a Namespace needs its name in scope.namespaces, listed kinds or not
    listed = Scope(namespaces=("shop-dev",), cluster_kinds=("Namespace",))
    assert violation(obj("", "Namespace", "", "other", False), listed, agent_namespace=AGENT)


def test_offline_the_well_known_cluster_kinds_and_explicit_namespaces_are_judged() -> None:
    crb = obj("rbac.authorization.k8s.io", "ClusterRoleBinding", "", "admin")
    assert "cluster_kinds" in violation(crb, DEV, agent_namespace=AGENT)
    assert "shop-prod" in violation(obj("", "ConfigMap", "shop-prod", "a"), DEV, agent_namespace=AGENT)
    assert violation(obj("x.io", "Gizmo", "", "g"), DEV, agent_namespace=AGENT) == "", "unknown until the server says"
    assert violation(obj("", "ConfigMap", "", "a"), DEV, agent_namespace=AGENT) == "", "defaulted to its own later"


def test_check_scope_names_the_file_the_object_and_the_rule() -> None:
    with pytest.raises(ValidationError, match=r"app\.yaml: ConfigMap/shop-prod/a: outside environment 'dev''s scope: "):
        check_scope([obj("", "ConfigMap", "shop-prod", "a", True)], DEV, environment="dev", agent_namespace=AGENT)
