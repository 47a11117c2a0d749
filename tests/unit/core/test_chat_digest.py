"""core.chat_digest: every environment's open unexpected drift, with age and owner, within Slack's limits."""

from __future__ import annotations

from datetime import UTC, datetime

from gitops_agent.core.chat_digest import (
    DIGEST_EVENT,
    DIGEST_SCHEMA,
    DigestEnvironment,
    age_s,
    age_words,
    digest_message,
    open_drift,
)
from gitops_agent.core.drift import CHANGED, MISSING, DriftedField, ObjectDrift
from gitops_agent.model import ObjectKey
from tests.doubles.chat_server import slack_problems

SHA = "0123456789abcdef0123456789abcdef01234567"
NOW = datetime(2024, 5, 4, 12, 0, tzinfo=UTC)
SLOT = "2024-05-04T09:00:00+00:00"
API = ObjectKey("apps", "Deployment", "shop", "api")
CM = ObjectKey("", "ConfigMap", "shop", "settings")
EDIT = DriftedField(
    "/spec/template/spec/containers/0/image", "a:1", "a:2", "kubectl-edit", "2024-05-01T10:00:00Z", False
)
SCALE = DriftedField("/spec/replicas", 3, 5, "kube-controller-manager", "2024-05-04T11:00:00Z", True)


def env(name: str, *objects: ObjectDrift, since: str = "") -> DigestEnvironment:
    return DigestEnvironment(name, SHA, objects, open_since=since)


def test_age_and_owner_of_each_object_oldest_first() -> None:
    prod = env("prod", ObjectDrift(API, CHANGED, (EDIT, SCALE)), ObjectDrift(CM, MISSING), since="2024-05-03T12:00:00Z")
    found = open_drift(prod)
    assert [(d.drift.key, d.owners, d.since) for d in found] == [
        (API, ("kubectl-edit",), "2024-05-01T10:00:00Z"),  # the field's own time; the HPA's field is expected
        (CM, (), "2024-05-03T12:00:00Z"),  # deleted: since chat saw the drift open
    ]
    assert age_s("2024-05-01T10:00:00Z", NOW) == 3 * 86400 + 2 * 3600
    assert [age_words(s) for s in (59, 600, 3 * 3600 + 60, 3 * 86400 + 2 * 3600)] == ["0m", "10m", "3h 1m", "3d 2h"]
    assert age_s("", NOW) is None and age_s("yesterday", NOW) is None and age_s("2024-05-01T10:00:00", NOW) is None


def test_the_digest_lists_only_environments_with_open_unexpected_drift() -> None:
    environments = [
        env("dev", ObjectDrift(API, CHANGED, (SCALE,))),  # expected only: not listed
        env("prod", ObjectDrift(API, CHANGED, (EDIT,))),
        DigestEnvironment("staging", checked=False),
    ]
    message = digest_message(SLOT, NOW, environments, "https://agent.example/status")
    assert message is not None
    p = message.webhook
    assert (p["schema"], p["event"], p["slot"], p["unchecked"]) == (DIGEST_SCHEMA, DIGEST_EVENT, SLOT, ["staging"])
    assert p["counts"] == {"environments": 1, "objects": 1}
    assert p["environments"] == [
        {
            "environment": "prod",
            "commit": SHA,
            "objects": [
                {"group": "apps", "kind": "Deployment", "namespace": "shop", "name": "api", "change": "changed",
                 "owners": ["kubectl-edit"], "since": "2024-05-01T10:00:00Z", "age_s": 266400},
            ],
            "omitted_objects": 0,
        }
    ]  # fmt: skip
    text = str(message.slack)
    assert "*Deployment/shop/api* changed by `kubectl-edit` for 3d 2h" in text and "staging" in text
    assert slack_problems(message.slack) == []


def test_no_open_drift_no_digest() -> None:
    assert digest_message(SLOT, NOW, [env("dev"), env("prod", ObjectDrift(API, CHANGED, (SCALE,)))]) is None


def test_a_huge_digest_fits_slack() -> None:
    objects = tuple(ObjectDrift(ObjectKey("", "ConfigMap", "shop", f"cm-{i:03}"), MISSING) for i in range(300))
    environments = [env(f"env-{n}", *objects, since="2024-05-01T00:00:00Z") for n in range(80)]
    message = digest_message(SLOT, NOW, environments)
    assert message is not None and slack_problems(message.slack) == []
    assert "more objects" in str(message.slack["blocks"][2]) and "33 more environments" in str(message.slack)
    assert message.webhook["environments"][0]["omitted_objects"] == 200
