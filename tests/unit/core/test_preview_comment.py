"""The preview comment never lets the pull request's text render: hostile strings stay fenced or escaped."""

from __future__ import annotations

import re

import markdown_it
import pytest

from gitops_agent.core.preview_comment import COMMENT_LIMIT, MARKER, Section, code_span, fence, render_comment

HOSTILE = [
    "![pixel](https://evil.example/p.png) [click](https://evil.example) @octocat #1 <img src=x onerror=alert(1)>",
    "```\n# escaped the fence\n@admins ![x](https://evil.example/x.png)\n```",
    "``````` seven ``` three `one` ```` four",
    "| a | b | </summary></details><a href='https://evil.example'>x</a>",
    "line\r\n```\r\n@team\rmore",
    "`leading and trailing`",
    "a ` @octocat ![x](https://evil.example/x.png) ` b `` @team ``",
]


def rendered(markdown: str) -> str:
    """CommonMark with GFM tables (what GitHub renders, near enough to find escapes)."""
    return str(markdown_it.MarkdownIt("commonmark").enable("table").render(markdown))


def outside_code(html: str) -> str:
    """The rendered HTML with code elements (and what they hold) removed."""
    return re.sub(r"<code[^>]*>.*?</code>", "", html, flags=re.S)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_in_errors_and_diffs_renders_only_as_code(text: str) -> None:
    sections = [
        Section("prod", False, "does not render", text),
        Section("staging", True, "1 object changes", "", (f"# configured ConfigMap/shop/{text}", f"+  key: {text}")),
    ]
    body = render_comment("f" * 40, sections)
    assert body is not None and body.startswith(MARKER)
    html = outside_code(rendered(body))
    for needle in ("evil.example", "@", "<img", "<a ", "escaped the fence", "onerror"):
        assert needle not in html


@pytest.mark.parametrize("text", HOSTILE)
def test_a_code_span_holds_any_text_on_one_line_in_one_cell(text: str) -> None:
    span = code_span(text)
    assert "\n" not in span and "\r" not in span
    row = rendered(f"| a | b |\n|---|---|\n| x | {span} |\n")
    assert row.count("<td>") == 2  # the pipes inside did not split the cell
    assert outside_code(row).count("evil.example") == 0


def test_a_fence_is_longer_than_any_backtick_run_in_its_lines() -> None:
    assert fence(["plain"]) == "```"
    assert fence(["a ```` b", "`"]) == "`````"


def test_long_details_are_cut_in_the_summary_and_kept_in_the_section() -> None:
    error = "environments/prod/app.yaml: " + "x" * 500
    body = render_comment("f" * 40, [Section("prod", False, "does not render", error)])
    assert body is not None and len(body) <= COMMENT_LIMIT
    (row,) = [line for line in body.splitlines() if line.startswith("| `prod`")]
    assert "…" in row and len(row) < 200
    assert error in body  # whole, inside the fence below
