"""Writing a promotion into an environment's directory: which files change, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from gitops_agent.core.promote import FieldChange, ImageChange, ImageRef, Promotion
from gitops_agent.errors import RenderError
from gitops_agent.model import ObjectKey
from gitops_agent.promotion import write_promotion

API = ObjectKey("apps", "Deployment", "", "api")
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api   # the public API
spec:
  template:
    metadata:
      annotations:
        acme.io/release: "2024.05"
    spec:
      containers:
        - name: app
          image: registry.example/api:1.0
"""


def promotion(*, fields: tuple[FieldChange, ...] = ()) -> Promotion:
    change = ImageChange("registry.example/api", ImageRef("registry.example/api", "1.1"), (), (API,))
    return Promotion("staging", "prod", (change,), fields)


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    return tmp_path


def test_a_plain_directory_gets_the_image_and_fields_in_the_files_that_set_them(tmp_path: Path) -> None:
    root = tree(tmp_path, {"env/prod/api.yaml": DEPLOYMENT, "env/prod/other.yaml": "kind: ConfigMap\n"})
    release = FieldChange(API, "/spec/template/metadata/annotations/acme.io~1release", "2024.06", "2024.05")
    assert write_promotion(root, "env/prod", promotion(fields=(release,))) == ["env/prod/api.yaml"]
    text = (root / "env/prod/api.yaml").read_text()
    assert text == DEPLOYMENT.replace("api:1.0", "api:1.1").replace('"2024.05"', '"2024.06"')


def test_a_kustomize_overlay_gets_its_images_list(tmp_path: Path) -> None:
    root = tree(tmp_path, {"env/prod/kustomization.yaml": "resources: [../base]  # shared\n"})
    assert write_promotion(root, "env/prod", promotion()) == ["env/prod/kustomization.yaml"]
    assert (root / "env/prod/kustomization.yaml").read_text() == (
        'resources: [../base]  # shared\nimages:\n  - name: registry.example/api\n    newTag: "1.1"\n'
    )


def test_a_field_set_in_no_file_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    root = tree(tmp_path, {"env/prod/api.yaml": DEPLOYMENT})
    missing = FieldChange(API, "/metadata/annotations/acme.io~1release", "2024.06", None)
    with pytest.raises(
        RenderError, match=r"env/prod: Deployment/api /metadata/annotations/acme.io~1release is set in no file"
    ):
        write_promotion(root, "env/prod", promotion(fields=(missing,)))
    assert (root / "env/prod/api.yaml").read_text() == DEPLOYMENT


def test_a_symlinked_file_is_never_written_through(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(DEPLOYMENT)
    root = tree(tmp_path / "repo", {"env/prod/readme.md": "x"})
    (root / "env/prod/api.yaml").symlink_to(outside)
    with pytest.raises(RenderError, match=r"env/prod/api\.yaml: is a symlink"):
        write_promotion(root, "env/prod", promotion())
    assert outside.read_text() == DEPLOYMENT


def test_an_environment_path_outside_the_repository_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"\.\./elsewhere: not a directory inside the repository"):
        write_promotion(tree(tmp_path / "repo", {"a.yaml": ""}), "../elsewhere", promotion())
