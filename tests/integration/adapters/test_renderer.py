"""render_environment on real directory trees: plain YAML, and Kustomize through the built kubectl.

Tests marked ``integration`` run the kubectl that ``tests/controlplane/build.sh`` builds (it
includes kustomize); the others need nothing but a filesystem, or a stand-in script.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gitops_agent.adapters.git_source import GitSource
from gitops_agent.adapters.renderer import KUSTOMIZE_ENV_VAR, Kustomize, environment_sources, render_environment
from gitops_agent.core.render import ParseLimits, validate_objects
from gitops_agent.core.render_box import RenderLimits
from gitops_agent.errors import RenderError
from gitops_agent.model import DesiredObject
from tests.support import paths

REPO_ROOT = paths.REPOSITORY
TEMPLATE = REPO_ROOT / "config-repo-template"


@pytest.fixture(scope="session")
def kubectl() -> str:
    """The kubectl of the test control plane (built once, cached outside the checkout)."""
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "tests/controlplane/build.sh")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(
            f"tests/controlplane/build.sh failed; kubectl is needed for Kustomize tests:\n{done.stderr[-2000:]}"
        )
    return str(Path(done.stdout.strip()) / "kubectl")


def write(root: Path, path: str, content: str | dict[str, Any] | list[dict[str, Any]]) -> None:
    """Text as is, a mapping as one YAML document, a list as one document per item."""
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, list):
        content = yaml.safe_dump_all(content)
    elif isinstance(content, dict):
        content = yaml.safe_dump(content)
    target.write_text(content)


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def by_name(objects: list[DesiredObject]) -> dict[str, dict[str, Any]]:
    return {f"{o.key.kind}/{o.key.name}": o.manifest for o in objects}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A config repository with a Kustomize base (apps/web) and a dev overlay."""
    root = tmp_path / "repo"
    write(root, "apps/web/kustomization.yaml", {"resources": ["deployment.yaml", "configmap.yaml"]})
    write(root, "apps/web/configmap.yaml", [cm("web-settings", LOG_LEVEL="info")])
    write(
        root,
        "apps/web/deployment.yaml",
        [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [{"name": "web", "image": "ghcr.io/acme/web:0.1"}]},
                    },
                },
            }
        ],
    )
    write(
        root,
        "environments/dev/kustomization.yaml",
        {
            "resources": ["../../apps/web"],
            "namespace": "shop-dev",
            "images": [{"name": "ghcr.io/acme/web", "newTag": "1.2.0"}],
            "replicas": [{"name": "web", "count": 2}],
            "patches": [{"path": "log-level.yaml"}],
        },
    )
    write(root, "environments/dev/log-level.yaml", [cm("web-settings", LOG_LEVEL="debug")])
    return root


# --- Kustomize (real, through kubectl) ------------------------------------------------------------


@pytest.mark.integration
def test_base_and_overlay_render(tree: Path, kubectl: str) -> None:
    objects = render_environment(tree, "environments/dev", kustomize=Kustomize(kubectl))
    validate_objects(objects)
    rendered = by_name(objects)
    assert sorted(rendered) == ["ConfigMap/web-settings", "Deployment/web"]
    assert {o.source for o in objects} == {"environments/dev"}
    assert {o.key.namespace for o in objects} == {"shop-dev"}
    deployment = rendered["Deployment/web"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/web:1.2.0"
    assert rendered["ConfigMap/web-settings"]["data"] == {"LOG_LEVEL": "debug"}


@pytest.mark.integration
@pytest.mark.parametrize("env, replicas, level", [("dev", 1, "debug"), ("staging", 2, "info"), ("prod", 3, "warn")])
def test_the_config_repo_template_renders(kubectl: str, env: str, replicas: int, level: str) -> None:
    objects = render_environment(TEMPLATE, f"environments/{env}", kustomize=Kustomize(kubectl))
    validate_objects(objects)
    rendered = by_name(objects)
    assert rendered["Deployment/web"]["spec"]["replicas"] == replicas
    assert rendered["ConfigMap/web-settings"]["data"]["LOG_LEVEL"] == level


@pytest.mark.integration
def test_broken_overlay_is_a_render_error_with_kustomizes_words(tree: Path, kubectl: str) -> None:
    write(tree, "environments/dev/kustomization.yaml", "resources: [../../apps/web]\npatches:\n- path: nope.yaml\n")
    with pytest.raises(RenderError) as info:
        render_environment(tree, "environments/dev", kustomize=Kustomize(kubectl))
    message = str(info.value)
    assert message.startswith("environments/dev/kustomization.yaml: kustomize build failed: ")
    assert "nope.yaml" in message
    assert str(tree) not in message  # paths are shown relative to the repository


@pytest.mark.integration
def test_invalid_kustomization_yaml_is_a_render_error(tree: Path, kubectl: str) -> None:
    write(tree, "environments/dev/kustomization.yaml", "resources: [../../apps/web\n")
    # read before kustomize runs, by the agent's strict loader
    with pytest.raises(RenderError, match=r"^environments/dev/kustomization.yaml: document 1, line 2"):
        render_environment(tree, "environments/dev", kustomize=Kustomize(kubectl))


@pytest.mark.integration
def test_overlay_referencing_a_missing_base(tree: Path, kubectl: str) -> None:
    write(tree, "environments/dev/kustomization.yaml", {"resources": ["../../apps/api"]})
    match = r"^environments/dev/kustomization.yaml: '../../apps/api' does not exist in the repository"
    with pytest.raises(RenderError, match=match):
        render_environment(tree, "environments/dev", kustomize=Kustomize(kubectl))


@pytest.mark.integration
def test_patch_file_outside_the_kustomization_is_refused_by_the_load_restrictor(tree: Path, kubectl: str) -> None:
    write(tree, "shared/patch.yaml", [cm("web-settings", LOG_LEVEL="warn")])
    write(
        tree,
        "environments/dev/kustomization.yaml",
        {"resources": ["../../apps/web"], "patches": [{"path": "../../shared/patch.yaml"}]},
    )
    with pytest.raises(RenderError, match="is not in or below"):
        render_environment(tree, "environments/dev", kustomize=Kustomize(kubectl))


@pytest.mark.integration
def test_environments_at_two_commits_render_side_by_side(tree: Path, kubectl: str, tmp_path: Path) -> None:
    def run(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=tree, check=True, capture_output=True, text=True).stdout.strip()

    run("init", "-q", "-b", "main")
    run("-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-q", "--allow-empty", "-m", "x")
    run("add", "-A")
    run("-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-q", "-m", "v1")
    first = run("rev-parse", "HEAD")
    write(tree, "environments/dev/log-level.yaml", [cm("web-settings", LOG_LEVEL="error")])
    run("-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-q", "-am", "v2")
    source = GitSource(str(tree), tmp_path / "cache")
    source.fetch()
    levels = []
    for commit in (first, source.resolve("main")):
        source.export(commit, tmp_path / commit)
        objects = render_environment(tmp_path / commit, "environments/dev", kustomize=Kustomize(kubectl))
        levels.append(by_name(objects)["ConfigMap/web-settings"]["data"]["LOG_LEVEL"])
    assert levels == ["debug", "error"]


# --- Kustomize: what is refused before it runs, and finding the binary -----------------------------


def test_base_outside_the_repository_is_refused(tree: Path, tmp_path: Path) -> None:
    write(tmp_path, "elsewhere/kustomization.yaml", {"resources": ["secret.yaml"]})
    write(tree, "environments/dev/kustomization.yaml", {"resources": ["../../apps/web", "../../../elsewhere"]})
    runner = Kustomize("/bin/false")  # never reached
    with pytest.raises(RenderError, match=r"^environments/dev/kustomization.yaml: '../../../elsewhere' points outside"):
        render_environment(tree, "environments/dev", kustomize=runner)


def test_base_escaping_through_a_nested_base_is_refused(tree: Path, tmp_path: Path) -> None:
    write(tmp_path, "elsewhere/kustomization.yaml", {"resources": []})
    write(tree, "apps/web/kustomization.yaml", {"resources": ["deployment.yaml", "/" + str(tmp_path / "elsewhere")]})
    with pytest.raises(RenderError, match=r"^apps/web/kustomization.yaml: .* points outside the repository"):
        render_environment(tree, "environments/dev", kustomize=Kustomize("/bin/false"))


def test_missing_kustomize_binary(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KUSTOMIZE_ENV_VAR, raising=False)
    monkeypatch.setenv("PATH", str(tree))  # nothing there
    with pytest.raises(RenderError, match=r"^kustomize not found: install kustomize or kubectl, or set"):
        render_environment(tree, "environments/dev", kustomize=None)


def test_configured_binary_that_does_not_exist(tree: Path) -> None:
    with pytest.raises(RenderError, match=r"^kustomize not found at '/opt/nothing/kustomize'"):
        render_environment(tree, "environments/dev", kustomize=Kustomize("/opt/nothing/kustomize"))


def fake_binary(directory: Path, name: str, script: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_kustomize_binary_is_called_with_build_and_the_restrictor(tree: Path, tmp_path: Path) -> None:
    args_file = tmp_path / "args"
    binary = fake_binary(tmp_path, "kustomize", f'echo "$@" > {args_file}\necho "kind: ConfigMap"\n')
    [obj] = render_environment(tree, "environments/dev", kustomize=Kustomize(str(binary)))
    assert obj.key.kind == "ConfigMap"
    assert args_file.read_text().split() == [
        "build",
        str((tree / "environments/dev").resolve()),
        "--load-restrictor=LoadRestrictionsRootOnly",
    ]


def test_the_binary_is_found_through_the_environment_variable(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = fake_binary(tmp_path, "kubectl-1.36", 'test "$1" = kustomize && echo "kind: Secret"\n')
    monkeypatch.setenv(KUSTOMIZE_ENV_VAR, str(binary))
    [obj] = render_environment(tree, "environments/dev", kustomize=None)
    assert obj.key.kind == "Secret"


def test_a_hanging_kustomize_times_out(tree: Path, tmp_path: Path) -> None:
    binary = fake_binary(tmp_path, "kustomize", "exec /bin/sleep 30\n")  # the box has an empty PATH
    with pytest.raises(
        RenderError, match=r"^environments/dev/kustomization.yaml: kustomize build timed out after 0.5s"
    ):
        render_environment(tree, "environments/dev", kustomize=Kustomize(str(binary)), box=RenderLimits(timeout_s=0.5))


def test_kustomize_output_that_is_not_yaml_names_the_environment(tree: Path, tmp_path: Path) -> None:
    binary = fake_binary(tmp_path, "kustomize", "echo 'a: ['\n")
    with pytest.raises(RenderError, match=r"^environments/dev \(kustomize output\): document 1, line 2"):
        render_environment(tree, "environments/dev", kustomize=Kustomize(str(binary)))


# --- plain YAML directories ---------------------------------------------------------------------


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write(root, "environments/dev/b.yaml", [cm("b1"), cm("b2")])
    write(root, "environments/dev/a/z.yml", [cm("az")])
    write(root, "environments/dev/a/deep/y.json", '{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "j"}}')
    write(root, "environments/dev/README.md", "# not a manifest\n")
    write(root, "environments/dev/sub/kustomization.yaml", "resources: [x.yaml]\n")
    write(root, "environments/prod/c.yaml", [cm("prod")])
    return root


def test_plain_directory_is_read_recursively_in_path_order(plain: Path) -> None:
    objects = render_environment(plain, "environments/dev", kustomize=None)
    assert [(o.key.name, o.source) for o in objects] == [
        ("j", "environments/dev/a/deep/y.json"),
        ("az", "environments/dev/a/z.yml"),
        ("b1", "environments/dev/b.yaml (document 1)"),
        ("b2", "environments/dev/b.yaml (document 2)"),
    ]


@pytest.mark.parametrize("env_path", ["./environments//dev/", "environments/prod/../dev"])
def test_env_path_is_normalized(plain: Path, env_path: str) -> None:
    objects = render_environment(plain, env_path, kustomize=None)
    assert objects[0].source == "environments/dev/a/deep/y.json"


def test_parse_errors_name_the_repository_path(plain: Path) -> None:
    write(plain, "environments/dev/a/bad.yaml", "kind: [\n")
    with pytest.raises(RenderError, match=r"^environments/dev/a/bad.yaml: document 1, line 2"):
        render_environment(plain, "environments/dev", kustomize=None)


def test_oversized_file_is_refused_before_it_is_read(plain: Path) -> None:
    write(plain, "environments/dev/big.yaml", "# " + "x" * 2000 + "\n")
    with pytest.raises(RenderError, match=r"^environments/dev/big.yaml: file is 2003 bytes, over the limit of 1000"):
        render_environment(plain, "environments/dev", kustomize=None, limits=ParseLimits(max_file_bytes=1000))


@pytest.mark.parametrize("env_path", ["../repo", "/etc", "environments/../../x", "environments/../.."])
def test_env_paths_escaping_the_repository_are_refused(plain: Path, env_path: str) -> None:
    with pytest.raises(RenderError, match=r"environment path escapes the repository"):
        render_environment(plain, env_path, kustomize=None)


def test_env_path_that_is_a_symlink_out_is_refused(plain: Path, tmp_path: Path) -> None:
    write(tmp_path, "outside/x.yaml", [cm("stolen")])
    os.symlink(tmp_path / "outside", plain / "environments/qa")
    with pytest.raises(RenderError, match=r"^environments/qa: environment path leads outside the repository"):
        render_environment(plain, "environments/qa", kustomize=None)


def test_missing_env_path_and_a_file_env_path(plain: Path) -> None:
    with pytest.raises(RenderError, match=r"^environments/qa: environment path does not exist"):
        render_environment(plain, "environments/qa", kustomize=None)
    with pytest.raises(RenderError, match=r"^environments/prod/c.yaml: environment path is not a directory"):
        render_environment(plain, "environments/prod/c.yaml", kustomize=None)


def test_file_symlink_out_of_the_repository_is_refused(plain: Path, tmp_path: Path) -> None:
    write(tmp_path, "secret.yaml", [cm("stolen")])
    os.symlink(tmp_path / "secret.yaml", plain / "environments/dev/a/secret.yaml")
    with pytest.raises(RenderError, match=r"^environments/dev/a/secret.yaml: symlink points outside the repository"):
        render_environment(plain, "environments/dev", kustomize=None)


def test_directory_symlink_out_of_the_repository_is_refused(plain: Path, tmp_path: Path) -> None:
    write(tmp_path, "outside/x.yaml", [cm("stolen")])
    os.symlink(tmp_path / "outside", plain / "environments/dev/linked")
    with pytest.raises(RenderError, match=r"^environments/dev/linked: directory symlink points outside the repository"):
        render_environment(plain, "environments/dev", kustomize=None)


def test_symlinks_inside_the_repository_are_followed_once(plain: Path) -> None:
    os.symlink("../prod/c.yaml", plain / "environments/dev/c.yaml")
    os.symlink("..", plain / "environments/dev/a/loop")  # a cycle must not hang the walk
    names = [o.key.name for o in render_environment(plain, "environments/dev", kustomize=None)]
    assert names == ["j", "az", "b1", "b2", "prod"]


def test_broken_symlink_is_named(plain: Path) -> None:
    os.symlink("missing.yaml", plain / "environments/dev/gone.yaml")
    with pytest.raises(RenderError, match=r"^environments/dev/gone.yaml: not a regular file"):
        render_environment(plain, "environments/dev", kustomize=None)


def test_the_repository_root_can_be_an_environment(plain: Path) -> None:
    names = [o.key.name for o in render_environment(plain, ".", kustomize=None)]
    assert names == ["j", "az", "b1", "b2", "prod"]


# --- the paths an environment renders from (history's filter) -------------------------------------


def test_environment_sources_are_its_directory_its_bases_recursively_and_where_its_links_lead(tmp_path: Path) -> None:
    write(tmp_path, "environments/dev/kustomization.yaml", "resources: [../../apps/web, https://example.com/x]\n")
    write(tmp_path, "apps/web/kustomization.yaml", {"resources": ["web.yaml"], "components": ["../../shared/labels"]})
    write(tmp_path, "apps/web/web.yaml", cm("web"))
    write(tmp_path, "shared/labels/kustomization.yaml", "kind: Component\n")
    write(tmp_path, "apps/api/kustomization.yaml", "resources: []\n")  # not referenced: not a source
    write(tmp_path, "environments/prod/app.yaml", cm("app"))
    write(tmp_path, "common/settings.yaml", cm("settings"))
    (tmp_path / "environments/prod/settings.yaml").symlink_to("../../common/settings.yaml")
    assert environment_sources(tmp_path, "environments/dev") == ["apps/web", "environments/dev", "shared/labels"]
    assert environment_sources(tmp_path, "./environments/prod/") == ["common/settings.yaml", "environments/prod"]
