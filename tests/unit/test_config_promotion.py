"""The optional ``promotion:`` key: which fields besides images carry a release's identity."""

from __future__ import annotations

import pytest

from gitops_agent.config import PromotionConfig, parse_config
from gitops_agent.core.promote import PromotableField
from gitops_agent.errors import ConfigError

BASE = """
repo:
  url: https://github.com/acme/config.git
environments:
  - name: dev
    path: environments/dev
    namespace: shop-dev
"""


def test_promotion_is_optional_and_empty_by_default() -> None:
    assert parse_config(BASE, source="a.yaml").promotion == PromotionConfig()


def test_promotable_fields_are_read_in_order() -> None:
    text = BASE + (
        "promotion:\n"
        "  fields:\n"
        "    - {kind: Deployment, path: /metadata/annotations/acme.io~1version}\n"
        "    - {kind: ConfigMap, path: /data/APP_VERSION}\n"
    )
    assert parse_config(text, source="a.yaml").promotion.fields == (
        PromotableField("Deployment", "/metadata/annotations/acme.io~1version"),
        PromotableField("ConfigMap", "/data/APP_VERSION"),
    )


@pytest.mark.parametrize(
    ("promotion", "message"),
    [
        ("{feilds: []}", "a.yaml: promotion: unknown key 'feilds'"),
        ("{fields: {kind: Deployment}}", "a.yaml: promotion.fields: expected a list, got a mapping"),
        ("{fields: [{kind: Deployment}]}", "a.yaml: promotion.fields[0]: missing required key 'path'"),
        ("{fields: [{kind: Deployment, path: spec.x}]}", "promotion.fields[0].path: expected a JSON pointer"),
        ("{fields: [{kind: '', path: /x}]}", "promotion.fields[0].kind: expected a non-empty string"),
    ],
    ids=["unknown-key", "not-a-list", "missing-path", "not-a-pointer", "empty-kind"],
)
def test_mistakes_name_the_key(promotion: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(BASE + f"promotion: {promotion}\n", source="a.yaml")
