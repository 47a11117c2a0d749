"""Building blocks for tests of any tier: a real git config repo, manifest and config builders."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gitops_agent.config import Config, parse_config
from tests.controlplane.harness import FAIL_ANNOTATION


@dataclass(frozen=True)
class Symlink:
    target: str


class ConfigRepo:
    """A real git repository that tests commit manifests to."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "dev@example.com")
        self.git("config", "user.name", "Dev")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.root, check=True, capture_output=True, text=True).stdout

    def write(self, path: str, content: Any) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Symlink):
            target.symlink_to(content.target)
        elif isinstance(content, bytes):
            target.write_bytes(content)
        elif isinstance(content, str):
            target.write_text(content)
        else:
            target.write_text(yaml.safe_dump_all(content))

    def remove(self, path: str) -> None:
        (self.root / path).unlink()

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").strip()


def configmap(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def deployment(
    name: str, image: str = "registry.example/api:1.0", replicas: int = 1, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    """A Deployment; ``annotations`` go on its pod template (e.g. the harness's failure switch)."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, **({"annotations": annotations} if annotations else {})},
                "spec": {"containers": [{"name": "app", "image": image, "resources": {"limits": {"cpu": "1000m"}}}]},
            },
        },
    }


def crashing(name: str, deadline: int, replicas: int = 2) -> dict[str, Any]:
    """A Deployment whose pods crashloop (the harness's failure switch): its rollout fails once
    ``deadline`` (``progressDeadlineSeconds``) passes."""
    d = deployment(name, replicas=replicas, annotations={FAIL_ANNOTATION: "crashloop"})
    d["spec"]["progressDeadlineSeconds"] = deadline
    return d


def secret(name: str, value: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"password": value}}


def config_yaml(repo: ConfigRepo, names: dict[str, str], tmp_path: Path, **dev_extra: Any) -> str:
    """Two environments, dev and prod, in namespaces unique to the test; extra keys go to dev."""
    dev = {"name": "dev", "path": "environments/dev", "namespace": names["dev"], **dev_extra}
    prod = {"name": "prod", "path": "environments/prod", "namespace": names["prod"]}
    return yaml.safe_dump(
        {
            "repo": {"url": str(repo.root), "branch": "main", "cache_dir": str(tmp_path / "cache")},
            "agent": {"namespace": names["agent"]},
            "environments": [dev, prod],
        }
    )


def make_config(repo: ConfigRepo, names: dict[str, str], tmp_path: Path, **dev_extra: Any) -> Config:
    return parse_config(config_yaml(repo, names, tmp_path, **dev_extra), source="test.yaml")


def crd_scope(names: dict[str, str]) -> dict[str, Any]:
    """dev's scope when its snapshot defines a CRD: its namespace, and CustomResourceDefinitions."""
    return {"namespaces": [names["dev"]], "cluster_kinds": ["CustomResourceDefinition"]}


def widget_crd(group: str) -> dict[str, Any]:
    """A namespaced CRD of kind Widget in ``group`` that accepts any spec."""
    version = {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    names = {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced", "names": names, "versions": [version]},
    }
