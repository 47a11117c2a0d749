"""Promotion's pure core: what differs in release identity, and writing it into overlays byte-exactly.

The snapshots are real ``kustomize build`` output of config-repo-template (captured in
tests/fixtures/promote), so the objects are exactly what the agent renders.
"""

from __future__ import annotations

import difflib

import pytest
import yaml

from gitops_agent.core.promote import FieldChange, ImageChange, ImageRef, PromotableField, Promotion, plan_promotion
from gitops_agent.core.render import parse_stream
from gitops_agent.core.yaml_edit import set_fields, set_kustomize_images, set_workload_images
from gitops_agent.errors import RenderError, ValidationError
from gitops_agent.model import DesiredObject, ObjectKey
from tests.support import paths

FIXTURES = paths.FIXTURES / "promote"
TEMPLATE = paths.CONFIG_REPO_TEMPLATE
DIGEST = "sha256:4b7f2a8a8f9ad1c3b1a0e6a1c4f3d2e1b0a9f8e7d6c5b4a3928170f6e5d4c3b2"


def snapshot(name: str) -> list[DesiredObject]:
    return parse_stream((FIXTURES / f"{name}.yaml").read_bytes(), f"{name}.yaml")


def plan(source: str, target: str, *, app: str | None = None) -> Promotion:
    return plan_promotion(snapshot(source), snapshot(target), source_env=source, target_env=target, app=app)


def changed_lines(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


# --- image references ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "ref"),
    [
        ("nginx", ImageRef("nginx")),
        ("nginx:1.25", ImageRef("nginx", "1.25")),
        ("registry:5000/team/app", ImageRef("registry:5000/team/app")),
        ("registry:5000/team/app:2.0", ImageRef("registry:5000/team/app", "2.0")),
        (f"ghcr.io/acme/web@{DIGEST}", ImageRef("ghcr.io/acme/web", "", DIGEST)),
        (f"ghcr.io/acme/web:1.1.0@{DIGEST}", ImageRef("ghcr.io/acme/web", "1.1.0", DIGEST)),
    ],
    ids=["bare", "tag", "port-no-tag", "port-and-tag", "digest", "tag-and-digest"],
)
def test_image_references_split_into_name_tag_and_digest(image: str, ref: ImageRef) -> None:
    assert ImageRef.parse(image) == ref
    assert str(ref) == image


# --- what to promote ------------------------------------------------------------------------------


def test_staging_to_prod_promotes_the_images_and_nothing_environments_are_meant_to_differ_in() -> None:
    promotion = plan("staging", "prod")
    assert promotion.lines() == ["ghcr.io/acme/web: 1.0.0 -> 1.1.0", "ghcr.io/acme/worker: 1.0.0 -> 1.1.0"]
    assert promotion.fields == ()  # replicas and LOG_LEVEL differ too, and stay where they are
    web = promotion.images[0]
    assert web.objects == (ObjectKey("apps", "Deployment", "", "web"),)


def test_a_source_running_by_digest_promotes_the_digest() -> None:
    web = plan("staging-digest", "prod").images[0]
    assert web.to == ImageRef("ghcr.io/acme/web", "1.1.0", DIGEST)
    assert web.to.version == f"1.1.0@{DIGEST}"


def test_app_filter_limits_to_objects_labelled_or_named_after_the_app() -> None:
    assert plan("staging", "prod", app="web").lines() == ["ghcr.io/acme/web: 1.0.0 -> 1.1.0"]
    assert plan("staging", "prod", app="worker").lines() == ["ghcr.io/acme/worker: 1.0.0 -> 1.1.0"]


def test_app_matching_nothing_is_an_error_naming_the_label() -> None:
    with pytest.raises(ValidationError, match=r"app.kubernetes.io/name=shop or named 'shop'"):
        plan("staging", "prod", app="shop")


def test_equal_environments_promote_nothing() -> None:
    assert plan("staging", "staging").empty
    assert plan("prod", "prod").lines() == []


def test_init_containers_and_cronjobs_count_and_images_new_to_the_target_are_noted_not_promoted() -> None:
    promotion = plan("staging-digest", "prod", app="worker")
    assert promotion.lines() == ["ghcr.io/acme/worker: 1.0.0 -> 1.1.0"]
    assert promotion.notes == (
        "ghcr.io/acme/report runs in staging-digest but in none of the same objects in prod: not promoted",
    )


def test_two_versions_of_one_image_in_the_source_is_an_error_naming_both() -> None:
    objects = snapshot("staging-digest")
    cronjob = next(o for o in objects if o.key.kind == "CronJob")
    init = cronjob.manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"][0]
    init["image"] = "ghcr.io/acme/worker:0.9.0"
    with pytest.raises(ValidationError, match=r"more than one version of ghcr.io/acme/worker \(1.1.0 in"):
        plan_promotion(objects, snapshot("prod"), source_env="staging", target_env="prod")


def test_promotable_fields_follow_the_config() -> None:
    source, target = snapshot("staging"), snapshot("prod")
    source[0].manifest["data"]["APP_VERSION"] = "2024.06.1"
    target[0].manifest["data"]["APP_VERSION"] = "2024.05.3"
    rule = PromotableField("ConfigMap", "/data/APP_VERSION")
    promotion = plan_promotion(source, target, source_env="staging", target_env="prod", fields=[rule])
    assert promotion.fields == (
        FieldChange(ObjectKey("", "ConfigMap", "", "web-settings"), "/data/APP_VERSION", "2024.06.1", "2024.05.3"),
    )
    assert promotion.lines()[-1] == 'ConfigMap/web-settings /data/APP_VERSION: "2024.05.3" -> "2024.06.1"'


def test_a_promoted_secret_field_never_shows_its_value() -> None:
    change = FieldChange(ObjectKey("", "Secret", "", "s"), "/data/v", "new", "old")
    assert Promotion("a", "b", fields=(change,)).lines() == ["Secret/s /data/v: *** -> ***"]


# --- writing a Kustomize overlay ------------------------------------------------------------------

PROD_KUSTOMIZATION = (TEMPLATE / "environments" / "prod" / "kustomization.yaml").read_text()


def test_kustomize_images_change_only_the_tag_lines_and_keep_every_comment_byte_for_byte() -> None:
    text = "# Release train: promoted by pull request only.\n" + PROD_KUSTOMIZATION
    edited = set_kustomize_images(text, plan("staging", "prod").images, source="kustomization.yaml")
    assert changed_lines(text, edited) == [
        "-    newTag: 1.0.0",
        "+    newTag: 1.1.0",
        "-    newTag: 1.0.0",
        "+    newTag: 1.1.0",
    ]
    comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert comments and all(line in edited.splitlines() for line in comments)
    images = yaml.safe_load(edited)["images"]
    assert images == [
        {"name": "ghcr.io/acme/web", "newTag": "1.1.0"},
        {"name": "ghcr.io/acme/worker", "newTag": "1.1.0"},
    ]


def test_a_digest_is_added_under_the_tag_and_removed_when_the_source_has_none() -> None:
    pinned = set_kustomize_images(PROD_KUSTOMIZATION, plan("staging-digest", "prod", app="web").images, source="k.yaml")
    assert changed_lines(PROD_KUSTOMIZATION, pinned) == [
        "-    newTag: 1.0.0",
        "+    newTag: 1.1.0",
        f"+    digest: {DIGEST}",
    ]
    unpinned = set_kustomize_images(
        pinned, [ImageChange("ghcr.io/acme/web", ImageRef("ghcr.io/acme/web", "1.2.0"), (), ())], source="k.yaml"
    )
    assert changed_lines(pinned, unpinned) == ["-    newTag: 1.1.0", f"-    digest: {DIGEST}", "+    newTag: 1.2.0"]


def test_an_image_without_an_entry_gets_one_and_a_kustomization_without_images_gets_the_list() -> None:
    change = ImageChange("ghcr.io/acme/api", ImageRef("ghcr.io/acme/api", "", DIGEST), (), ())
    appended = set_kustomize_images(PROD_KUSTOMIZATION, [change], source="k.yaml")
    assert changed_lines(PROD_KUSTOMIZATION, appended) == ["+  - name: ghcr.io/acme/api", f"+    digest: {DIGEST}"]
    bare = "resources:\n  - ../../apps/api   # the API\n"
    created = set_kustomize_images(bare, [change], source="k.yaml")
    assert created == bare + f"images:\n  - name: ghcr.io/acme/api\n    digest: {DIGEST}\n"


def test_a_file_without_a_final_newline_still_gets_whole_lines() -> None:
    change = ImageChange("app", ImageRef("app", "2", DIGEST), (), ())
    edited = set_kustomize_images('images:\n  - name: app\n    newTag: "1"', [change], source="k.yaml")
    assert edited == f'images:\n  - name: app\n    newTag: "2"\n    digest: {DIGEST}\n'
    added = set_kustomize_images("resources: [a]", [change], source="k.yaml")
    assert added == f'resources: [a]\nimages:\n  - name: app\n    newTag: "2"\n    digest: {DIGEST}\n'


def test_quoted_tags_keep_their_quotes_and_tags_yaml_would_misread_get_quotes() -> None:
    text = 'images:\n  - name: app  # the app\n    newTag: "1.0"   # pinned\n  - name: other\n    newTag: v1\n'
    changes = [
        ImageChange("app", ImageRef("app", "1.1"), (), ()),
        ImageChange("other", ImageRef("other", "1.10"), (), ()),
    ]
    edited = set_kustomize_images(text, changes, source="k.yaml")
    assert (
        edited
        == 'images:\n  - name: app  # the app\n    newTag: "1.1"   # pinned\n  - name: other\n    newTag: "1.10"\n'
    )


def test_a_flow_style_images_list_is_refused_with_the_fix() -> None:
    with pytest.raises(RenderError, match=r"k\.yaml: images: is written as a flow list"):
        set_kustomize_images(
            "images: [{name: a, newTag: '1'}]\n", [ImageChange("a", ImageRef("a", "2"), (), ())], source="k.yaml"
        )


# --- writing plain manifests ----------------------------------------------------------------------

PLAIN = """\
# Deployments of the shop. Keep the image lines pinned.
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  APP_VERSION: '2024.05.3'   # promoted with the image
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  template:
    spec:
      initContainers:
      - name: migrate
        image: "registry.example/api:1.0"
      containers:
      - name: app
        image: registry.example/api:1.0   # the API itself
      - name: proxy
        image: registry.example/proxy:3.1
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: other
spec:
  template:
    spec:
      containers:
      - {name: app, image: registry.example/api:0.1}
"""


def test_plain_manifests_get_the_image_in_place_in_the_named_workloads_only() -> None:
    api = ObjectKey("apps", "Deployment", "shop-prod", "api")
    change = ImageChange("registry.example/api", ImageRef("registry.example/api", "1.1"), (), (api,))
    edited, counts = set_workload_images(PLAIN, [change], source="app.yaml")
    assert counts == {"registry.example/api": 2}
    assert changed_lines(PLAIN, edited) == [
        '-        image: "registry.example/api:1.0"',
        '+        image: "registry.example/api:1.1"',
        "-        image: registry.example/api:1.0   # the API itself",
        "+        image: registry.example/api:1.1   # the API itself",
    ]


def test_promotable_fields_are_set_where_the_file_sets_them() -> None:
    key = ObjectKey("", "ConfigMap", "", "settings")
    wanted = FieldChange(key, "/data/APP_VERSION", "2024.06.1", "2024.05.3")
    missing = FieldChange(key, "/data/OTHER", "x", None)
    edited, done = set_fields(PLAIN, [wanted, missing], source="app.yaml")
    assert done == {wanted}
    assert changed_lines(PLAIN, edited) == [
        "-  APP_VERSION: '2024.05.3'   # promoted with the image",
        "+  APP_VERSION: '2024.06.1'   # promoted with the image",
    ]


def test_a_value_that_cannot_be_edited_in_place_is_refused_not_mangled() -> None:
    text = "kind: ConfigMap\nmetadata: {name: s}\ndata:\n  V: &v 1.0\n"
    change = FieldChange(ObjectKey("", "ConfigMap", "", "s"), "/data/V", "2.0", "1.0")
    with pytest.raises(RenderError, match="cannot edit this value in place"):
        set_fields(text, [change], source="cm.yaml")
