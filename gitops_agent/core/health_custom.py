"""User-defined health rules: per kind, CEL expressions over the live object (``object``) for
Failed, InProgress and Current, and one for the message (config ``health_rules``, README).

It lives in the core on purpose: cel-python (``celpy``) is pure computation, parsing and
evaluating an expression over data with no I/O, clock or threads, so a rule is as pure as the
kind rules it stands beside. Compiling happens once, at config load, where a bad expression is an
error naming the rule; evaluating can still raise (a field the object lacks, a non-boolean
answer), and then the object is Unknown with the error: a rule never crashes a pass.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel

from gitops_agent.core.health_rules import CURRENT, FAILED, IN_PROGRESS, UNKNOWN, Rule
from gitops_agent.model import Health, HealthStatus, KubeObject, api_group

#: the expression keys of a rule, in the order they are tried: a failure must not be hidden by a
#: broad in-progress expression, and Current is what is left once neither holds
VERDICTS: tuple[tuple[str, HealthStatus], ...] = (
    ("failed", FAILED),
    ("in_progress", IN_PROGRESS),
    ("current", CURRENT),
)


@functools.cache
def _env() -> celpy.Environment:
    """Made on the first rule compiled: building CEL's parser costs a third of a second or more,
    which every CLI run would pay at import though few configs have rules."""
    return celpy.Environment()


class RuleError(ValueError):
    """An expression that does not compile; the message names the rule and the key."""


@dataclass(frozen=True)
class CustomRule:
    """One kind's rule. ``name`` says where it came from (``health_rules[0] (argoproj.io/Rollout)``)."""

    name: str
    group: str
    kind: str
    expressions: tuple[tuple[str, str], ...]  # (key, source), for messages and equality
    _programs: dict[str, Any] = field(compare=False, repr=False, default_factory=dict)

    def __call__(self, obj: KubeObject) -> Health:
        return evaluate(self, obj)


def compile_rule(name: str, api_version: str, kind: str, expressions: Mapping[str, str | None]) -> CustomRule:
    """The rule, its expressions compiled; ``RuleError`` for the first that does not."""
    programs: dict[str, Any] = {}
    for key, source in expressions.items():
        if source is None:
            continue
        try:
            programs[key] = _env().program(_env().compile(source))
        except Exception as exc:  # celpy's parse errors share no base class but Exception
            raise RuleError(f"{name}: {key}: not a valid CEL expression: {_first_line(exc)}") from None
    kept = tuple((k, v) for k, v in expressions.items() if v is not None)
    return CustomRule(name, api_group(api_version), kind, kept, programs)


def by_kind(rules: Iterable[CustomRule]) -> dict[tuple[str, str], Rule]:
    """The rules as ``core.health.assess`` takes them: by (group, kind)."""
    return {(r.group, r.kind): r for r in rules}


def evaluate(rule: CustomRule, obj: KubeObject) -> Health:
    """The first verdict whose expression holds; InProgress when none does (the object has not got
    there yet); Unknown, with the error, when an expression raises or answers other than a bool."""
    try:
        activation = {"object": json_to_cel(dict(obj))}
        for key, status in VERDICTS:
            program = rule._programs.get(key)
            if program is not None and _holds(key, program.evaluate(activation)):
                return Health(status, _message(rule, activation) or f"{key.replace('_', ' ')} ({rule.name})")
        return Health(IN_PROGRESS, _message(rule, activation) or f"no expression of {rule.name} holds yet")
    except Exception as exc:  # a rule is user code: whatever it raises is that object's Unknown
        return Health(UNKNOWN, f"health rule {rule.name} failed: {_first_line(exc)}")


def _holds(key: str, value: Any) -> bool:
    if not isinstance(value, celtypes.BoolType):
        raise TypeError(f"{key} gave {type(value).__name__}, not a bool")
    return bool(value)


def _message(rule: CustomRule, activation: dict[str, Any]) -> str:
    program = rule._programs.get("message")
    return "" if program is None else str(program.evaluate(activation))


def _first_line(exc: BaseException) -> str:
    text = str(exc.args[0] if exc.args else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
