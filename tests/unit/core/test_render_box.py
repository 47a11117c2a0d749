"""The pure rules of the render box: what a kustomization may reference before kustomize runs."""

from __future__ import annotations

import io

import pytest
import yaml

from gitops_agent.config import parse_config
from gitops_agent.core.render import load_documents, parse_stream_file
from gitops_agent.core.render_box import (
    Kustomization,
    check_env_file,
    check_kustomization,
    check_plugin_documents,
    join_inside,
    looks_remote,
    prefix_problem,
    read_kustomization,
    remote_allowed,
)
from gitops_agent.errors import ConfigError, RenderError

KFILE = "environments/dev/kustomization.yaml"
ACME = ("https://github.com/acme/",)


def kustomization(text: str) -> Kustomization:
    return read_kustomization(yaml.safe_load(text))


@pytest.mark.parametrize(
    "entry",
    [
        "https://raw.githubusercontent.com/acme/x/main/cm.yaml",
        "http://10.0.0.1/x.yaml",
        "github.com/acme/config//base?ref=v1",
        "git@github.com:acme/config.git//base",
        "ssh://git@github.com/acme/config//base",
        "git::https://github.com/acme/config//base",
        "gh:acme/config//base",
        "example.org:8443/repo",
        "file:///etc/passwd",
    ],
)
def test_remote_forms_kustomize_would_fetch_are_recognised(entry: str) -> None:
    assert looks_remote(entry)


@pytest.mark.parametrize("entry", ["../../apps/web", "base", "deployment.yaml", "./sub/dir", "v1.2/file.yaml"])
def test_local_paths_are_not_remote(entry: str) -> None:
    assert not looks_remote(entry)


def test_a_remote_reference_is_refused_unless_under_an_allowed_prefix() -> None:
    k = kustomization("resources:\n- ../../apps/web\n- https://github.com/evil/x//base\n")
    assert k.local == ("../../apps/web",)
    with pytest.raises(RenderError, match=rf"^{KFILE}: resources entry 'https://github.com/evil/x//base' is a remote"):
        check_kustomization(KFILE, k, ())
    with pytest.raises(RenderError, match=r"render\.allow_remote"):
        check_kustomization(KFILE, k, ACME)
    check_kustomization(KFILE, kustomization("resources: ['https://github.com/acme/x//base?ref=v1']"), ACME)


def test_an_entry_that_looks_like_a_host_but_exists_in_the_repository_is_local() -> None:
    k = read_kustomization({"resources": ["config.example/base"]}, exists=lambda e: e == "config.example/base")
    assert (k.local, k.remote) == (("config.example/base",), ())
    assert read_kustomization({"resources": ["config.example/base"]}).remote == (("resources", "config.example/base"),)


@pytest.mark.parametrize(
    "entry",
    [
        "https://github.com/acme-evil/x",  # the prefix ends at a '/', so no neighbour matches
        "https://github.com/acme/../evil/x",
        "https://github.com/acme/%2e%2e/evil/x",
        "https://github.com.evil.example/acme/x",
    ],
)
def test_an_allowed_prefix_cannot_be_stretched(entry: str) -> None:
    assert not remote_allowed(entry, ACME)


@pytest.mark.parametrize("key", ["bases", "components", "generators", "transformers", "validators"])
def test_every_reference_key_is_scanned_for_remotes(key: str) -> None:
    with pytest.raises(RenderError, match=rf"^{KFILE}: {key} entry"):
        check_kustomization(KFILE, kustomization(f"{key}: [github.com/evil/x]"), ())


def test_a_helm_chart_repository_is_a_remote() -> None:
    k = kustomization("helmCharts:\n- name: redis\n  repo: https://charts.bitnami.com/bitnami\n")
    with pytest.raises(RenderError, match=r"helmCharts entry 'https://charts.bitnami.com/bitnami'"):
        check_kustomization(KFILE, k, ACME)


@pytest.mark.parametrize(
    "prefix, problem",
    [
        ("https://github.com/acme", "end the prefix with '/'"),
        ("github.com/acme/", "starting with https://"),
        ("https:///", "with a host"),
        ("https://github.com/acme/../", "no '..'"),
    ],
)
def test_allow_remote_prefixes_are_validated(prefix: str, problem: str) -> None:
    assert problem in (prefix_problem(prefix) or "")
    text = (
        f"repo: {{url: /x}}\nrender: {{allow_remote: [{prefix!r}]}}\nenvironments: [{{name: a, path: a, namespace: a}}]"
    )
    with pytest.raises(ConfigError, match=r"render.allow_remote\[0\]"):
        parse_config(text, source="t.yaml")


def test_render_limits_default_and_are_overridden_per_environment() -> None:
    config = parse_config(
        """
repo: {url: /x}
render: {allow_remote: ["https://github.com/acme/"], timeout: 2m}
environments:
- {name: dev, path: d, namespace: d}
- {name: prod, path: p, namespace: p, render: {allow_remote: [], max_output: 512Ki}}
""",
        source="t.yaml",
    )
    dev, prod = config.environments
    assert (dev.render.allow_remote, dev.render.timeout_s, dev.render.max_output_bytes) == (ACME, 120, 8 * 1024**2)
    assert (prod.render.allow_remote, prod.render.timeout_s, prod.render.max_output_bytes) == ((), 120, 512 * 1024)
    default = parse_config("repo: {url: /x}\nenvironments: [{name: a, path: a, namespace: a}]", source="t")
    limits = default.render
    assert (limits.allow_remote, limits.timeout_s, limits.max_output_bytes) == ((), 120, 8 << 20)


@pytest.mark.parametrize("size", ["8MB", "0", "-1", "lots", True])
def test_max_output_must_be_a_size(size: object) -> None:
    text = f"repo: {{url: /x}}\nrender: {{max_output: {size!r}}}\nenvironments: [{{name: a, path: a, namespace: a}}]"
    with pytest.raises(ConfigError, match=r"render.max_output: expected a size"):
        parse_config(text, source="t.yaml")


# --- plugins ---------------------------------------------------------------------------------------


def test_an_exec_function_plugin_is_refused() -> None:
    exec_fn = {
        "apiVersion": "example.com/v1",
        "kind": "Exfiltrate",
        "metadata": {"name": "x", "annotations": {"config.kubernetes.io/function": "exec:\n  path: ./steal.sh\n"}},
    }
    with pytest.raises(RenderError, match=r"^environments/dev/fn.yaml: Exfiltrate is an exec or KRM function plugin"):
        check_plugin_documents("environments/dev/fn.yaml", [exec_fn])


def test_a_legacy_plugin_is_refused_and_builtins_pass() -> None:
    builtin = {"apiVersion": "builtin", "kind": "LabelTransformer", "metadata": {"name": "l"}, "labels": {"a": "b"}}
    check_plugin_documents("t.yaml", [builtin])
    legacy = {"apiVersion": "someteam.example.com/v1", "kind": "SedTransformer", "metadata": {"name": "s"}}
    with pytest.raises(RenderError, match=r"^t.yaml \(document 2\): SedTransformer .* is not a built-in"):
        check_plugin_documents("t.yaml", [builtin, legacy])


def test_an_inline_plugin_is_checked_with_the_kustomization() -> None:
    k = kustomization(
        "transformers:\n- |\n  apiVersion: fn.example/v1\n  kind: Run\n  metadata:\n    name: r\n"
        "    annotations:\n      config.kubernetes.io/function: |\n        container:\n          image: evil\n"
    )
    assert k.plugin_paths == ()
    with pytest.raises(RenderError, match=rf"^{KFILE} \(transformers, inline\): Run is an exec or KRM function"):
        check_kustomization(KFILE, k, ())


def test_plugin_paths_are_kept_for_the_shell_to_read() -> None:
    k = kustomization("generators: [gen.yaml, ../../shared/gens]\ntransformers: [labels.yaml]")
    assert k.plugin_paths == ("gen.yaml", "../../shared/gens", "labels.yaml")


# --- env files --------------------------------------------------------------------------------------


def test_env_files_of_generators_are_found() -> None:
    k = kustomization(
        "configMapGenerator:\n- name: a\n  envs: [a.env, b.env]\nsecretGenerator:\n- name: s\n  env: s.env\n"
    )
    assert k.env_files == ("a.env", "b.env", "s.env")
    gen = read_kustomization({"apiVersion": "builtin", "kind": "ConfigMapGenerator", "envs": ["g.env"]})
    assert gen.env_files == ("g.env",)


def test_a_bare_variable_name_in_an_env_file_is_refused_naming_file_line_and_variable() -> None:
    check_env_file("e/app.env", "# comment\n\nA=1\nB=\n")
    with pytest.raises(RenderError, match=r"^e/app.env: line 3: 'GIT_TOKEN' has no value; write GIT_TOKEN=VALUE"):
        check_env_file("e/app.env", "A=1\n# x\n  GIT_TOKEN  \n")


# --- paths and streams -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "directory, entry, joined",
    [
        ("environments/dev", "../../apps/web", "apps/web"),
        ("environments/dev", "./base/", "environments/dev/base"),
        ("environments/dev", "../../..", None),
        ("environments/dev", "/etc", None),
        (".", "..", None),
    ],
)
def test_join_inside(directory: str, entry: str, joined: str | None) -> None:
    assert join_inside(directory, entry) == joined


def test_a_stream_is_parsed_from_a_file_as_from_bytes() -> None:
    doc = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\n"
    data = doc % b"a" + b"---\n" + doc % b"b"
    objects = parse_stream_file(io.BytesIO(data), "out")
    assert [(o.key.name, o.source) for o in objects] == [("a", "out (document 1)"), ("b", "out (document 2)")]
    with pytest.raises(RenderError, match=r"^out: document 1, line 2, column 11: duplicate key 'a'"):
        parse_stream_file(io.BytesIO(b"a: 1\nb: {a: 1, a: 2}\n"), "out")


def test_a_kustomization_bomb_is_refused_when_loaded() -> None:
    bomb = b"a: &a [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n".encode() for i in range(7)
    )
    with pytest.raises(RenderError, match="YAML bomb"):
        load_documents(bomb, KFILE)
