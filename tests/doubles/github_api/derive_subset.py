"""Re-derives ``openapi-subset.json`` from GitHub's full published REST API description.

    .venv/bin/python -m tests.doubles.github_api.derive_subset FULL.json --commit SHA \\
        [-o tests/doubles/github_api/openapi-subset.json]

``FULL.json`` is ``descriptions/api.github.com/api.github.com.json`` of ``github/rest-api-description``
at commit ``SHA`` (see PROVENANCE.md). The subset keeps the operations in ``OPERATIONS`` (only the
listed methods of each path), the webhook payloads in ``WEBHOOKS`` (``x-webhooks``), every component
they reference, transitively, and the tags their operations name; everything else of the full
description is dropped. Every ``$ref`` of the result resolves inside it. ``x-octokit`` extensions are
removed, so a copy carrying them (the npm ``@octokit/openapi`` build) gives the same selection;
Octokit's other edits (an operationId renamed, an override of ``POST …/check-runs``) stay.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SUBSET = HERE / "openapi-subset.json"
UPSTREAM_REPOSITORY = "github/rest-api-description"
UPSTREAM_PATH = "descriptions/api.github.com/api.github.com.json"
PROVENANCE = "x-subset-provenance"

#: what the GitHub client (gitops_agent/adapters/github.py) calls, as (method, path)
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("post", "/repos/{owner}/{repo}/statuses/{sha}"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/status"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/statuses"),
    ("get", "/repos/{owner}/{repo}/pulls"),
    ("post", "/repos/{owner}/{repo}/pulls"),
    ("post", "/repos/{owner}/{repo}/git/refs"),
    ("put", "/repos/{owner}/{repo}/contents/{path}"),
    ("get", "/repos/{owner}/{repo}/compare/{basehead}"),
    ("post", "/repos/{owner}/{repo}/check-runs"),
    ("patch", "/repos/{owner}/{repo}/check-runs/{check_run_id}"),
    ("post", "/app/installations/{installation_id}/access_tokens"),
    ("patch", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("get", "/repos/{owner}/{repo}/collaborators/{username}/permission"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/check-runs"),
    ("get", "/repos/{owner}/{repo}/deployments"),
    ("post", "/repos/{owner}/{repo}/deployments"),
    ("post", "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("patch", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/files"),
)

PULL_REQUEST_ACTIONS = (
    "assigned", "auto-merge-disabled", "auto-merge-enabled", "closed", "converted-to-draft", "demilestoned",
    "dequeued", "edited", "enqueued", "labeled", "locked", "milestoned", "opened", "ready-for-review", "reopened",
    "review-request-removed", "review-requested", "stacked", "synchronize", "unassigned", "unlabeled", "unlocked",
)  # fmt: skip

#: the webhook payloads the agent receives (keys of ``x-webhooks``)
WEBHOOKS: tuple[str, ...] = (
    *(f"pull-request-{action}" for action in PULL_REQUEST_ACTIONS),
    "push",
    "check-run-completed",
    "check-run-created",
    "check-run-requested-action",
    "check-run-rerequested",
    "issue-comment-created",
    "issue-comment-deleted",
    "issue-comment-edited",
    "ping",
    "pull-request-review-dismissed",
    "pull-request-review-edited",
    "pull-request-review-submitted",
)

HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
REF_PREFIX = "#/components/"


def derive(full: dict[str, Any], *, commit: str | None = None) -> dict[str, Any]:
    """The subset of ``full``: the selected operations and webhooks and what they reference."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path in OPERATIONS:
        item = full["paths"].get(path, {})
        if method not in item:
            raise KeyError(f"{method.upper()} {path} is not in the description")
        paths.setdefault(path, {key: value for key, value in item.items() if key not in HTTP_METHODS})
        paths[path][method] = item[method]
    missing = [name for name in WEBHOOKS if name not in full.get("x-webhooks", {})]
    if missing:
        raise KeyError(f"webhooks not in the description: {', '.join(missing)}")
    webhooks = {name: full["x-webhooks"][name] for name in WEBHOOKS}

    wanted = _closure(full["components"], [paths, webhooks])
    components = {
        kind: {name: entry for name, entry in entries.items() if (kind, name) in wanted}
        for kind, entries in full["components"].items()
    }
    components = {kind: entries for kind, entries in components.items() if entries}

    used_tags = {
        tag for item in paths.values() for method in HTTP_METHODS & item.keys() for tag in item[method]["tags"]
    }
    info = {key: value for key, value in full["info"].items() if key != PROVENANCE}
    info[PROVENANCE] = {
        "upstream_repository": UPSTREAM_REPOSITORY,
        "upstream_path": UPSTREAM_PATH,
        "upstream_commit": commit or "unknown",
        "derived_by": "tests/doubles/github_api/derive_subset.py",
        "operations": [f"{method.upper()} {path}" for method, path in OPERATIONS],
        "webhooks": list(WEBHOOKS),
    }
    subset: dict[str, Any] = {}
    for key, value in full.items():  # the description's own key order
        if key == "info":
            subset[key] = info
        elif key == "tags":
            subset[key] = [tag for tag in value if tag.get("name") in used_tags]
        elif key == "paths":
            subset[key] = paths
        elif key == "x-webhooks":
            subset[key] = webhooks
        elif key == "components":
            subset[key] = components
        else:
            subset[key] = value
    return _without_octokit(subset)


def _refs(node: Any) -> Iterator[tuple[str, str]]:
    """Every ``#/components/<kind>/<name>`` reference under ``node``, as (kind, name)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            ref = current.get("$ref")
            if isinstance(ref, str):
                if not ref.startswith(REF_PREFIX):
                    raise ValueError(f"a $ref outside the components: {ref}")
                kind, _, name = ref[len(REF_PREFIX) :].partition("/")
                yield kind, name.replace("~1", "/").replace("~0", "~")
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)


def _closure(components: dict[str, dict[str, Any]], roots: list[Any]) -> set[tuple[str, str]]:
    """The components ``roots`` reference, and those they reference, and so on."""
    seen: set[tuple[str, str]] = set()
    todo = [ref for root in roots for ref in _refs(root)]
    while todo:
        kind, name = todo.pop()
        if (kind, name) in seen:
            continue
        if name not in components.get(kind, {}):
            raise KeyError(f"#/components/{kind}/{name} is referenced but not defined")
        seen.add((kind, name))
        todo.extend(_refs(components[kind][name]))
    return seen


def _without_octokit(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _without_octokit(value) for key, value in node.items() if key != "x-octokit"}
    if isinstance(node, list):
        return [_without_octokit(value) for value in node]
    return node


def dumps(subset: dict[str, Any]) -> str:
    """The file's format: one-space indent, ASCII only, no newline at the end."""
    return json.dumps(subset, indent=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.doubles.github_api.derive_subset", description=__doc__)
    parser.add_argument("full", type=Path, help=f"{UPSTREAM_PATH} of {UPSTREAM_REPOSITORY}")
    parser.add_argument("--commit", help="the upstream commit FULL was taken from (recorded in the subset)")
    parser.add_argument("-o", "--out", type=Path, default=SUBSET)
    args = parser.parse_args(argv)
    subset = derive(json.loads(args.full.read_text()), commit=args.commit)
    args.out.write_text(dumps(subset))
    counts = ", ".join(f"{len(v)} {k}" for k, v in subset["components"].items())
    print(f"wrote {args.out}: {len(OPERATIONS)} operations, {len(WEBHOOKS)} webhooks, {counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
