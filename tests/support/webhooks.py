"""A push delivered to the agent's GitHub webhook as GitHub signs it (the fields the agent reads)."""

from __future__ import annotations

import json

import httpx

from gitops_agent.core.webhook import signature
from gitops_agent.webhooks import WEBHOOK_PATH


def post_push(
    base_url: str, secret: str, commit: str, *, ref: str = "refs/heads/main", timeout: float = 30
) -> httpx.Response:
    """POST a push of ``commit`` to ``ref`` to the webhook listener at ``base_url``, signed with ``secret``."""
    body = json.dumps({"ref": ref, "after": commit}).encode()
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature(secret.encode(), body)}
    return httpx.post(base_url + WEBHOOK_PATH, content=body, headers=headers, timeout=timeout)
