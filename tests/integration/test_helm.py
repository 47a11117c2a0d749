"""Helm charts end to end on the real API server: a chart in the config repo, a chart from a Helm
repository served on loopback (packaged and indexed by the built helm), a Kustomize overlay with
``helmCharts``, chart versions promoted, and bad input that writes nothing."""

from __future__ import annotations

import functools
import hashlib
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from gitops_agent.agent import Agent
from gitops_agent.config import parse_config
from gitops_agent.present import format_history, format_status
from gitops_agent.promotion import promote
from tests.integration.conftest import AgentFactory
from tests.support.builders import ConfigRepo, configmap
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration
BUILD_CRANE = Path(__file__).parents[1] / "controlplane" / "build-crane.sh"

TEMPLATES = {
    "configmap.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
  namespace: {{ .Release.Namespace }}
data:
  mode: {{ .Values.mode | quote }}
  chart: {{ .Chart.Version | quote }}
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
  pdb: {{ .Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget" | quote }}
""",
    "deployment.yaml": """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: {{ .Release.Name }}-web}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}-web}
    spec:
      containers:
        - name: web
          image: "registry.example/web:{{ .Chart.AppVersion }}"
""",
    "test-pod.yaml": """apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-test
  annotations: {"helm.sh/hook": test}
spec:
  containers: [{name: t, image: busybox}]
""",
}


def write_chart(directory: Path, name: str, version: str, *, mode: str = "default") -> None:
    (directory / "templates").mkdir(parents=True, exist_ok=True)
    chart = {"apiVersion": "v2", "name": name, "version": version, "appVersion": "1.0.0"}
    (directory / "Chart.yaml").write_text(yaml.safe_dump(chart))
    (directory / "values.yaml").write_text(yaml.safe_dump({"mode": mode, "replicas": 1}))
    for file, text in TEMPLATES.items():
        (directory / "templates" / file).write_text(text)


def chart_files(name: str, version: str, mode: str = "default") -> dict[str, str]:
    """A chart's files as ConfigRepo.write takes them (paths relative to the chart directory)."""
    out = {
        "Chart.yaml": yaml.safe_dump({"apiVersion": "v2", "name": name, "version": version, "appVersion": "1.0.0"}),
        "values.yaml": yaml.safe_dump({"mode": mode, "replicas": 1}),
    }
    return out | {f"templates/{file}": text for file, text in TEMPLATES.items()}


class HelmRepository:
    """A directory of packaged charts and its index.yaml (made by the built helm), served on loopback."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "repo"
        self.dir.mkdir(parents=True)
        handler = functools.partial(_QuietHandler, directory=str(self.dir))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/charts/"
        self.requests: list[str] = []
        self.server.requests = self.requests  # type: ignore[attr-defined]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def helm(self, *args: str) -> None:
        env = {"HOME": str(self.root), "PATH": os.environ.get("PATH", ""), "HELM_CACHE_HOME": str(self.root / "hc")}
        subprocess.run([os.environ["GITOPS_AGENT_HELM"], *args], check=True, capture_output=True, env=env)

    def publish(self, name: str, version: str) -> str:
        """Package a chart at ``version`` and re-index; the archive's sha256."""
        source = self.root / "src" / f"{name}-{version}"
        write_chart(source, name, version)
        (self.dir / "charts").mkdir(exist_ok=True)
        self.helm("package", str(source), "-d", str(self.dir / "charts"))
        self.helm("repo", "index", str(self.dir / "charts"), "--url", self.url)
        return hashlib.sha256((self.dir / "charts" / f"{name}-{version}.tgz").read_bytes()).hexdigest()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]


@pytest.fixture
def charts_repo(tmp_path: Path) -> Iterator[HelmRepository]:
    served = HelmRepository(tmp_path / "helm")
    yield served
    served.close()


class OciRegistry:
    """``crane registry serve`` (go-containerregistry, built like the control plane) on loopback,
    charts pushed to it with the built helm."""

    def __init__(self, root: Path) -> None:
        crane = subprocess.run(["bash", str(BUILD_CRANE)], check=True, capture_output=True, text=True).stdout
        with socket.socket() as s:  # a free port: crane serves on the address it is given
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.host = f"127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [crane.strip(), "registry", "serve", "--address", self.host],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: _listening(port), timeout=30, message="the OCI registry never listened")
        self.charts = HelmRepository(root)  # packages with the built helm; its HTTP side is not used

    def push(self, name: str, version: str) -> str:
        """Package and push a chart; the archive's sha256 (what a pull returns, byte for byte)."""
        source = self.charts.root / "src" / f"{name}-{version}"
        write_chart(source, name, version)
        out = self.charts.root / "oci"
        self.charts.helm("package", str(source), "-d", str(out))
        archive = out / f"{name}-{version}.tgz"
        self.charts.helm("push", str(archive), f"oci://{self.host}/charts", "--plain-http")
        return hashlib.sha256(archive.read_bytes()).hexdigest()

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.charts.close()


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def oci_registry(tmp_path: Path) -> Iterator[OciRegistry]:
    registry = OciRegistry(tmp_path / "oci")
    yield registry
    registry.close()


def config_for(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, dev: dict[str, Any], prod: dict[str, Any]
) -> Any:
    data = {
        "repo": {"url": str(repo.root), "branch": "main", "cache_dir": str(tmp_path / "cache" / "repos")},
        "agent": {"namespace": names["agent"]},
        "environments": [
            {"name": "dev", "namespace": names["dev"], **dev},
            {"name": "prod", "namespace": names["prod"], **prod},
        ],
    }
    return parse_config(yaml.safe_dump(data), source="test.yaml")


def writes(agent: Agent, namespace: str) -> int:
    kube = agent.clusters.kube(agent.config.environments[0])
    return sum(1 for _, key in kube.writes if key.namespace == namespace)


def test_chart_in_the_repo_and_from_a_helm_repository_render_apply_and_record_provenance(
    repo: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    api_client: k8s.ApiClient,
    charts_repo: HelmRepository,
) -> None:
    for path, text in chart_files("shop", "0.3.0").items():
        repo.write(f"charts/shop/{path}", text)
    repo.write("charts/shop/values-dev.yaml", "mode: dev\n")
    repo.write("environments/prod/values-prod.yaml", "mode: prod\nreplicas: 2\n")
    repo.commit("charts")
    digest = charts_repo.publish("web", "1.2.3")
    dev = {"path": "charts/shop", "helm": {"values": ["values-dev.yaml"], "values_inline": {"replicas": 2}}}
    prod = {
        "path": "environments/prod",
        "helm": {"release": "web", "chart": {"repo": charts_repo.url, "name": "web", "version": "1.2.3"},
                 "values": ["values-prod.yaml"]},
    }  # fmt: skip
    agent = agent_factory(config_for(repo, names, tmp_path, dev, prod))

    d, p = agent.sync_all()
    assert d.ok and p.ok, (d.error, p.error)
    assert d.health is not None and d.health.status.value == "Current", d.health
    assert p.health is not None and p.health.status.value == "Current", p.health
    core, apps = k8s.CoreV1Api(api_client), k8s.AppsV1Api(api_client)
    dev_cm = core.read_namespaced_config_map("dev-settings", names["dev"]).data
    version = k8s.VersionApi(api_client).get_code().git_version
    assert dev_cm == {"mode": "dev", "chart": "0.3.0", "kube": version.split("+")[0].split("-")[0], "pdb": "true"}
    assert apps.read_namespaced_deployment("dev-web", names["dev"]).spec.replicas == 2
    assert core.read_namespaced_config_map("web-settings", names["prod"]).data["mode"] == "prod"
    assert apps.read_namespaced_deployment("web-web", names["prod"]).spec.replicas == 2
    with pytest.raises(k8s.ApiException):  # helm test hooks are left out
        core.read_namespaced_pod("web-test", names["prod"])

    history = format_history("prod", agent.history("prod"))
    assert f"chart web 1.2.3 sha256:{digest} from {charts_repo.url}" in history
    assert "chart shop 0.3.0 sha256:" in format_history("dev", agent.history("dev"))
    status = format_status(agent.status())
    assert f"prod: chart web 1.2.3 (sha256:{digest})" in status

    # pulled once: a new commit of prod renders from the cache, never fetching the archive again
    fetched = [r for r in charts_repo.requests if r.endswith(".tgz")]
    repo.write("environments/prod/values-prod.yaml", "mode: prod2\nreplicas: 2\n")
    repo.commit("prod values")
    assert agent.fetch() is None
    assert agent.reconcile(agent.config.environment("prod")).ok
    assert [r for r in charts_repo.requests if r.endswith(".tgz")] == fetched == ["/charts/web-1.2.3.tgz"]
    assert core.read_namespaced_config_map("web-settings", names["prod"]).data["mode"] == "prod2"


def test_kustomize_helm_charts_rendered_and_a_version_bump_promoted(
    repo: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    api_client: k8s.ApiClient,
    charts_repo: HelmRepository,
) -> None:
    charts_repo.publish("web", "1.0.0")
    new_digest = charts_repo.publish("web", "1.1.0")

    def overlay(version: str, mode: str, namespace: str) -> str:
        return (
            "# the web chart, pinned\n"
            "helmCharts:\n"
            "  - name: web\n"
            f"    repo: {charts_repo.url}\n"
            f"    version: {version}   # bumped by promotion\n"
            "    releaseName: shop\n"
            f"    namespace: {namespace}\n"
            "    valuesInline:\n"
            f"      mode: {mode}\n"
        )

    repo.write("environments/staging/kustomization.yaml", overlay("1.1.0", "staging", names["dev"]))
    repo.write("environments/prod/kustomization.yaml", overlay("1.0.0", "prod", names["prod"]))
    repo.commit("overlays")
    allow = {"render": {"allow_remote": [charts_repo.url]}}
    agent = agent_factory(
        config_for(
            repo, names, tmp_path, {"path": "environments/staging", **allow}, {"path": "environments/prod", **allow}
        )
    )
    staging, prod = agent.sync_all()
    assert staging.ok and prod.ok, (staging.error, prod.error)
    core = k8s.CoreV1Api(api_client)
    assert core.read_namespaced_config_map("shop-settings", names["dev"]).data["chart"] == "1.1.0"
    assert core.read_namespaced_config_map("shop-settings", names["prod"]).data["chart"] == "1.0.0"
    assert f"chart web 1.1.0 sha256:{new_digest}" in format_history("dev", agent.history("dev"))

    proposal = promote(agent, None, source="dev", target="prod", dry_run=True)
    assert proposal.promotion is not None and [c.version for c in proposal.promotion.charts] == ["1.1.0"]
    assert "web 1.1.0" in proposal.title
    changed = [
        ln for ln in proposal.diff.splitlines() if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---"))
    ]
    assert changed == ["-    version: 1.0.0   # bumped by promotion", "+    version: 1.1.0   # bumped by promotion"]

    # merged: prod runs the new chart version, its own values kept
    repo.write("environments/prod/kustomization.yaml", overlay("1.1.0", "prod", names["prod"]))
    repo.commit("promote web 1.1.0 to prod")
    assert agent.fetch() is None
    assert agent.reconcile(agent.config.environment("prod")).ok
    assert core.read_namespaced_config_map("shop-settings", names["prod"]).data == {
        "mode": "prod", "chart": "1.1.0", "kube": core.read_namespaced_config_map(
            "shop-settings", names["dev"]).data["kube"], "pdb": "true",
    }  # fmt: skip


def test_bad_chart_input_fails_the_pass_naming_chart_and_file_and_writes_nothing(
    repo: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    api_client: k8s.ApiClient,
    charts_repo: HelmRepository,
) -> None:
    charts_repo.publish("web", "1.0.0")
    repo.write("environments/prod/app.yaml", [configmap("settings", {"mode": "prod"})])
    repo.write("environments/dev/values-dev.yaml", "mode: dev\n")
    repo.commit("first")

    def dev_with(helm: dict[str, Any], **extra: Any) -> Agent:
        return agent_factory(config_for(repo, names, tmp_path, {"path": "environments/dev", "helm": helm, **extra},
                                        {"path": "environments/prod"}))  # fmt: skip

    # a version the repository does not have
    chart = {"repo": charts_repo.url, "name": "web", "version": "9.9.9"}
    agent = dev_with({"chart": chart, "values": ["values-dev.yaml"]})
    dev, prod = agent.sync_all()
    assert not dev.ok and prod.ok
    assert "chart web 9.9.9" in dev.error and "no version 9.9.9 of web" in dev.error and "1.0.0" in dev.error
    assert writes(agent, names["dev"]) == 0

    # a values file with a YAML error: named with the chart
    repo.write("environments/dev/values-dev.yaml", "mode: [dev\n")
    repo.commit("broken values")
    agent = dev_with({"chart": {**chart, "version": "1.0.0"}, "values": ["values-dev.yaml"]})
    dev, prod = agent.sync_all()
    assert not dev.ok and prod.ok
    assert "chart web 1.0.0" in dev.error and "environments/dev/values-dev.yaml" in dev.error, dev.error
    assert writes(agent, names["dev"]) == 0

    # an unreachable repository
    repo.write("environments/dev/values-dev.yaml", "mode: dev\n")
    repo.commit("values fixed")
    agent = dev_with({"chart": {**chart, "repo": "http://127.0.0.1:9/charts/", "version": "1.0.0"}})
    dev, prod = agent.sync_all()
    assert not dev.ok and prod.ok
    assert "cannot reach the repository" in dev.error and "chart web 1.0.0 from http://127.0.0.1:9/" in dev.error
    assert writes(agent, names["dev"]) == 0

    # a helmCharts entry without a version
    repo.write("environments/dev/kustomization.yaml", f"helmCharts:\n  - name: web\n    repo: {charts_repo.url}\n")
    repo.commit("unpinned")
    agent = agent_factory(
        config_for(repo, names, tmp_path, {"path": "environments/dev", "render": {"allow_remote": [charts_repo.url]}},
                   {"path": "environments/prod"})
    )  # fmt: skip
    dev, prod = agent.sync_all()
    assert not dev.ok and prod.ok
    assert "environments/dev/kustomization.yaml: helmCharts entry web" in dev.error and "no version" in dev.error
    assert writes(agent, names["dev"]) == 0
    core = k8s.CoreV1Api(api_client)
    with pytest.raises(k8s.ApiException):
        core.read_namespace(names["dev"])


def test_a_chart_from_an_oci_registry_is_pulled_verified_and_recorded(
    repo: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: AgentFactory,
    api_client: k8s.ApiClient,
    oci_registry: OciRegistry,
) -> None:
    digest = oci_registry.push("web", "2.0.0")
    repo.write("environments/dev/app.yaml", [configmap("settings", {"v": "1"})])
    repo.write("environments/prod/values-prod.yaml", "mode: oci\n")
    repo.commit("prod from an OCI registry")
    chart = {"repo": f"oci://{oci_registry.host}/charts", "name": "web", "version": "2.0.0"}
    prod = {"path": "environments/prod", "helm": {"release": "web", "chart": chart, "values": ["values-prod.yaml"]}}
    agent = agent_factory(config_for(repo, names, tmp_path, {"path": "environments/dev"}, prod))

    p = agent.sync_all("prod")[0]
    assert p.ok and p.health is not None and p.health.status.value == "Current", (p.error, p.health)
    settings = k8s.CoreV1Api(api_client).read_namespaced_config_map("web-settings", names["prod"]).data
    assert (settings["mode"], settings["chart"]) == ("oci", "2.0.0")
    history = format_history("prod", agent.history("prod"))
    assert f"chart web 2.0.0 sha256:{digest} from oci://{oci_registry.host}/charts" in history

    # a version the registry does not hold: a clear error naming the chart, nothing written
    bad = {**prod, "helm": {**prod["helm"], "chart": {**chart, "version": "9.9.9"}}}
    broken = agent_factory(config_for(repo, names, tmp_path, {"path": "environments/dev"}, bad))
    result = broken.sync_all("prod")[0]
    assert not result.ok and "web" in result.error and "9.9.9" in result.error, result.error
