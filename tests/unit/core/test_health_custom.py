"""User-defined CEL health rules: compiled at config load, evaluated on the live object, an error
at run time is that object's Unknown."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gitops_agent.config import parse_config
from gitops_agent.core.health import assess
from gitops_agent.core.health_custom import by_kind, compile_rule
from gitops_agent.errors import ConfigError
from gitops_agent.model import Health, HealthStatus
from tests.support import paths

C, P, F, U = HealthStatus.CURRENT, HealthStatus.IN_PROGRESS, HealthStatus.FAILED, HealthStatus.UNKNOWN

WORKFLOW = {
    "current": 'has(object.status.phase) && object.status.phase == "Succeeded"',
    "failed": 'has(object.status.phase) && object.status.phase in ["Failed", "Error"]',
    "message": 'has(object.status.message) ? object.status.message : "phase " + object.status.phase',
}


def workflow(status: dict[str, Any] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "build"}}
    if status is not None:
        obj["status"] = status
    return obj


RULES = by_kind(
    [compile_rule("health_rules[0] (argoproj.io/v1alpha1 Workflow)", "argoproj.io/v1alpha1", "Workflow", WORKFLOW)]
)


@pytest.mark.parametrize(
    ("status", "health", "words"),
    [
        ({"phase": "Succeeded"}, C, "phase Succeeded"),
        ({"phase": "Running"}, P, "phase Running"),
        ({"phase": "Failed", "message": "child 'build' failed"}, F, "child 'build' failed"),
        (None, U, "health rule health_rules[0] (argoproj.io/v1alpha1 Workflow) failed"),
    ],
    ids=["succeeded", "running-is-in-progress", "failed-with-message", "raises-is-unknown"],
)
def test_a_workflow_rule(status: dict[str, Any] | None, health: HealthStatus, words: str) -> None:
    got = assess(workflow(status), RULES)
    assert (got.status, words in got.message) == (health, True), got


def test_without_the_rule_a_running_workflow_only_exists() -> None:
    assert assess(workflow({"phase": "Running"})).message == "exists (phase Running)"


def test_the_rule_matches_the_group_not_the_version() -> None:
    obj = workflow({"phase": "Succeeded"}) | {"apiVersion": "argoproj.io/v1"}
    assert assess(obj, RULES).status is C


def test_a_non_boolean_answer_is_unknown() -> None:
    rule = compile_rule("r", "example.com/v1", "Thing", {"current": "object.status.replicas"})
    got = assess({"apiVersion": "example.com/v1", "kind": "Thing", "status": {"replicas": 2}}, by_kind([rule]))
    assert (got.status, "current gave" in got.message) == (U, True), got


def test_the_generic_layer_still_comes_first() -> None:
    obj = workflow({"phase": "Succeeded"}) | {"metadata": {"name": "b", "deletionTimestamp": "2026-01-01T00:00:00Z"}}
    assert assess(obj, RULES).message == "being deleted"


def _config(rules: list[dict[str, Any]]) -> str:

    return yaml.safe_dump(
        {
            "repo": {"url": "https://example.com/r.git", "branch": "main"},
            "environments": [{"name": "dev", "path": "env/dev", "namespace": "dev"}],
            "health_rules": rules,
        }
    )


def test_config_compiles_the_rules() -> None:
    config = parse_config(
        _config([{"api_version": "argoproj.io/v1alpha1", "kind": "Workflow", **WORKFLOW}]), source="c.yaml"
    )
    (rule,) = config.health_rules
    assert (rule.group, rule.kind, rule.name) == (
        "argoproj.io",
        "Workflow",
        "health_rules[0] (argoproj.io/v1alpha1 Workflow)",
    )


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        (
            {"api_version": "cert-manager.io/v1", "kind": "Certificate", "current": "object.status.ready =="},
            "c.yaml: health_rules[0] (cert-manager.io/v1 Certificate): current: not a valid CEL expression",
        ),
        (
            {"api_version": "a.io/v1", "kind": "X", "failed": "true"},
            "c.yaml: health_rules[0]: missing required key 'current'",
        ),
        ({"api_version": "a.io/v1", "kind": "X", "current": "true", "ready": "x"}, "unknown key 'ready'"),
    ],
    ids=["bad-expression", "no-current", "unknown-key"],
)
def test_a_bad_rule_is_an_error_naming_it(rule: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_config([rule]), source="c.yaml")
    assert error in str(caught.value)


def test_two_rules_for_one_kind_are_an_error() -> None:
    rule = {"api_version": "a.io/v1", "kind": "X", "current": "true"}
    with pytest.raises(ConfigError, match=r"health_rules\[1\]: a second rule for a.io/v2 X"):
        parse_config(_config([rule, rule | {"api_version": "a.io/v2"}]), source="c.yaml")


# --- the README's example rules load and judge as they say ---------------------------------------


def _readme_rules() -> str:
    text = (paths.REPOSITORY / "README.md").read_text()
    start = text.index("```yaml\nhealth_rules:\n") + len("```yaml\n")
    return text[start : text.index("```", start)]


def _with(api_version: str, kind: str, status: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}, "status": status}


def _cond(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def _rollout(**status: Any) -> dict[str, Any]:
    return _with("argoproj.io/v1alpha1", "Rollout", status)


def _cert(*conditions: dict[str, str]) -> dict[str, Any]:
    return _with("cert-manager.io/v1", "Certificate", {"conditions": list(conditions)} if conditions else {})


def _workflow(**status: Any) -> dict[str, Any]:
    return _with("argoproj.io/v1alpha1", "Workflow", status)


NOT_ISSUED = _cond("Ready", "False", "DoesNotExist", "Issuing certificate as Secret does not exist")
ISSUING_FAILED = _cond("Issuing", "False", "Failed", "The certificate request has failed to complete")
README_CASES: dict[str, tuple[dict[str, Any], HealthStatus, str]] = {
    "rollout-healthy": (_rollout(phase="Healthy"), C, "Healthy"),
    "rollout-paused": (_rollout(phase="Paused", message="CanaryPauseStep"), P, "CanaryPauseStep"),
    "rollout-degraded": (_rollout(phase="Degraded", message="ProgressDeadlineExceeded"), F, "ProgressDeadlineExceeded"),
    "rollout-new": (_rollout(), P, "no status yet"),
    "cert-ready": (_cert(_cond("Ready", "True", "Ready", "Certificate is up to date")), C, "Certificate is up to date"),
    "cert-failed": (_cert(NOT_ISSUED, ISSUING_FAILED), F, "Issuing certificate as Secret does not exist"),
    "cert-new": (_cert(), P, "not issued yet"),
    "workflow-running": (_workflow(phase="Running"), P, "phase Running"),
    "workflow-succeeded": (_workflow(phase="Succeeded"), C, "phase Succeeded"),
    "workflow-error": (_workflow(phase="Error", message="child failed"), F, "child failed"),
}


@pytest.mark.parametrize(("obj", "health", "message"), list(README_CASES.values()), ids=list(README_CASES))
def test_the_readme_rules(obj: dict[str, Any], health: HealthStatus, message: str) -> None:
    config = yaml.safe_load(_config([]))
    config["health_rules"] = yaml.safe_load(_readme_rules())["health_rules"]
    rules = by_kind(parse_config(yaml.safe_dump(config), source="README.md").health_rules)
    assert assess(obj, rules) == Health(health, message)
