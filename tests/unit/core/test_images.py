"""The images a snapshot carries, as its ledger entry keeps them."""

from __future__ import annotations

from gitops_agent.core.images import MAX_IMAGES, snapshot_images
from gitops_agent.core.ledger import Ledger, LedgerEntry, ledger_configmap, parse_ledger


def pod(*images: str, init: str = "") -> dict[str, object]:
    spec: dict[str, object] = {"containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]}
    if init:
        spec["initContainers"] = [{"name": "init", "image": init}]
    return spec


def test_every_pod_spec_shape_is_read_and_images_are_distinct_and_sorted() -> None:
    manifests = [
        {"kind": "Deployment", "spec": {"template": {"spec": pod("web:2", "sidecar:1", init="migrate:2")}}},
        {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": pod("report:7")}}}}},
        {"kind": "Pod", "spec": pod("web:2")},
        {"kind": "ConfigMap", "data": {"image": "not-an-image:1"}},
        {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"name": "x"}, "junk"]}}}},
        {"kind": "Service", "spec": "not a map"},
    ]
    assert snapshot_images(manifests) == ("migrate:2", "report:7", "sidecar:1", "web:2")


def test_at_most_max_images_are_kept() -> None:
    many = [{"kind": "Pod", "spec": pod(f"img-{i:03}:1")} for i in range(MAX_IMAGES + 5)]
    assert len(snapshot_images(many)) == MAX_IMAGES


def test_images_round_trip_through_the_ledger_configmap_and_older_entries_have_none() -> None:
    entry = LedgerEntry("abc", "2026-01-01T00:00:00Z", "0.1.0", "applied", images=("web:2",))
    old = LedgerEntry("def", "2026-01-01T00:00:00Z", "0.1.0", "applied")
    stored = ledger_configmap("dev", "ns", Ledger((old, entry)))
    assert parse_ledger(stored).entries == (old, entry)
