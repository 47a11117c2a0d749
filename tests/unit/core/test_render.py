"""The pure manifest parser and snapshot validation: shapes accepted, and every way a file is refused."""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gitops_agent.core.render import ParseLimits, is_manifest_path, parse_manifests, parse_stream, validate_objects
from gitops_agent.errors import RenderError, ValidationError
from gitops_agent.model import DesiredObject, ObjectKey


def cm(name: str, **extra: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **extra}


def dump(*docs: Any) -> bytes:
    return yaml.safe_dump_all(docs).encode()


def names(objects: list[DesiredObject]) -> list[str]:
    return [o.key.name for o in objects]


def refused(data: bytes, path: str = "apps/bad.yaml", limits: ParseLimits | None = None) -> str:
    with pytest.raises(RenderError) as info:
        parse_manifests({path: data}, limits=limits or ParseLimits())
    message = str(info.value)
    assert message.startswith(path), message
    return message


# --- shapes accepted ----------------------------------------------------------------------------


def test_multi_document_file_skips_empty_documents_and_numbers_sources() -> None:
    data = b"---\n" + dump(cm("a")) + b"---\n---\n# only a comment\n---\n" + dump(cm("b"))
    objects = parse_manifests({"x.yaml": data})
    assert names(objects) == ["a", "b"]
    assert [o.source for o in objects] == ["x.yaml (document 1)", "x.yaml (document 4)"]


def test_single_document_source_is_the_bare_path() -> None:
    [obj] = parse_manifests({"apps/web/cm.yml": dump(cm("a"))})
    assert obj.source == "apps/web/cm.yml"
    assert obj.key == ObjectKey("", "ConfigMap", "", "a")


def test_list_items_are_expanded_in_order() -> None:
    data = dump({"apiVersion": "v1", "kind": "List", "items": [cm("one"), cm("two")]}, cm("three"))
    objects = parse_manifests({"list.yaml": data})
    assert names(objects) == ["one", "two", "three"]
    assert objects[1].source == "list.yaml (document 1, List item 2)"


def test_empty_list_yields_nothing() -> None:
    assert parse_manifests({"l.yaml": b"apiVersion: v1\nkind: List\nitems: []\n"}) == []


def test_order_is_sorted_path_then_document_whatever_the_input_order() -> None:
    files = {
        "b/z.yaml": dump(cm("b1"), cm("b2")),
        "a.json": b'{"apiVersion":"v1","kind":"Secret","metadata":{"name":"j"}}',
    }
    files["a/y.yml"] = dump(cm("ay"))
    first = parse_manifests(files)
    second = parse_manifests(dict(reversed(list(files.items()))))
    assert names(first) == names(second) == ["j", "ay", "b1", "b2"]


@pytest.mark.parametrize(
    "path, manifest",
    [
        ("env/kustomization.yaml", True),
        ("env/kustomization.yml", True),
        ("env/Kustomization", True),
        ("env/README.md", True),
        ("env/values.txt", True),
        ("env/app.YAML", False),
    ],
    ids=["kustomization-yaml", "kustomization-yml", "Kustomization", "markdown", "text", "upper-suffix"],
)
def test_non_manifest_files_are_ignored(path: str, manifest: bool) -> None:
    assert is_manifest_path(path) is not manifest
    expected = [] if manifest else ["a"]
    assert names(parse_manifests({path: dump(cm("a"))})) == expected


def test_timestamps_stay_strings_and_scalar_keys_become_strings() -> None:
    [obj] = parse_manifests(
        {
            "c.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
            b"data: {day: 2024-05-01, 80: http, true: yes}\n"
        }
    )
    assert obj.manifest["data"] == {"day": "2024-05-01", "80": "http", "true": True}


def test_merge_keys_are_allowed_and_explicit_keys_win() -> None:
    data = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\nx: &d {a: 1, b: 2}\ndata:\n  <<: *d\n  a: 3\n"
    [obj] = parse_manifests({"m.yaml": data})
    assert obj.manifest["data"] == {"a": 3, "b": 2}


def test_utf8_byte_order_mark_is_accepted() -> None:
    assert names(parse_manifests({"bom.yaml": b"\xef\xbb\xbf" + dump(cm("bom"))})) == ["bom"]


# --- refusals -----------------------------------------------------------------------------------


def test_malformed_yaml_names_path_document_and_line() -> None:
    message = refused(dump(cm("ok")) + b"---\napiVersion: v1\nkind: a: b\n")
    assert "document 2, line 7" in message


def test_non_mapping_document_is_refused() -> None:
    message = refused(dump(cm("ok")) + b"---\n- just\n- a list\n")
    assert "document 2" in message and "found a list" in message


def test_scalar_document_is_refused() -> None:
    assert "the text 'hello'" in refused(b"hello\n")


def test_list_with_a_non_object_item_is_refused() -> None:
    assert "List item 2" in refused(dump({"apiVersion": "v1", "kind": "List", "items": [cm("a"), "oops"]}))


def test_list_whose_items_are_not_a_list_is_refused() -> None:
    assert "'items' to be a list" in refused(b"apiVersion: v1\nkind: List\nitems: {a: 1}\n")


def test_binary_file_is_refused() -> None:
    assert "binary" in refused(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", path="env/logo.yaml")


def test_non_utf8_file_is_refused_with_its_line() -> None:
    message = refused(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caf\xe9}\n")
    assert "UTF-8" in message and "line 3" in message


def test_file_over_the_size_limit_is_refused() -> None:
    message = refused(dump(cm("a", data={"k": "x" * 200})), limits=ParseLimits(max_file_bytes=100))
    assert "over the limit of 100" in message


def test_duplicate_keys_are_refused_naming_the_key_and_line() -> None:
    data = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n"
    message = refused(data)
    assert "duplicate key 'name'" in message and "line 5" in message


def test_keys_equal_after_conversion_to_string_are_duplicates() -> None:
    assert "duplicate key '80'" in refused(b"data: {80: a, '80': b}\n")


@pytest.mark.parametrize(
    "value, tag",
    [("!!binary aGVsbG8=", "binary"), ("!!set {a, b}", "set"), ("!!omap [{a: 1}]", "omap")],
    ids=["binary", "set", "omap"],
)
def test_values_json_cannot_carry_are_refused(value: str, tag: str) -> None:
    assert tag in refused(f"apiVersion: v1\nkind: X\nmetadata: {{name: a}}\nspec: {value}\n".encode())


def test_non_scalar_keys_are_refused() -> None:
    assert "not a string" in refused(b"? [a, b]\n: 1\n")


def test_yaml_bomb_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 12):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    start = time.monotonic()
    message = refused("\n".join(lines).encode())
    assert time.monotonic() - start < 1.0
    assert "YAML bomb" in message


def test_moderate_alias_use_is_fine() -> None:
    data = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: &l {app: web}}\ndata: {x: &x hi, y: *x}\n"
    [obj] = parse_manifests({"a.yaml": data})
    assert obj.manifest["data"] == {"x": "hi", "y": "hi"}


def test_recursive_alias_is_refused() -> None:
    assert "refers to the node that contains it" in refused(b"a: &a [1, *a]\n")


def test_parse_stream_names_its_source() -> None:
    with pytest.raises(RenderError, match=r"^environments/dev: document 1"):
        parse_stream(b"a: [", "environments/dev")


# --- validation ---------------------------------------------------------------------------------


def desired(manifest: dict[str, Any], source: str) -> DesiredObject:
    return parse_manifests({source: dump(manifest)})[0]


def test_valid_objects_pass() -> None:
    validate_objects(
        parse_manifests(
            {"a.yaml": dump(cm("a"), cm("b")), "b.yaml": dump(cm("a", metadata={"name": "a", "namespace": "x"}))}
        )
    )


@pytest.mark.parametrize(
    "manifest, problem",
    [
        ({"kind": "ConfigMap", "metadata": {"name": "a"}}, "missing apiVersion"),
        ({"apiVersion": "v1", "metadata": {"name": "a"}}, "missing kind"),
        ({"apiVersion": "v1", "kind": "ConfigMap"}, "missing metadata"),
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": ["a"]}, "missing metadata"),
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "a-"}}, "no metadata.name"),
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": None}}, "no metadata.name"),
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": 3}}, "namespace must be"),
    ],
    ids=["apiVersion", "kind", "metadata", "metadata-list", "generateName", "name-null", "namespace-int"],
)
def test_incomplete_objects_are_refused_naming_file_and_document(manifest: dict[str, Any], problem: str) -> None:
    objects = parse_manifests({"apps/x.yaml": dump(cm("fine"), manifest)})
    with pytest.raises(ValidationError) as info:
        validate_objects(objects)
    assert str(info.value).startswith("apps/x.yaml (document 2): ")
    assert problem in str(info.value)


def test_duplicates_are_refused_naming_both_files() -> None:
    objects = parse_manifests({"a/one.yaml": dump(cm("same")), "b/two.yaml": dump(cm("other"), cm("same"))})
    with pytest.raises(ValidationError) as info:
        validate_objects(objects)
    message = str(info.value)
    assert "ConfigMap/same is defined twice" in message
    assert "a/one.yaml" in message and "b/two.yaml (document 2)" in message


def test_same_name_in_other_namespace_or_group_is_not_a_duplicate() -> None:
    other_group = {"apiVersion": "example.com/v1", "kind": "ConfigMap", "metadata": {"name": "a"}}
    validate_objects(
        parse_manifests({"a.yaml": dump(cm("a"), cm("a", metadata={"name": "a", "namespace": "n"}), other_group)})
    )


def test_many_problems_are_reported_together_but_capped() -> None:
    objects = parse_manifests({"a.yaml": dump(*[{"kind": "X", "metadata": {"name": f"n{i}"}} for i in range(30)])})
    with pytest.raises(ValidationError) as info:
        validate_objects(objects)
    lines = str(info.value).splitlines()
    assert len(lines) == 21 and lines[-1] == "(and 10 more)"


# --- property: what yaml.safe_dump writes, parse_manifests reads back unchanged --------------------

# YAML 1.1 treats NEL, LS and PS as line breaks, so no YAML library round-trips them in plain text;
# control characters and lone surrogates are not text a manifest carries either.
_text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=20)
_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text
_json = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4), max_leaves=12
)
_name = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?", fullmatch=True)
_manifest = st.builds(
    lambda api, kind, name, spec: {"apiVersion": api, "kind": kind, "metadata": {"name": name}, "spec": spec},
    st.sampled_from(["v1", "apps/v1", "example.com/v1alpha1"]),
    st.sampled_from(["ConfigMap", "Deployment", "Widget"]),
    _name,
    _json,
)
_files = st.dictionaries(
    st.from_regex(r"[a-z]{1,3}(/[a-z]{1,3}){0,2}\.(yaml|yml|json)", fullmatch=True),
    st.lists(_manifest, min_size=1, max_size=3),
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(_files)
def test_dumped_manifests_round_trip_in_order(files: dict[str, list[dict[str, Any]]]) -> None:
    encoded = {path: yaml.safe_dump_all(docs, allow_unicode=True).encode() for path, docs in files.items()}
    objects = parse_manifests(encoded)
    expected = [doc for path in sorted(files) for doc in files[path]]
    assert [o.manifest for o in objects] == expected
    assert [o.key for o in objects] == [ObjectKey.of(doc) for doc in expected]
