"""The render box with the real kustomize (the control plane's kubectl) and real git repositories.

Every hostile case runs with a token planted in the agent's environment (``GIT_TOKEN``,
``KUBECONFIG``) and asserts it appears nowhere: not in the error, not in anything rendered.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_agent.adapters import renderbox
from gitops_agent.adapters.git_source import GitSource
from gitops_agent.adapters.renderer import Kustomize, environment_sources, render_environment
from gitops_agent.core.render_box import RenderLimits
from gitops_agent.errors import RenderError
from gitops_agent.model import DesiredObject
from tests.support.builders import ConfigRepo, Symlink, configmap

pytestmark = pytest.mark.integration

TOKEN = "ghp_planted0token0that0must0never0leak"
ENV = "environments/dev"
KFILE = f"{ENV}/kustomization.yaml"


@pytest.fixture(autouse=True)
def planted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The agent's own secrets, as a real deployment has them in its environment."""
    monkeypatch.setenv("GIT_TOKEN", TOKEN)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(f"token: {TOKEN}\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))


def write(root: Path, path: str, content: Any) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content if isinstance(content, str) else yaml.safe_dump_all(content))


def kustomize_env(root: Path, kustomization: dict[str, Any], **files: Any) -> None:
    write(root, KFILE, [kustomization])
    for name, content in files.items():
        write(root, f"{ENV}/{name.replace('_', '.')}", content)


def render(root: Path, box: RenderLimits | None = None) -> list[DesiredObject]:
    return render_environment(root, ENV, kustomize=Kustomize(), box=box or RenderLimits())


def refused(root: Path, match: str, box: RenderLimits | None = None) -> str:
    with pytest.raises(RenderError, match=match) as info:
        render(root, box)
    assert TOKEN not in str(info.value)
    return str(info.value)


def no_token(objects: list[DesiredObject]) -> None:
    assert TOKEN not in yaml.safe_dump_all([o.manifest for o in objects])


# --- the environment ---------------------------------------------------------------------------------


def test_an_env_file_with_a_bare_variable_name_is_refused_before_kustomize_runs(tmp_path: Path) -> None:
    kustomize_env(
        tmp_path, {"configMapGenerator": [{"name": "leak", "envs": ["app.env"]}]}, app_env="LOG=debug\nGIT_TOKEN\n"
    )
    refused(tmp_path, rf"^{ENV}/app.env: line 2: 'GIT_TOKEN' has no value")


def test_a_bare_name_in_a_generator_plugin_config_is_refused_too(tmp_path: Path) -> None:
    gen = {"apiVersion": "builtin", "kind": "ConfigMapGenerator", "metadata": {"name": "leak"}, "envs": ["app.env"]}
    kustomize_env(tmp_path, {"generators": ["gen.yaml"]}, gen_yaml=[gen], app_env="KUBECONFIG\n")
    refused(tmp_path, rf"^{ENV}/app.env: line 1: 'KUBECONFIG' has no value")


def test_kustomize_sees_none_of_the_agents_environment(tmp_path: Path) -> None:
    """Even where a scan could not look: the process itself gets a scratch environment."""
    seen = tmp_path / "seen-env"
    binary = tmp_path / "bin/kustomize"
    binary.parent.mkdir()
    binary.write_text(f"#!/bin/sh\n/usr/bin/env > {seen}\necho 'apiVersion: v1'\necho 'kind: Namespace'\n")
    binary.chmod(0o755)
    kustomize_env(tmp_path / "repo", {"resources": []})
    render_environment(tmp_path / "repo", ENV, kustomize=Kustomize(str(binary)), box=RenderLimits())
    env = dict(line.split("=", 1) for line in seen.read_text().splitlines())
    assert TOKEN not in seen.read_text()
    assert not {"GIT_TOKEN", "GITHUB_TOKEN", "KUBECONFIG", "KUBERNETES_SERVICE_HOST"} & set(env)
    assert set(env) - {"PWD", "SHLVL", "_"} <= {
        "HOME", "TMPDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "KUSTOMIZE_PLUGIN_HOME", "LANG",
        "LC_ALL", "PATH", "NO_PROXY", "no_proxy", *renderbox._PROXY_VARS,
    }  # fmt: skip
    assert Path(env["PATH"]).name == "bin" and Path(env["HOME"]).parent == Path(env["PATH"]).parent, "scratch only"
    assert env["HTTPS_PROXY"] == renderbox.CLOSED_PROXY


def test_a_real_render_of_a_generator_has_no_token(tmp_path: Path) -> None:
    kustomize_env(tmp_path, {"configMapGenerator": [{"name": "ok", "envs": ["app.env"], "literals": ["A=1"]}]})
    write(tmp_path, f"{ENV}/app.env", "LOG=debug\n")
    objects = render(tmp_path)
    assert objects[0].manifest["data"] == {"A": "1", "LOG": "debug"}
    no_token(objects)


# --- the network ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        "https://raw.githubusercontent.com/kubernetes-sigs/kustomize/master/examples/helloWorld/configMap.yaml",
        "github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0",
        "git@github.com:acme/config.git//base",
    ],
)
def test_a_remote_resource_is_refused_naming_the_kustomization(tmp_path: Path, entry: str) -> None:
    kustomize_env(tmp_path, {"resources": [entry]})
    refused(tmp_path, rf"^{KFILE}: resources entry '{entry[:20]}.*is a remote URL")
    allow_other = RenderLimits(allow_remote=("https://github.com/acme/",))
    refused(tmp_path, rf"^{KFILE}: resources entry .* render.allow_remote", allow_other)


def test_a_remote_in_a_nested_base_is_refused_naming_that_base(tmp_path: Path) -> None:
    write(tmp_path, "apps/web/kustomization.yaml", [{"resources": ["https://evil.example/x.yaml"]}])
    kustomize_env(tmp_path, {"resources": ["../../apps/web"]})
    refused(tmp_path, r"^apps/web/kustomization.yaml: resources entry 'https://evil.example/x.yaml'")


def test_an_allowed_prefix_is_fetched(tmp_path: Path) -> None:
    """Over loopback, from a local HTTP server: an allowed remote passes the scan and kustomize fetches it."""
    import http.server
    import threading

    served = tmp_path / "served"
    write(served, "cm.yaml", [configmap("remote", {"a": "1"})])
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(served))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        prefix = f"http://127.0.0.1:{server.server_address[1]}/"
        kustomize_env(tmp_path / "repo", {"resources": [f"{prefix}cm.yaml"]})
        [obj] = render(tmp_path / "repo", RenderLimits(allow_remote=(prefix,)))
        assert obj.key.name == "remote"
    finally:
        server.shutdown()


def test_without_an_allowed_prefix_kustomize_itself_cannot_reach_the_network(tmp_path: Path) -> None:
    """The second fence, for what a scan could miss: proxies on a closed port and no git on PATH."""
    kustomize_env(tmp_path, {"resources": ["https://example.com/x.yaml", "github.com/acme/config//base"]})
    env = renderbox.environment(tmp_path / "scratch", network=False)
    argv = Kustomize().command(tmp_path / ENV)
    out = tmp_path / "out"
    started = time.monotonic()
    with out.open("wb") as sink:
        done = renderbox.run(argv, cwd=tmp_path, env=env, out=sink, limits=RenderLimits(), label=KFILE)
    assert done.returncode != 0 and time.monotonic() - started < 10
    assert b"proxyconnect tcp: dial tcp 127.0.0.1:9" in done.text or b"no 'git' program on path" in done.text


# --- plugins ---------------------------------------------------------------------------------------------


def test_an_exec_plugin_is_refused_naming_its_file(tmp_path: Path) -> None:
    exec_fn = {
        "apiVersion": "example.com/v1",
        "kind": "Exfiltrate",
        "metadata": {"name": "x", "annotations": {"config.kubernetes.io/function": "exec:\n  path: ./steal.sh\n"}},
    }
    kustomize_env(tmp_path, {"resources": [], "transformers": ["steal.yaml"]}, steal_yaml=[exec_fn])
    write(tmp_path, f"{ENV}/steal.sh", f"#!/bin/sh\necho {TOKEN}\n")
    refused(tmp_path, rf"^{ENV}/steal.yaml: Exfiltrate is an exec or KRM function plugin")


def test_a_builtin_transformer_runs(tmp_path: Path) -> None:
    labels = {"apiVersion": "builtin", "kind": "LabelTransformer", "metadata": {"name": "l"}, "labels": {"t": "y"}}
    labels["fieldSpecs"] = [{"path": "metadata/labels", "create": True}]
    kustomize_env(tmp_path, {"resources": ["cm.yaml"], "transformers": ["labels.yaml"]}, labels_yaml=[labels])
    write(tmp_path, f"{ENV}/cm.yaml", [configmap("c", {})])
    [obj] = render(tmp_path)
    assert obj.manifest["metadata"]["labels"] == {"t": "y"}


# --- size and time ----------------------------------------------------------------------------------------


def big_environment(root: Path, megabytes: int) -> None:
    """``megabytes`` ConfigMaps of about 1 MiB each: a render of that size from a few small files
    (one 1 MiB value, named again by each overlay of a base)."""
    write(root, "apps/big/kustomization.yaml", [{"resources": ["cm.yaml"]}])
    write(root, "apps/big/cm.yaml", [configmap("big", {"blob": "x" * (1024 * 1024 - 200)})])
    for i in range(megabytes):
        write(root, f"apps/copy{i}/kustomization.yaml", [{"resources": ["../big"], "nameSuffix": f"-{i}"}])
    write(root, KFILE, [{"resources": [f"../../apps/copy{i}" for i in range(megabytes)]}])


def test_a_20_mb_render_is_stopped_at_the_cap(tmp_path: Path) -> None:
    big_environment(tmp_path, 20)
    message = refused(tmp_path, rf"^{KFILE}: the render's output passed the limit of 8 MiB \(render.max_output")
    assert "nothing applied" in message
    assert len(render(tmp_path, RenderLimits(max_output_bytes=32 * 1024 * 1024))) == 20, "under a higher cap it renders"


def test_a_hanging_render_and_what_it_started_are_killed(tmp_path: Path) -> None:
    child = tmp_path / "child.pid"
    binary = tmp_path / "bin/kustomize"
    binary.parent.mkdir()
    binary.write_text(f"#!/bin/sh\n/bin/sleep 60 &\necho $! > {child}\nexec /bin/sleep 60\n")
    binary.chmod(0o755)
    kustomize_env(tmp_path / "repo", {"resources": []})
    started = time.monotonic()
    with pytest.raises(RenderError, match=rf"^{KFILE}: kustomize build timed out after 1s \(render.timeout"):
        render_environment(tmp_path / "repo", ENV, kustomize=Kustomize(str(binary)), box=RenderLimits(timeout_s=1))
    assert time.monotonic() - started < 5
    pid = int(child.read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "the renderer's child outlived it"
        time.sleep(0.05)


# --- references that leave the repository -------------------------------------------------------------------


def test_a_symlink_out_of_the_repository_is_refused_naming_it(tmp_path: Path) -> None:
    write(tmp_path, "outside/cm.yaml", [configmap("stolen", {"token": TOKEN})])
    kustomize_env(tmp_path / "repo", {"resources": ["cm.yaml"]})
    (tmp_path / "repo" / ENV / "cm.yaml").symlink_to(tmp_path / "outside/cm.yaml")
    refused(tmp_path / "repo", rf"^{KFILE}: 'cm.yaml' points outside the repository")
    # read by a patch, not a reference: the link itself is named
    kustomize_env(tmp_path / "repo", {"resources": [], "patches": [{"path": "patch.yaml"}]})
    (tmp_path / "repo" / ENV / "cm.yaml").rename(tmp_path / "repo" / ENV / "patch.yaml")
    refused(tmp_path / "repo", rf"^{ENV}/patch.yaml: symlink points outside the repository")


@pytest.mark.parametrize("entry", ["../../../outside", "/etc"])
def test_a_base_outside_the_repository_is_refused(tmp_path: Path, entry: str) -> None:
    write(tmp_path, "outside/kustomization.yaml", [{"resources": []}])
    kustomize_env(tmp_path / "repo", {"resources": [entry]})
    refused(tmp_path / "repo", rf"^{KFILE}: '{entry}' points outside the repository")


# --- the export: only what the environment renders from -----------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> ConfigRepo:
    repo = ConfigRepo(tmp_path / "config")
    repo.write("apps/web/kustomization.yaml", [{"resources": ["cm.yaml"]}])
    repo.write("apps/web/cm.yaml", [configmap("web", {})])
    repo.write(
        "shared/labels/kustomization.yaml",
        [{"apiVersion": "kustomize.config.k8s.io/v1alpha1", "kind": "Component", "commonLabels": {"team": "a"}}],
    )
    repo.write("shared/linked.yaml", [configmap("linked", {})])
    repo.write("links/shared", Symlink("../shared"))
    repo.write(
        f"{ENV}/kustomization.yaml",
        [{"resources": ["../../apps/web"], "components": ["../../shared/labels"]}],
    )
    # a link kustomize does not read, through a linked directory: exported all the same
    repo.write(f"{ENV}/linked.yaml", Symlink("../../links/shared/linked.yaml"))
    repo.write("environments/prod/kustomization.yaml", [{"resources": ["secret.yaml"]}])
    repo.write("environments/prod/secret.yaml", [configmap("prod-only", {"token": TOKEN})])
    repo.write("secrets/token.txt", TOKEN)
    repo.commit("layout")
    return repo


def exported(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def test_only_the_environments_files_and_bases_are_exported(repo: ConfigRepo, tmp_path: Path) -> None:
    source = GitSource(str(repo.root), tmp_path / "cache")
    source.fetch()
    out = tmp_path / "out"
    source.export_environment(source.resolve("main"), out, ENV)
    assert exported(out) == {
        "apps/web/kustomization.yaml", "apps/web/cm.yaml", f"{ENV}/kustomization.yaml", f"{ENV}/linked.yaml",
        "links/shared", "shared/labels/kustomization.yaml", "shared/linked.yaml",
    }  # fmt: skip
    assert sorted(o.key.name for o in render_environment(out, ENV, kustomize=Kustomize())) == ["web"]
    assert environment_sources(out, ENV) == ["apps/web", ENV, "shared/labels", "shared/linked.yaml"]


def test_a_reference_to_what_was_not_exported_is_refused_naming_the_file(repo: ConfigRepo, tmp_path: Path) -> None:
    repo.write(f"{ENV}/kustomization.yaml", [{"resources": ["../../../../etc/passwd", "../../apps/web"]}])
    repo.commit("reach out")
    source = GitSource(str(repo.root), tmp_path / "cache")
    source.fetch()
    out = tmp_path / "out"
    source.export_environment(source.resolve("main"), out, ENV)
    assert "secrets/token.txt" not in exported(out)
    with pytest.raises(RenderError, match=rf"^{KFILE}: '../../../../etc/passwd' points outside the repository"):
        render_environment(out, ENV, kustomize=Kustomize())


def test_a_committed_symlink_out_of_the_repository_is_refused_naming_it(repo: ConfigRepo, tmp_path: Path) -> None:
    repo.write(f"{ENV}/passwd", Symlink("/etc/passwd"))
    repo.commit("link out")
    source = GitSource(str(repo.root), tmp_path / "cache")
    source.fetch()
    out = tmp_path / "out"
    source.export_environment(source.resolve("main"), out, ENV)
    with pytest.raises(RenderError, match=rf"^{ENV}/passwd: symlink points outside the repository"):
        render_environment(out, ENV, kustomize=Kustomize())


def test_a_plain_directory_over_the_cap_is_refused_naming_the_file_that_passed_it(tmp_path: Path) -> None:
    for i in range(3):
        write(tmp_path, f"{ENV}/part-{i}.yaml", [configmap(f"c{i}", {"blob": "x" * 400_000})])
    assert len(render_environment(tmp_path, ENV, kustomize=None, box=RenderLimits(max_output_bytes=2_000_000))) == 3
    with pytest.raises(
        RenderError, match=rf"^{ENV}/part-2.yaml: the environment's manifests pass the limit of 1000000"
    ):
        render_environment(tmp_path, ENV, kustomize=None, box=RenderLimits(max_output_bytes=1_000_000))
