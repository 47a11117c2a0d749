"""What people and scripts read: the text and JSON of the CLI and the daemon (README documents the JSON).

The expected strings and dicts here were taken from the output before ``present`` existed: they
are the proof that moving the renderings changed no byte.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from gitops_agent import cli
from gitops_agent.adapters.git_source import CommitInfo
from gitops_agent.cluster import ObjectPlan, SyncResult
from gitops_agent.core.drift import CHANGED, EXTRA, MISSING, DriftCounts, DriftedField, ObjectDrift
from gitops_agent.core.ledger import LedgerEntry
from gitops_agent.model import Action, Health, HealthStatus, ObjectHealth, ObjectKey
from gitops_agent.present import (
    drift_counts,
    drift_json,
    format_drift,
    format_pass,
    format_status,
    history_json,
    pass_json,
    summarize,
)
from gitops_agent.queries import EnvironmentStatus, HistoryEntry
from gitops_agent.reconcile import PassResult
from gitops_agent.scheduler import EnvironmentView, SchedulerStatus
from gitops_agent.status_page import status_json

SHA = "0123456789abcdef0123456789abcdef01234567"
API = ObjectKey("apps", "Deployment", "shop", "api")
WEB = ObjectKey("apps", "Deployment", "shop", "web")
CFG = ObjectKey("", "ConfigMap", "shop", "settings")
STRAY = ObjectKey("", "ConfigMap", "shop", "stray")
NS = ObjectKey("", "Namespace", "", "shop")

HPA = DriftedField("/spec/replicas", 2, 5, "kube-controller-manager", "2024-05-01T10:00:00Z", True)
EDIT = DriftedField("/spec/template/spec/containers/0/image", "api:1.2", "api:1.3", "kubectl-edit", "", False)
REMOVED = DriftedField("/metadata/labels/tier", "gold", None, "", "", False)
LONG = DriftedField("/data/config", "x" * 100, "y", "kubectl-edit", "", False)
DRIFT = (
    ObjectDrift(API, CHANGED, (HPA, EDIT, REMOVED)),
    ObjectDrift(CFG, MISSING),
    ObjectDrift(WEB, CHANGED, (HPA,)),
    ObjectDrift(STRAY, EXTRA),
)

SYNC = SyncResult(
    environment="prod",
    commit=SHA,
    dry_run=False,
    objects=(
        ObjectPlan(API, Action.CONFIGURED, ("/spec/replicas",), diff="--- a\n+++ b\n", source="api.yaml"),
        ObjectPlan(CFG, Action.CREATED, source="cm.yaml"),
        ObjectPlan(NS, Action.UNCHANGED, source="ns.yaml"),
        ObjectPlan(STRAY, Action.PRUNED, message="removed from git"),
    ),
)
REPAIRED = SyncResult(environment="prod", commit=SHA, dry_run=False, objects=(ObjectPlan(API, Action.CONFIGURED),))
APPLIED = PassResult(
    "prod", SHA, "applied", sync=SYNC, drift=DRIFT, repaired=REPAIRED, health=Health(HealthStatus.CURRENT, "2 current")
)
FAILED = PassResult("prod", "", "failed", error="cluster unreachable", reason="ClusterError")


def key(k: ObjectKey) -> dict[str, str]:
    return {"group": k.group, "kind": k.kind, "namespace": k.namespace, "name": k.name}


# --- JSON -----------------------------------------------------------------------------------------

API_DRIFT_JSON = {
    **key(API),
    "drift": "changed",
    "expected": False,
    "fields": [
        {
            "path": "/spec/replicas",
            "desired": 2,
            "live": 5,
            "manager": "kube-controller-manager",
            "since": "2024-05-01T10:00:00Z",
            "expected": True,
        },
        {
            "path": "/spec/template/spec/containers/0/image",
            "desired": "api:1.2",
            "live": "api:1.3",
            "manager": "kubectl-edit",
            "since": "",
            "expected": False,
        },
        {
            "path": "/metadata/labels/tier",
            "desired": "gold",
            "live": None,
            "manager": "",
            "since": "",
            "expected": False,
        },
    ],
}
DRIFT_JSON = [
    API_DRIFT_JSON,
    {**key(CFG), "drift": "missing", "expected": False, "fields": []},
    {**key(WEB), "drift": "changed", "expected": True, "fields": [API_DRIFT_JSON["fields"][0]]},  # type: ignore[index]
    {**key(STRAY), "drift": "unexpected-object", "expected": False, "fields": []},
]


def sync_summary(**counts: int) -> dict[str, int]:
    return {a.value: counts.get(a.value, 0) for a in Action}


def test_pass_json_keeps_its_documented_shape() -> None:
    out = pass_json(APPLIED)
    assert list(out) == [
        "environment", "commit", "outcome", "ok", "error", "reason", "message", "sync", "repaired", "drift", "health",
    ]  # fmt: skip
    assert out == {
        "environment": "prod",
        "commit": SHA,
        "outcome": "applied",
        "ok": True,
        "error": "",
        "reason": "",
        "message": "",
        "sync": {
            "dry_run": False,
            "ok": True,
            "error": "",
            "summary": sync_summary(created=1, configured=1, unchanged=1, pruned=1),
            "objects": [
                {
                    **key(API),
                    "action": "configured",
                    "changed_paths": ["/spec/replicas"],
                    "message": "",
                    "source": "api.yaml",
                },
                {**key(CFG), "action": "created", "changed_paths": [], "message": "", "source": "cm.yaml"},
                {**key(NS), "action": "unchanged", "changed_paths": [], "message": "", "source": "ns.yaml"},
                {**key(STRAY), "action": "pruned", "changed_paths": [], "message": "removed from git", "source": ""},
            ],
        },
        "repaired": {
            "dry_run": False,
            "ok": True,
            "error": "",
            "summary": sync_summary(configured=1),
            "objects": [{**key(API), "action": "configured", "changed_paths": [], "message": "", "source": ""}],
        },
        "drift": DRIFT_JSON,
        "health": {"status": "Current", "message": "2 current"},
    }
    assert [list(f) for f in out["drift"][0]["fields"]] == [
        ["path", "desired", "live", "manager", "since", "expected"]
    ] * 3


def test_pass_json_with_diffs_and_of_a_failed_pass() -> None:
    objects = pass_json(APPLIED, with_diff=True)["sync"]["objects"]
    assert [o["diff"] for o in objects] == ["--- a\n+++ b\n", "", "", ""]
    assert list(objects[0])[-1] == "diff"
    assert pass_json(FAILED) == {
        "environment": "prod",
        "commit": "",
        "outcome": "failed",
        "ok": False,
        "error": "cluster unreachable",
        "reason": "ClusterError",
        "message": "",
        "sync": None,
        "repaired": None,
        "drift": [],
        "health": None,
    }


def test_drift_json() -> None:
    out = drift_json(PassResult("prod", SHA, "up-to-date", drift=DRIFT))
    assert list(out) == ["environment", "commit", "ok", "error", "expected", "unexpected", "objects"]
    assert out == {
        "environment": "prod",
        "commit": SHA,
        "ok": True,
        "error": "",
        "expected": 1,
        "unexpected": 3,
        "objects": DRIFT_JSON,
    }


def test_history_json() -> None:
    entry = LedgerEntry(SHA, "2024-05-01T10:00:00Z", "0.1.0", "applied", "1 created", rolled_back_from="f" * 40)
    commit = CommitInfo(SHA, "Ada", datetime(2024, 5, 1, 9, 30, tzinfo=UTC), "Bump api")
    out = history_json(HistoryEntry(entry, (commit,), True))
    assert list(out) == [
        "commit", "time", "agent_version", "result", "summary", "message", "forced", "snapshot_hash",
        "rolled_back_from", "approved_by", "rollout", "rollout_message", "charts", "applied_by", "images",
        "running", "since", "paths", "commits",
    ]  # fmt: skip
    assert out["running"] is True and out["rolled_back_from"] == "f" * 40
    assert out["commits"] == [{"sha": SHA, "author": "Ada", "date": "2024-05-01T09:30:00+00:00", "subject": "Bump api"}]


# --- text -----------------------------------------------------------------------------------------


def test_format_pass() -> None:
    assert format_pass(APPLIED) == "\n".join(
        [
            "prod @ 0123456789ab: applied",
            "  1 created, 1 configured, 1 unchanged, 1 pruned",
            "    configured Deployment/shop/api",
            "    created    ConfigMap/shop/settings",
            "    pruned     ConfigMap/shop/stray (removed from git)",
            "  repaired drift: 1 configured",
            "    configured Deployment/shop/api",
            "  rollout: Current: 2 current",
            "  drift: 3 unexpected, 1 expected (gitops-agent drift)",
        ]
    )
    assert format_pass(FAILED) == "prod @ ?: failed: cluster unreachable"
    waiting = PassResult("dev", SHA, "waiting", message="waiting for a manual sync")
    assert format_pass(waiting) == "dev @ 0123456789ab: waiting (waiting for a manual sync)"


def test_format_drift() -> None:
    drift = (*DRIFT, ObjectDrift(ObjectKey("", "ConfigMap", "shop", "big"), CHANGED, (LONG,)))
    assert format_drift(PassResult("prod", SHA, "up-to-date", drift=drift)) == "\n".join(
        [
            "prod @ 0123456789ab: 4 unexpected, 1 expected",
            "  UNEXPECTED Deployment/shop/api",
            "      /spec/replicas: 2 -> 5 (by kube-controller-manager since 2024-05-01T10:00:00Z)",
            '      /spec/template/spec/containers/0/image: "api:1.2" -> "api:1.3" (by kubectl-edit)',
            '      /metadata/labels/tier: "gold" -> null (removed)',
            "  UNEXPECTED ConfigMap/shop/settings: missing",
            "  expected   Deployment/shop/web",
            "      /spec/replicas: 2 -> 5 (by kube-controller-manager since 2024-05-01T10:00:00Z)",
            "  UNEXPECTED ConfigMap/shop/stray: unexpected-object",
            "  UNEXPECTED ConfigMap/shop/big",
            '      /data/config: "' + "x" * 56 + '... -> "y" (by kubectl-edit)',
        ]
    )
    assert format_drift(PassResult("prod", SHA, "up-to-date")) == "prod @ 0123456789ab: no drift"
    assert format_drift(FAILED) == "prod @ ?: error: cluster unreachable"


def test_format_status() -> None:
    rows = [
        EnvironmentStatus("dev", SHA, SHA, 12, True, "applied", drift_expected=1, health="Current"),
        EnvironmentStatus("prod", SHA, "", 0, False, "failed", drift_unexpected=2, error="cluster unreachable"),
    ]
    assert format_status(rows).splitlines() == [
        "ENVIRONMENT  TARGET        APPLIED       OBJECTS  IN SYNC  HEALTH   DRIFT                     LAST RESULT",
        "dev          0123456789ab  0123456789ab  12       yes      Current  0 unexpected, 1 expected  applied",
        "prod         0123456789ab  -             0        no       -        2 unexpected, 0 expected  failed",
        "prod: cluster unreachable",
    ]


def test_summarize_for_the_log() -> None:
    assert summarize(APPLIED) == (
        "1 created, 1 configured, 1 unchanged, 1 pruned; repaired 1 configured; drift: 3 unexpected, 1 expected"
    )
    assert summarize(PassResult("dev", SHA, "up-to-date")) == "nothing to do"
    assert summarize(PassResult("dev", SHA, "waiting", message="waiting for a manual sync")) == (
        "waiting for a manual sync"
    )


def test_drift_counts() -> None:
    assert DriftCounts.of(DRIFT) == DriftCounts(unexpected=3, expected=1)
    assert DriftCounts.of(()) == DriftCounts(unexpected=0, expected=0)
    assert drift_counts(DriftCounts(unexpected=3, expected=1)) == "3 unexpected, 1 expected"


def test_status_page_and_cli_count_drift_alike() -> None:
    views = (
        EnvironmentView("prod", "report", "main", 60.0, False, False, APPLIED, None, None, None),
        EnvironmentView("dev", "report", "main", 60.0, True, False, None, None, None, None),
    )
    prod, dev = status_json(SchedulerStatus(True, "a", (), "", views))["environments"]
    assert prod["drift"] == {"expected": 1, "unexpected": 3}
    counts = drift_json(APPLIED)
    assert prod["drift"] == {"expected": counts["expected"], "unexpected": counts["unexpected"]}
    assert prod["summary"] == summarize(APPLIED)
    assert (dev["drift"], dev["summary"]) == ({"expected": 0, "unexpected": 0}, "")


# --- the commands, end to end with a fake agent ---------------------------------------------------


class FakeAgent:
    def sync_all(self, env: str | None, **_: Any) -> list[PassResult]:
        return [APPLIED, FAILED]

    def drift_all(self, env: str | None) -> list[PassResult]:
        return [PassResult("prod", SHA, "up-to-date", drift=DRIFT), PassResult("dev", SHA, "up-to-date")]

    def status(self, env: str | None) -> list[EnvironmentStatus]:
        return [EnvironmentStatus("dev", SHA, SHA, 12, True, "applied", drift_expected=1, health="Current")]

    def pull_request_environments(self) -> None:
        return None  # none configured

    def history(self, env: str) -> list[HistoryEntry]:
        commit = CommitInfo("a" * 40, "Ada", datetime(2024, 5, 1, 9, 30, tzinfo=UTC), "Bump api")
        return [
            HistoryEntry(LedgerEntry("b" * 40, "2024-05-01T09:00:00Z", "0.1.0", "failed", message="boom"), (), False),
            HistoryEntry(
                LedgerEntry(SHA, "2024-05-01T10:00:00Z", "0.1.0", "applied", "1 created", rolled_back_from="c" * 40),
                (commit,),
                True,
            ),
        ]

    def health(self, env: str) -> tuple[str, list[ObjectHealth]]:
        return SHA, [
            ObjectHealth(API, HealthStatus.IN_PROGRESS, "1/3 ready"),
            ObjectHealth(CFG, HealthStatus.CURRENT, "Resource is current"),
        ]


def wiring(agent: FakeAgent | None = None) -> Any:
    return SimpleNamespace(agent=agent or FakeAgent(), reporter=None)


def run(handler: str, capsys: pytest.CaptureFixture[str], **args: Any) -> tuple[int, str]:
    defaults: dict[str, Any] = {"env": None, "output": "text", "dry_run": True, "no_wait": False, "force": False}
    namespace = argparse.Namespace(**{**defaults, **args})
    code = getattr(cli, handler)(wiring(), namespace)
    return code, capsys.readouterr().out


def test_sync_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run("_sync", capsys)
    assert code == 1 and out == format_pass(APPLIED) + "\n" + format_pass(FAILED) + "\n"
    code, out = run("_sync", capsys, output="json")
    assert json.loads(out) == {"results": [pass_json(APPLIED), pass_json(FAILED)]}


def test_drift_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run("_drift", capsys)
    assert code == 1 and out.endswith("\n\ndev @ 0123456789ab: no drift\n")
    code, out = run("_drift", capsys, output="json")
    assert json.loads(out)["environments"][0] == drift_json(PassResult("prod", SHA, "up-to-date", drift=DRIFT))


def test_status_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run("_status", capsys, output="json")
    assert code == 0 and json.loads(out) == {
        "environments": [
            {
                "environment": "dev",
                "target_commit": SHA,
                "applied_commit": SHA,
                "objects": 12,
                "in_sync": True,
                "last_result": "applied",
                "drift_expected": 1,
                "drift_unexpected": 0,
                "health": "Current",
                "error": "",
                "charts": [],
            }
        ]
    }
    code, out = run("_status", capsys)
    assert out.splitlines()[1].split() == ["dev", "0123456789ab", "0123456789ab", "12", "yes", "Current", "0",
                                           "unexpected,", "1", "expected", "applied"]  # fmt: skip


def test_history_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run("_history", capsys, env="prod")
    assert code == 0 and out.splitlines() == [
        f"2024-05-01T09:00:00Z  {'b' * 12}  failed   boom",
        f"2024-05-01T10:00:00Z  0123456789ab  applied  1 created  (rolled back from {'c' * 12})  <- running",
        f"    {'a' * 12} 2024-05-01 09:30 Ada: Bump api",
    ]
    code, out = run("_history", capsys, env="prod", output="json")
    data = json.loads(out)
    assert data["environment"] == "prod" and data["history"] == [history_json(h) for h in FakeAgent().history("prod")]


def test_history_command_with_nothing_applied(capsys: pytest.CaptureFixture[str]) -> None:
    agent = FakeAgent()
    agent.history = lambda env: []  # type: ignore[method-assign]
    cli._history(wiring(agent), argparse.Namespace(env="prod", output="text"))
    assert capsys.readouterr().out == "prod: nothing applied yet\n"


def test_health_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run("_health", capsys, env="prod")
    assert code == 1 and out.splitlines() == [
        "prod @ 0123456789ab: InProgress",
        "  InProgress Deployment/shop/api: 1/3 ready",
        "  Current    ConfigMap/shop/settings: Resource is current",
    ]
    code, out = run("_health", capsys, env="prod", output="json")
    assert json.loads(out) == {
        "environment": "prod",
        "commit": SHA,
        "status": "InProgress",
        "objects": [
            {**key(API), "status": "InProgress", "message": "1/3 ready"},
            {**key(CFG), "status": "Current", "message": "Resource is current"},
        ],
    }
    agent = FakeAgent()
    agent.health = lambda env: ("", [])  # type: ignore[method-assign]
    cli._health(wiring(agent), argparse.Namespace(env="prod", output="text"))
    assert capsys.readouterr().out == "prod: nothing applied yet\n"
