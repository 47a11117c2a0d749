"""The container images a snapshot runs, read from its manifests: kept on each ledger entry, so the
status page can say which images a commit carried to an environment without rendering it again."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

#: an entry lists at most this many (a ledger entry must stay small); the status page says "and more"
MAX_IMAGES = 32
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


def snapshot_images(manifests: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """Every distinct image named by a pod spec in ``manifests`` (Pods, workload templates, a
    CronJob's job template), sorted; at most ``MAX_IMAGES``."""
    found = {image for manifest in manifests for image in _images(manifest)}
    return tuple(sorted(found))[:MAX_IMAGES]


def _images(manifest: Mapping[str, Any]) -> Iterator[str]:
    for spec in _pod_specs(manifest):
        for name in _CONTAINER_LISTS:
            containers = spec.get(name)
            if not isinstance(containers, list):
                continue
            for container in containers:
                image = container.get("image") if isinstance(container, dict) else None
                if isinstance(image, str) and image:
                    yield image


def _pod_specs(manifest: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """A Pod's spec, ``spec.template.spec`` (Deployment, StatefulSet, DaemonSet, Job, ReplicaSet and
    look-alike custom kinds) and ``spec.jobTemplate.spec.template.spec`` (CronJob)."""
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        return
    if manifest.get("kind") == "Pod":
        yield spec
    template = _dig(spec, "template", "spec")
    if template is not None:
        yield template
    job = _dig(spec, "jobTemplate", "spec", "template", "spec")
    if job is not None:
        yield job


def _dig(value: Mapping[str, Any], *keys: str) -> Mapping[str, Any] | None:
    for key in keys:
        child = value.get(key)
        if not isinstance(child, dict):
            return None
        value = child
    return value
