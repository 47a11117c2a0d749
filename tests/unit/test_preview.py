"""The PR preview's words: commit status descriptions and the one comment, cut to GitHub's limit."""

from __future__ import annotations

from gitops_agent.cluster import ObjectPlan, SyncResult
from gitops_agent.core.prepare import ENV_LABEL
from gitops_agent.core.preview_view import ObjectView, view_lines
from gitops_agent.model import Action, ObjectKey
from gitops_agent.preview import (
    COMMENT_LIMIT,
    DESCRIPTION_LIMIT,
    MARKER,
    EnvironmentPreview,
    describe,
    render_comment,
)


def key(name: str, kind: str = "ConfigMap") -> ObjectKey:
    return ObjectKey("", kind, "shop", name)


def result(*plans: ObjectPlan, error: str = "") -> SyncResult:
    return SyncResult("prod", "c" * 40, True, plans, error=error)


def configured(name: str, diff: str = "-a\n+b\n") -> ObjectPlan:
    return ObjectPlan(key(name), Action.CONFIGURED, ("/data/a",), diff)


def test_status_descriptions_count_changes_and_prunes() -> None:
    three = result(
        configured("a"), configured("b"), ObjectPlan(key("c"), Action.CREATED), ObjectPlan(key("d"), Action.UNCHANGED)
    )
    assert describe(three) == "3 objects change"
    assert describe(result(configured("a"), ObjectPlan(key("x"), Action.PRUNED))) == "1 object changes, 1 pruned"
    assert describe(result(ObjectPlan(key("a"), Action.UNCHANGED))) == "no change to live objects"


def test_a_broken_render_fails_the_status_with_a_description_github_accepts() -> None:
    preview = EnvironmentPreview("prod", error="environments/prod/app.yaml: document 2, line 7: " + "x" * 300)
    assert preview.state == "failure"
    assert preview.description.startswith("does not render: environments/prod/app.yaml: document 2, line 7")
    assert len(preview.description) <= DESCRIPTION_LIMIT


def test_the_comment_carries_the_marker_a_summary_and_masked_secret_diffs() -> None:
    before = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"password": "b2xk"}}
    after = {**before, "data": {"password": "bmV3LXNlY3JldA=="}}
    live = {**before, "metadata": {"name": "db", "labels": {ENV_LABEL: "prod"}}}
    secret = ObjectPlan(key("db", "Secret"), Action.CONFIGURED, ("/data/password",), live=live, planned=after)
    view = ObjectView(
        secret.key, secret.action, "prod", live=live, planned=after, base=before, head=after, managed=True
    )
    body = render_comment("f" * 40, [EnvironmentPreview("prod", result(secret), lines=tuple(view_lines(view)))])
    assert body is not None
    assert body.startswith(MARKER)
    assert "| `prod` | 1 object changes |" in body
    assert "# configured Secret/shop/db" in body
    assert "b2xk" not in body and "bmV3LXNlY3JldA==" not in body and "***" in body


def test_nothing_changed_means_no_comment() -> None:
    assert render_comment("f" * 40, []) is None


def test_a_huge_diff_is_cut_under_the_limit_with_fences_closed_and_a_note() -> None:
    big = "".join(f"+  line-{i}: {'x' * 80}\n" for i in range(5_000))
    lines = tuple(big.splitlines())
    previews = [
        EnvironmentPreview(env, result(configured("a", big)), lines=lines) for env in ("dev", "staging", "prod")
    ]
    body = render_comment("f" * 40, previews)
    assert body is not None
    assert len(body) <= COMMENT_LIMIT
    assert body.count("```diff") == 3 and body.count("\n```\n</details>") == 3
    assert "more lines not shown" in body
    assert "cut to fit GitHub's comment limit" in body
    assert all(f"<code>{env}</code>" in body for env in ("dev", "staging", "prod"))


def test_backticks_in_a_diff_cannot_close_the_fence() -> None:
    body = render_comment("f" * 40, [EnvironmentPreview("dev", result(configured("a")), lines=("+ note: ```",))])
    assert body is not None and "````diff" in body
