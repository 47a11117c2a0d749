"""Property-based tests of the pure diff over generated manifest-like objects."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gitops_agent.core.diff import changed_paths, covers, pointer_get

keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz/~.-", min_size=1, max_size=8)
scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=20,
)
objects = st.dictionaries(keys, values, min_size=1, max_size=6)


@given(objects)
def test_an_object_equals_itself(obj: dict[str, Any]) -> None:
    assert changed_paths(obj, copy.deepcopy(obj)) == []
    assert covers(obj, copy.deepcopy(obj))


@given(objects, objects)
def test_no_changed_paths_exactly_when_equal(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert (changed_paths(a, b) == []) == (a == b and _same_types(a, b))


@given(objects, objects)
def test_live_with_extra_fields_still_covers(desired: dict[str, Any], extra: dict[str, Any]) -> None:
    live = {**extra, **copy.deepcopy(desired)}  # the server adds fields, never changes ours
    assert covers(desired, live)


@given(objects, objects)
def test_every_changed_path_points_at_a_real_difference(a: dict[str, Any], b: dict[str, Any]) -> None:
    for path in changed_paths(a, b):
        assert pointer_get(a, path) != pointer_get(b, path) or _type_differs(a, b, path)


def _same_types(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return all(_same_types(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return all(_same_types(x, y) for x, y in zip(a, b, strict=True))
    return True


def _type_differs(a: Any, b: Any, path: str) -> bool:
    found_a, va = pointer_get(a, path)
    found_b, vb = pointer_get(b, path)
    return found_a and found_b and type(va) is not type(vb)
