"""The checked-in extract of GitHub's API description is exactly what ``derive_subset`` selects:
every operation and webhook it lists, every component they reference (transitively), nothing else."""

from __future__ import annotations

import copy
import json

from tests.doubles.github_api.derive_subset import OPERATIONS, PROVENANCE, SUBSET, WEBHOOKS, derive, dumps
from tests.doubles.github_server import SPEC_PATH


def without_provenance(description: dict[str, object]) -> dict[str, object]:
    stripped = copy.deepcopy(description)
    stripped["info"].pop(PROVENANCE)  # type: ignore[attr-defined]
    return stripped


def test_the_double_reads_the_checked_in_copy() -> None:
    assert SPEC_PATH == SUBSET and SUBSET.is_file()


def test_the_subset_is_closed_and_minimal_under_the_script() -> None:
    subset = json.loads(SUBSET.read_text())
    derived = derive(subset)
    assert without_provenance(derived) == without_provenance(subset)
    assert {(m, p) for p, item in subset["paths"].items() for m in item} == set(OPERATIONS)
    assert list(subset["x-webhooks"]) == list(WEBHOOKS)


def test_the_file_is_in_the_scripts_format() -> None:
    assert dumps(json.loads(SUBSET.read_text())) == SUBSET.read_text()
