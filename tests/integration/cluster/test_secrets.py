"""No Secret value out of the cluster verbs, against the real API server: drift of a Secret whose
``data`` was removed or edited, the plan's diff of it, an API error about an integer in
``stringData``, values that are not strings refused before anything is sent, and an admission
refusal that quotes the Secret's values."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, replace
from typing import Any

import pytest
from kubernetes import client as k8s

from gitops_agent.cluster import ClusterApi, SyncOptions, sync
from gitops_agent.cluster.sync import drift
from gitops_agent.core.secret_mask import MASK
from gitops_agent.errors import ValidationError
from gitops_agent.present import drift_json, format_drift, pass_json
from gitops_agent.reconcile import PassResult
from tests.integration.cluster.support import desired
from tests.integration.secret_support import b64, canary_secret, echoing_refusal

pytestmark = pytest.mark.integration


@pytest.fixture
def canary() -> str:
    return f"canary-{uuid.uuid4().hex[:12]}"


def leaks(canary: str, text: str) -> list[str]:
    """Each form of the canary's values found in ``text``: as written, and base64 (as stored)."""
    forms = [f"{canary}-data", f"{canary}-string", canary]
    return [f for f in forms + [b64(f) for f in forms] if f in text]


def edit(api_client: k8s.ApiClient, namespace: str, name: str, patch: list[dict[str, Any]]) -> None:
    """A person's JSON patch, as ``kubectl edit`` makes it (its own field manager)."""
    k8s.CoreV1Api(api_client).patch_namespaced_secret(
        name, namespace, patch, field_manager="kubectl-edit", _content_type="application/json-patch+json"
    )


def test_drift_of_a_secret_whose_data_was_removed_or_edited_shows_keys_never_values(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient, canary: str
) -> None:
    snapshot = desired(canary_secret("db", canary))
    assert sync(api, snapshot, commit="c1", options=options).ok
    edit(api_client, names["dev"], "db", [{"op": "remove", "path": "/data"}])

    (gone,) = drift(api, snapshot, options)
    assert [(f.path, f.desired, f.live) for f in gone.fields] == [("/data", {"password": MASK, "token": MASK}, None)]
    result = PassResult("dev", "c1", "up-to-date", drift=(gone,))
    shown = format_drift(result) + json.dumps(drift_json(result)) + json.dumps(pass_json(result, with_diff=True))
    assert not leaks(canary, shown), shown

    forced = sync(api, snapshot, commit="c1", options=replace(options, force=True), dry_run=True)
    (plan,) = [o for o in forced.objects if o.key.kind == "Secret"]
    assert "password: '*** (after)'" in plan.diff and not leaks(canary, plan.diff), plan.diff

    assert sync(api, snapshot, commit="c1", options=replace(options, force=True)).ok
    edit(api_client, names["dev"], "db", [{"op": "replace", "path": "/data/token", "value": b64(f"{canary}-edited")}])
    (edited,) = drift(api, snapshot, options)
    assert [(f.path, f.desired, f.live, f.manager) for f in edited.fields] == [
        ("/data/token", MASK, MASK, "kubectl-edit")
    ]
    assert not leaks(canary, json.dumps([asdict(f) for f in edited.fields]))
    assert f"{canary}-edited" not in json.dumps([asdict(f) for f in edited.fields])


def test_an_api_error_about_an_integer_in_string_data_never_quotes_it(api: ClusterApi, names: dict[str, str]) -> None:
    pin = 987654321
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "pin", "namespace": "default"},
        "stringData": {"pin": pin, "nested": {"deep": "nested-s3cr3t"}},
    }
    info = api.resource("", "Secret")
    for dry_run in (True, False):
        with pytest.raises(ValidationError) as caught:
            api.kube.apply(manifest, info, field_manager="gitops-agent", dry_run=dry_run)
        message = str(caught.value)
        assert ".stringData.pin: expected string, got ***" in message, message
        assert str(pin) not in message and "nested-s3cr3t" not in message and "deep" not in message


def test_values_that_are_not_strings_are_refused_before_anything_is_sent(
    api: ClusterApi, options: SyncOptions, canary: str
) -> None:
    bad = canary_secret("db", canary)
    bad["stringData"]["pin"] = 987654321
    bad["data"]["token"] = f"{canary}-not-base64!"
    requests = sum(api.kube.requests[v] for v in ("apply", "apply-dry-run"))

    result = sync(api, desired(bad), commit="c1", options=options)
    assert not result.ok and result.reason == "ValidationFailed"
    assert result.error == (
        "secret.yaml: Secret/db: data['token'] is not valid base64 (use stringData for plain text); "
        "stringData['pin'] must be a string, found a number (quote it in YAML)"
    )
    assert sum(api.kube.requests[v] for v in ("apply", "apply-dry-run")) == requests
    assert "987654321" not in result.error and not leaks(canary, result.error)


def test_a_refusal_that_quotes_the_secret_s_values_is_scrubbed(
    api: ClusterApi, options: SyncOptions, names: dict[str, str], api_client: k8s.ApiClient, canary: str
) -> None:
    assert sync(api, desired(canary_secret("other", "unrelated")), commit="c0", options=options).ok
    probe = canary_secret("probe", canary)
    probe["metadata"]["namespace"] = names["dev"]
    info = api.resource("", "Secret")
    with echoing_refusal(
        api_client, names["dev"], lambda: api.kube.apply(probe, info, field_manager="t", dry_run=True)
    ):
        for dry_run in (True, False):
            result = sync(api, desired(canary_secret("db", canary)), commit="c1", options=options, dry_run=dry_run)
            assert not result.ok
            assert "refused, data is " in result.error, result.error
            assert "password=***" in result.error and "token=***" in result.error, result.error
            assert not leaks(canary, result.error), result.error
