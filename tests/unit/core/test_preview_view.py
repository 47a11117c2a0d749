"""What a preview shows of an object: only the PR's changed fields of objects the environment manages."""

from __future__ import annotations

from typing import Any

from gitops_agent.core.prepare import ENV_LABEL
from gitops_agent.core.preview_view import ObjectView, changed_selection, managed, view_lines
from gitops_agent.model import Action, ObjectKey

KEY = ObjectKey("", "ConfigMap", "shop", "settings")
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def cm(data: dict[str, str], **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", **meta}, "data": data}


def test_managed_needs_the_inventory_and_the_environment_s_label() -> None:
    live = cm({}, labels={ENV_LABEL: "prod"})
    assert managed(KEY, live, frozenset({KEY}), "prod")
    assert not managed(KEY, live, frozenset(), "prod")
    assert not managed(KEY, cm({}, labels={ENV_LABEL: "dev"}), frozenset({KEY}), "prod")
    assert not managed(KEY, cm({}), frozenset({KEY}), "prod")


def test_an_unmanaged_live_object_is_never_shown() -> None:
    live = cm({"password": "live-secret"})
    view = ObjectView(KEY, Action.CONFIGURED, "prod", live=live, planned=cm({"password": "live-secret", "x": "1"}),
                      head=cm({"x": "1"}), managed=False)  # fmt: skip
    assert view_lines(view) == ["# configured ConfigMap/shop/settings: not managed by prod: not shown"]


def test_only_the_fields_the_pr_changes_are_shown_and_live_values_only_where_the_base_sets_them() -> None:
    annotations = {LAST_APPLIED: '{"password": "hunter2"}', "owner": "ops"}
    live = cm({"a": "1", "b": "2", "c": "live-only"}, annotations=annotations)
    base, head = cm({"a": "1", "b": "2"}), cm({"a": "1", "b": "3", "c": "pr"})
    planned = cm({"a": "1", "b": "3", "c": "pr"}, annotations=annotations)
    lines = view_lines(ObjectView(KEY, Action.CONFIGURED, "prod", live, planned, base, head, managed=True))
    text = "\n".join(lines)
    assert "-  b: '2'" in text and "+  b: '3'" in text and "+  c: pr" in text
    assert "live-only" not in text  # c is not the base's: its live value stays hidden
    assert "a: '1'" not in text and "hunter2" not in text and "owner" not in text


def test_named_list_entries_are_matched_by_name_so_another_manager_s_entry_never_shows() -> None:
    def deploy(*env: dict[str, str]) -> dict[str, Any]:
        container = {"name": "app", "image": "x", "env": list(env)}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "spec": {"template": {"spec": {"containers": [container]}}},
        }

    base = deploy({"name": "LEVEL", "value": "info"})
    head = deploy({"name": "LEVEL", "value": "debug"})
    live = deploy({"name": "TOKEN", "value": "s3cret"}, {"name": "LEVEL", "value": "info"})
    planned = deploy({"name": "TOKEN", "value": "s3cret"}, {"name": "LEVEL", "value": "debug"})
    key = ObjectKey("apps", "Deployment", "shop", "web")
    text = "\n".join(view_lines(ObjectView(key, Action.CONFIGURED, "prod", live, planned, base, head, managed=True)))
    assert "value: debug" in text and "value: info" in text and "s3cret" not in text and "TOKEN" not in text


def test_secret_values_are_masked_and_a_prune_shows_the_base_manifest_not_live() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"password": "b2xk"}}
    key = ObjectKey("", "Secret", "shop", "db")
    new = {**secret, "data": {"password": "bmV3"}}
    lines = view_lines(ObjectView(key, Action.CONFIGURED, "prod", secret, new, secret, new, managed=True))
    assert "b2xk" not in "".join(lines) and "bmV3" not in "".join(lines) and any("***" in ln for ln in lines)
    pruned = view_lines(ObjectView(key, Action.PRUNED, "prod", base=secret))
    assert pruned[0] == "# pruned Secret/shop/db" and "b2xk" not in "".join(pruned)


def test_changed_selection_is_empty_for_equal_manifests() -> None:
    assert changed_selection(cm({"a": "1"}), cm({"a": "1"})) == {}
    assert changed_selection(None, cm({})) is None
