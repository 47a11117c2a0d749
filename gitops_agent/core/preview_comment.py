"""The one pull request preview comment, pure: a summary per environment, then fenced diffs.

Much of what the comment quotes is the pull request author's to choose: error messages (with file
names and object names), object names in the diffs. None of it may render as Markdown or HTML (a
link, an image, an @-mention): it is only ever

- inside a fenced code block whose fence is longer than any run of backticks in it (so no line of
  it can close the fence);
- in a table cell, inside a code span delimited likewise, on one line, with ``|`` escaped (GitHub
  splits cells on ``|`` even inside code spans);
- in HTML (the ``<summary>`` of each section), HTML-escaped inside ``<code>``.

The comment stays under GitHub's body limit by cutting diffs (never the summary) and saying where.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

MARKER = "<!-- gitops-agent:preview -->"
#: GitHub refuses an issue comment body longer than this (characters)
COMMENT_LIMIT = 65_536
#: untrusted text quoted in the summary is cut to this many characters
DETAIL_LIMIT = 120


@dataclass(frozen=True)
class Section:
    """One environment of the comment."""

    environment: str
    ok: bool
    #: the agent's own words ("2 objects change", "does not render")
    summary: str
    #: untrusted text shown after the summary (an error message), "" for none
    detail: str = ""
    #: the section's lines, untrusted (diffs, object names, messages): fenced
    lines: tuple[str, ...] = ()


def render_comment(head: str, sections: Sequence[Section]) -> str | None:
    """The comment: a summary per environment, then the diffs, cut to fit GitHub's limit."""
    if not sections:
        return None
    top = [MARKER, f"### gitops-agent preview of {code_span(head[:12])}", ""]
    top += ["| Environment | Plan against live |", "|---|---|"]
    top += [f"| {code_span(s.environment)} | {_cell(s)} |" for s in sections]
    top += ["", "Secret values are masked. Updated in place on every push to this pull request.", ""]
    return _fit("\n".join(top), sections, COMMENT_LIMIT)


def render_nothing() -> str:
    return f"{MARKER}\n### gitops-agent preview\n\nThis pull request no longer changes any environment.\n"


def code_span(text: str, limit: int = DETAIL_LIMIT) -> str:
    """``text`` as an inline code span for a table cell: one line, cut to ``limit``, delimited by
    more backticks than any run in it, ``|`` escaped."""
    one_line = " ".join(text.split())
    if len(one_line) > limit:
        one_line = one_line[: limit - 1] + "…"
    if not one_line:
        return ""
    ticks = "`" * (_longest_backtick_run(one_line) + 1)
    # a space keeps a leading or trailing backtick from joining the delimiter (CommonMark strips it)
    pad = " " if one_line.startswith("`") or one_line.endswith("`") else ""
    return f"{ticks}{pad}{one_line.replace('|', chr(92) + '|')}{pad}{ticks}"


def fence(lines: Sequence[str]) -> str:
    """A code fence longer than any run of backticks in the content, so no line can close it."""
    longest = max((_longest_backtick_run(line) for line in lines), default=0)
    return "`" * max(3, longest + 1)


def _cell(s: Section) -> str:
    summary = s.summary if s.ok else f"**{s.summary}**"
    return f"{summary}: {code_span(s.detail)}" if s.detail else summary


def _summary_html(s: Section) -> str:
    words = html.escape(s.summary)
    if not s.ok:
        words = f"<b>{words}</b>"
    return f"<details><summary><code>{html.escape(s.environment)}</code>: {words}</summary>\n"


def _section_lines(s: Section) -> list[str]:
    return [s.detail, *s.lines] if s.detail else list(s.lines)


def _fit(head: str, sections: Sequence[Section], limit: int) -> str:
    """Head, then each section's lines in a fenced block, cutting lines (never headings) to ``limit``."""
    bodies = [_section_lines(s) for s in sections]
    fences = [fence([*lines, "… 0 more lines not shown"]) for lines in bodies]
    frames = [(f"{_summary_html(s)}\n{f}diff\n", f"\n{f}\n</details>\n") for s, f in zip(sections, fences, strict=True)]
    # reserved: the closing note, and one 'more lines not shown' line per section
    budget = limit - len(head) - sum(len(a) + len(b) + 1 for a, b in frames) - 300 - 60 * len(sections)
    out, left_out = [head], 0
    for lines, (start, end) in zip(bodies, frames, strict=True):
        kept: list[str] = []
        for i, line in enumerate(lines):
            if len(line) + 1 > budget:
                left_out += len(lines) - i
                kept.append(f"… {len(lines) - i} more lines not shown")
                budget = 0
                break
            kept.append(line)
            budget -= len(line) + 1
        out.append(start + "\n".join(kept) + end)
    note = ""
    if left_out:
        note = (
            f"\n**The diff was cut to fit GitHub's comment limit ({left_out} lines left out).** "
            "Run `gitops-agent diff --env NAME` on the PR head for all of it.\n"
        )
    return "\n".join(out) + note


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)
