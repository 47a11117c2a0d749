"""``present.format_progress``: the line ``sync`` prints while it follows a rollout."""

from __future__ import annotations

from gitops_agent.model import HealthStatus, ObjectHealth, ObjectKey
from gitops_agent.present import format_progress
from gitops_agent.rollout import RolloutProgress

C, P, U = HealthStatus.CURRENT, HealthStatus.IN_PROGRESS, HealthStatus.UNKNOWN


def health(name: str, status: HealthStatus, message: str, kind: str = "Deployment") -> ObjectHealth:
    return ObjectHealth(ObjectKey("apps" if kind == "Deployment" else "", kind, "shop", name), status, message)


def test_a_line_names_the_objects_still_waiting_and_why() -> None:
    objects = (
        health("settings", C, "exists", kind="ConfigMap"),
        health("api", P, "0/2 replicas available (0 ready)"),
        health("db", U, "not found", kind="Service"),
    )
    assert format_progress("dev", RolloutProgress(objects, 12.4, 630)) == (
        "dev: rollout 1/3 Current, 12s of 630s; waiting for Deployment/shop/api: 0/2 replicas available "
        "(0 ready); Service/shop/db: not found"
    )


def test_in_progress_comes_before_unknown_and_only_three_are_named() -> None:
    objects = (
        health("a", U, "not found"),
        *(health(n, P, "1/2 replicas updated") for n in ("b", "c", "d", "e")),
    )
    line = format_progress("prod", RolloutProgress(objects, 0.2, 90))
    assert line.startswith("prod: rollout 0/5 Current, 0s of 90s; waiting for Deployment/shop/b: ")
    assert "Deployment/shop/d: 1/2 replicas updated; and 2 more" in line
    assert "shop/a" not in line and "\n" not in line


def test_nothing_waiting() -> None:
    assert format_progress("dev", RolloutProgress((health("api", C, "2/2"),), 3, 60)) == (
        "dev: rollout 1/1 Current, 3s of 60s"
    )
