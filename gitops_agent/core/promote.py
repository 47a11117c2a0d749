"""What a promotion carries from one environment to the next: the release's identity, nothing else.

Pure. Two rendered snapshots come in (the source environment's and the target's); out comes what
differs in *release identity*: container images (name -> tag and/or digest) and the fields the
config marks as promotable. What environments are meant to differ in (replicas, log levels,
resources) is never compared, so it never travels.

Why rendered snapshots rather than the overlays' text: an image can be set in a base, in an
overlay's ``images:`` list or by a patch; only the rendered objects say what actually runs. And the
same artefact must go: when the source runs ``web@sha256:…``, the digest is what is promoted, not
a tag that could be re-pushed.

Objects are paired across environments by group, kind and name (not namespace: each environment
usually has its own). Images are compared by name, because that is how Kustomize's ``images:``
list, the usual place a promotion writes to, addresses them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gitops_agent.core.diff import pointer_get
from gitops_agent.core.helm import ChartRef
from gitops_agent.core.secret_mask import MASK
from gitops_agent.errors import ValidationError
from gitops_agent.model import DesiredObject, KubeObject, ObjectKey

APP_LABEL = "app.kubernetes.io/name"
#: where each workload kind keeps its pod template's spec
POD_SPEC_PATHS: Mapping[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_LISTS = ("initContainers", "containers")

#: (group, kind, name): how an object is recognised in another environment
Identity = tuple[str, str, str]


@dataclass(frozen=True)
class PromotableField:
    """A field besides container images that carries a release's identity (a version annotation,
    an app-version env var): ``gitops-agent promote`` copies it from one environment to the next."""

    kind: str
    path: str  # JSON pointer into the rendered object


@dataclass(frozen=True, order=True)
class ImageRef:
    """A container image reference split into repository name, tag and digest."""

    name: str
    tag: str = ""
    digest: str = ""

    @classmethod
    def parse(cls, image: str) -> ImageRef:
        """``host:5000/team/app:1.2@sha256:…`` -> name ``host:5000/team/app``, tag ``1.2``, digest.
        The tag is what follows the last ``:`` after the last ``/`` (a registry port is not a tag)."""
        rest, _, digest = image.strip().partition("@")
        colon = rest.rfind(":")
        if colon > rest.rfind("/"):
            return cls(rest[:colon], rest[colon + 1 :], digest)
        return cls(rest, "", digest)

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def version(self) -> str:
        """The part that names the release: ``1.2.0``, ``1.2.0@sha256:…``, ``@sha256:…``, or ``(untagged)``."""
        text = str(self)[len(self.name) :].removeprefix(":")
        return text or "(untagged)"


@dataclass(frozen=True)
class ImageUse:
    """One container of one workload running one image."""

    key: ObjectKey
    container: str
    ref: ImageRef


@dataclass(frozen=True)
class ImageChange:
    """Promote image ``name`` to ``to`` (what the source runs) in the target's ``objects``."""

    name: str
    to: ImageRef
    current: tuple[ImageRef, ...]  # what the target runs now (more than one when it is mixed)
    objects: tuple[ObjectKey, ...]  # the target's objects that run the image

    @property
    def before(self) -> str:
        return ", ".join(r.version for r in self.current)


@dataclass(frozen=True)
class FieldChange:
    """Set the promotable field ``path`` of the target's object ``key`` to the source's value."""

    key: ObjectKey
    path: str
    value: Any
    current: Any

    def shown(self, value: Any) -> str:
        """The value as a PR or a terminal may show it: never a Secret's."""
        return MASK if self.key.kind == "Secret" else json.dumps(value, sort_keys=True, default=str)


@dataclass(frozen=True)
class ChartChange:
    """Set the version of chart ``name`` in the target to the source's (``helmCharts`` entries)."""

    name: str
    before: str
    version: str


def chart_changes(source: Sequence[ChartRef], target: Sequence[ChartRef]) -> tuple[ChartChange, ...]:
    """Charts both environments render whose versions differ, by name (a chart only one of them
    renders is not release identity the other has: nothing to carry)."""
    running = {c.name: c.version for c in target}
    return tuple(
        ChartChange(c.name, running[c.name], c.version)
        for c in source
        if c.name in running and running[c.name] != c.version
    )


@dataclass(frozen=True)
class Promotion:
    """Everything that differs in release identity between two environments, and what was left out."""

    source: str
    target: str
    images: tuple[ImageChange, ...] = ()
    fields: tuple[FieldChange, ...] = ()
    notes: tuple[str, ...] = ()  # what was not promoted, and why
    charts: tuple[ChartChange, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.images and not self.fields and not self.charts

    def lines(self) -> list[str]:
        """One line per change: ``ghcr.io/acme/web: 1.0.0 -> 1.1.0``, ``chart web: 1.2.0 -> 1.3.0``."""
        out = [f"chart {c.name}: {c.before} -> {c.version}" for c in self.charts]
        out += [f"{c.name}: {c.before} -> {c.to.version}" for c in self.images]
        out += [f"{f.key} {f.path}: {f.shown(f.current)} -> {f.shown(f.value)}" for f in self.fields]
        return out


# --- reading objects ------------------------------------------------------------------------------


def identity(key: ObjectKey) -> Identity:
    return (key.group, key.kind, key.name)


def belongs_to_app(obj: DesiredObject, app: str | None) -> bool:
    """``--app NAME``: objects labelled ``app.kubernetes.io/name=NAME``, or named NAME."""
    if app is None:
        return True
    labels = (obj.manifest.get("metadata") or {}).get("labels") or {}
    return labels.get(APP_LABEL) == app or obj.key.name == app


def pod_spec(manifest: KubeObject) -> Mapping[str, Any] | None:
    """The pod spec of a workload (Deployment, StatefulSet, DaemonSet, Job, CronJob), else None."""
    path = POD_SPEC_PATHS.get(str(manifest.get("kind")))
    node: Any = manifest
    for step in path or ():
        node = node.get(step) if isinstance(node, Mapping) else None
    return node if path and isinstance(node, Mapping) else None


def image_uses(objects: Iterable[DesiredObject]) -> Iterator[ImageUse]:
    """Every container and init container image of every workload, in snapshot order."""
    for obj in objects:
        spec = pod_spec(obj.manifest)
        if spec is None:
            continue
        for list_name in CONTAINER_LISTS:
            for container in spec.get(list_name) or ():
                if isinstance(container, Mapping) and isinstance(container.get("image"), str):
                    yield ImageUse(obj.key, str(container.get("name", "")), ImageRef.parse(container["image"]))


# --- the plan -------------------------------------------------------------------------------------


def plan_promotion(
    source: Sequence[DesiredObject],
    target: Sequence[DesiredObject],
    *,
    source_env: str,
    target_env: str,
    app: str | None = None,
    fields: Sequence[PromotableField] = (),
) -> Promotion:
    """What must change in ``target`` so that it runs the release ``source`` runs.

    Raises ValidationError when ``app`` matches nothing in the source, or when the source runs two
    versions of one image (a promotion could not say which one to take).
    """
    chosen = [o for o in source if belongs_to_app(o, app)]
    if app is not None and not chosen:
        raise ValidationError(
            f"environment {source_env}: no object is labelled {APP_LABEL}={app} or named {app!r}; check the --app name"
        )
    names = {identity(o.key) for o in chosen}
    in_target = [o for o in target if identity(o.key) in names]
    images, notes = _image_changes(chosen, in_target, target, source_env, target_env)
    changes = _field_changes(chosen, in_target, fields)
    return Promotion(source_env, target_env, images, changes, notes)


def _image_changes(
    source: Sequence[DesiredObject],
    target: Sequence[DesiredObject],
    whole_target: Sequence[DesiredObject],
    source_env: str,
    target_env: str,
) -> tuple[tuple[ImageChange, ...], tuple[str, ...]]:
    wanted = _one_version_each(image_uses(source), source_env)
    running = _by_name(image_uses(target))
    everywhere = _by_name(image_uses(whole_target))
    changes: list[ImageChange] = []
    notes: list[str] = []
    for name, ref in sorted(wanted.items()):
        uses = running.get(name, [])
        if not uses:
            notes.append(f"{name} runs in {source_env} but in none of the same objects in {target_env}: not promoted")
            continue
        current = tuple(sorted({u.ref for u in uses}))
        if current == (ref,):
            continue
        keys = tuple(sorted({u.key for u in uses}))
        changes.append(ImageChange(name, ref, current, keys))
        others = sorted({str(u.key) for u in everywhere.get(name, []) if u.key not in keys})
        if others:
            notes.append(f"{name} also runs in {', '.join(others)} in {target_env}; an images: entry changes those too")
    return tuple(changes), tuple(notes)


def _one_version_each(uses: Iterable[ImageUse], env: str) -> dict[str, ImageRef]:
    """Image name -> the one reference the environment runs; two versions of one image is an error."""
    found: dict[str, dict[ImageRef, list[ObjectKey]]] = {}
    for use in uses:
        found.setdefault(use.ref.name, {}).setdefault(use.ref, []).append(use.key)
    out: dict[str, ImageRef] = {}
    for name, refs in found.items():
        if len(refs) > 1:
            where = "; ".join(f"{r.version} in {', '.join(sorted({str(k) for k in keys}))}" for r, keys in refs.items())
            raise ValidationError(
                f"environment {env}: runs more than one version of {name} ({where}); promote one app at a time "
                "with --app, or make the versions agree first"
            )
        out[name] = next(iter(refs))
    return out


def _by_name(uses: Iterable[ImageUse]) -> dict[str, list[ImageUse]]:
    out: dict[str, list[ImageUse]] = {}
    for use in uses:
        out.setdefault(use.ref.name, []).append(use)
    return out


def _field_changes(
    source: Sequence[DesiredObject], target: Sequence[DesiredObject], fields: Sequence[PromotableField]
) -> tuple[FieldChange, ...]:
    """Promotable fields set in the source whose value differs in the paired target object."""
    by_identity = {identity(o.key): o for o in source}
    out: list[FieldChange] = []
    for rule in fields:
        for obj in target:
            if obj.key.kind != rule.kind or identity(obj.key) not in by_identity:
                continue
            found, value = pointer_get(by_identity[identity(obj.key)].manifest, rule.path)
            if not found:
                continue
            _, current = pointer_get(obj.manifest, rule.path)
            if current != value:
                out.append(FieldChange(obj.key, rule.path, value, current))
    return tuple(sorted(out, key=lambda f: (f.key, f.path)))
