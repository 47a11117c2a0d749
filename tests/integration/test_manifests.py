"""manifests/ against the real API server: the base renders with kubectl's kustomize, passes a
server-side dry-run, applies, re-applies without change; and the agent, impersonating the
ServiceAccount it ships, reconciles with the shipped RBAC and fails with PermissionDenied when a
rule is removed.

Each test installs the base under a unique namespace and name suffix (an overlay, as users do), so
tests never share the cluster-scoped ClusterRole and binding.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from gitops_agent.adapters.kube import KubeClient
from gitops_agent.agent import Agent
from gitops_agent.composition import build_agent
from gitops_agent.config import parse_config
from gitops_agent.model import KubeObject
from gitops_agent.reconcile import PassResult
from gitops_agent.server import parse_listen
from tests.support import paths
from tests.support.builders import ConfigRepo, configmap, deployment, secret
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

ROOT = paths.REPOSITORY
MANAGER = "gitops-agent-install"


@dataclass(frozen=True)
class Installed:
    namespace: str
    service_account: str
    cluster_role: str
    objects: tuple[KubeObject, ...]

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def one(self, kind: str) -> KubeObject:
        (found,) = [o for o in self.objects if o["kind"] == kind]
        return found


def kubectl() -> Path:
    built = subprocess.run(
        ["bash", str(ROOT / "tests/controlplane/build.sh")], capture_output=True, text=True, check=True
    )
    return Path(built.stdout.strip()) / "kubectl"


def render(tmp_path: Path, suffix: str) -> tuple[KubeObject, ...]:
    """The base through an overlay of our own: a unique namespace and name suffix."""
    shutil.copytree(ROOT / "manifests", tmp_path / "base")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    kustomization = {"resources": ["../base"], "namespace": f"gitops-agent-{suffix}", "nameSuffix": f"-{suffix}"}
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    out = subprocess.run([str(kubectl()), "kustomize", str(overlay)], capture_output=True, text=True, check=True)
    return tuple(o for o in yaml.safe_load_all(out.stdout) if o)


def apply(kube: KubeClient, objects: tuple[KubeObject, ...], *, dry_run: bool) -> list[KubeObject]:
    discovery = kube.discover()
    out = []
    for obj in objects:
        info = discovery.for_object(obj)
        assert info is not None, f"the API server does not serve {obj['apiVersion']} {obj['kind']}"
        out.append(kube.apply(obj, info, field_manager=MANAGER, dry_run=dry_run, force=False))
    return out


def install(kube: KubeClient, objects: tuple[KubeObject, ...]) -> list[KubeObject]:
    """Dry-run then apply: the Namespace first (its objects can only be dry-run once it exists)."""
    namespaces = tuple(o for o in objects if o["kind"] == "Namespace")
    rest = tuple(o for o in objects if o["kind"] != "Namespace")
    apply(kube, namespaces, dry_run=True)
    applied = apply(kube, namespaces, dry_run=False)
    apply(kube, rest, dry_run=True)
    return applied + apply(kube, rest, dry_run=False)


@pytest.fixture
def admin(kubeconfig: str) -> Iterator[KubeClient]:
    kube = KubeClient.connect(kubeconfig=kubeconfig)
    yield kube
    kube.close()


@pytest.fixture
def installed(admin: KubeClient, tmp_path: Path) -> Iterator[Installed]:
    # a letter first: "-1e3456" would be a number to kustomize (YAML 1.2), not a name suffix
    suffix = "m" + uuid.uuid4().hex[:5]
    objects = render(tmp_path, suffix)
    install(admin, objects)
    yield Installed(
        namespace=f"gitops-agent-{suffix}",
        service_account=f"gitops-agent-{suffix}",
        cluster_role=f"gitops-agent-apply-{suffix}",
        objects=objects,
    )
    discovery = admin.discover()
    for obj in objects:
        if obj["kind"] in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            info = discovery.for_object(obj)
            assert info is not None
            admin.delete(info, "", obj["metadata"]["name"])


def test_the_base_applies_cleanly_and_again_without_change(admin: KubeClient, installed: Installed) -> None:
    kinds = sorted(o["kind"] for o in installed.objects)
    assert kinds == sorted(
        ["Namespace", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "ClusterRole",
         "ClusterRoleBinding", "ConfigMap", "Deployment", "Service", "Service", "NetworkPolicy", "PodDisruptionBudget"]
    )  # fmt: skip
    discovery = admin.discover()
    before = {}
    for obj in installed.objects:
        info = discovery.for_object(obj)
        assert info is not None
        live = admin.get(info, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        assert live is not None, obj["metadata"]["name"]
        before[obj["metadata"]["name"]] = live["metadata"]["resourceVersion"]
    again = apply(admin, installed.objects, dry_run=False)
    assert {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in again} == before


def test_the_deployment_is_locked_down_and_probed(installed: Installed) -> None:
    spec = installed.one("Deployment")["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 2
    # sharded replicas: a drain leaves one, which takes the others' environments
    pdb = installed.one("PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] == 1 and pdb["selector"]["matchLabels"].items() <= pod_labels(spec).items()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", "/var/cache/gitops-agent", "/etc/gitops-agent"} <= mounts
    secrets = [v["secret"] for v in pod["volumes"] if "secret" in v]
    assert len(secrets) == 5 and all(s["optional"] for s in secrets)
    assert pod["serviceAccountName"] == installed.service_account
    # the config it mounts is one the agent accepts
    config = parse_config(installed.one("ConfigMap")["data"]["gitops-agent.yaml"], source="manifests")
    assert config.server.webhook_secret_file and config.repo.cache_dir
    assert config.repo.cache_dir.startswith("/var/cache/gitops-agent")


def test_webhooks_and_status_are_two_ports_and_only_the_webhook_port_is_open_to_all(installed: Installed) -> None:
    (container,) = installed.one("Deployment")["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config = parse_config(installed.one("ConfigMap")["data"]["gitops-agent.yaml"], source="manifests")
    assert ports == {
        "http": parse_listen(config.server.listen)[1],
        "status": parse_listen(config.server.status_listen)[1],
    }
    assert container["livenessProbe"]["httpGet"]["port"] == container["readinessProbe"]["httpGet"]["port"] == "http"
    services = {s["spec"]["ports"][0]["targetPort"] for s in installed.objects if s["kind"] == "Service"}
    assert services == {"http", "status"}  # one Service each: an Ingress to the webhook one shows no status
    rules = {r["ports"][0]["port"]: r for r in installed.one("NetworkPolicy")["spec"]["ingress"]}
    assert set(rules) == {8080, 9090} and all(len(r["ports"]) == 1 for r in rules.values())
    assert "from" not in rules[8080]  # webhooks come from wherever the ingress controller runs
    sources = rules[9090]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}} in sources
    assert all(s.get("namespaceSelector") is not None for s in sources)


@pytest.fixture
def target(admin: KubeClient) -> Iterator[str]:
    name = f"shop-{uuid.uuid4().hex[:6]}"
    yield name
    admin.delete(admin.discover().lookup("", "Namespace"), "", name)  # type: ignore[arg-type]


def test_the_agent_needs_exactly_the_shipped_rbac(
    admin: KubeClient, installed: Installed, target: str, kubeconfig: str, tmp_path: Path
) -> None:
    repo = ConfigRepo(tmp_path / "config")
    repo.write("environments/dev/app.yaml", [configmap("settings", {"mode": "dev"}), deployment("web")])
    repo.commit("first")
    config = parse_config(
        yaml.safe_dump(
            {
                "repo": {"url": str(repo.root), "cache_dir": str(tmp_path / "cache")},
                "agent": {"namespace": installed.namespace},
                "environments": [{"name": "dev", "path": "environments/dev", "namespace": target}],
            }
        ),
        source="test.yaml",
    )
    agent = build_agent(config, kubeconfig=kubeconfig, impersonate=installed.user)  # as its ServiceAccount
    try:
        (first,) = agent.sync_all()
        assert first.ok, first.error
        assert first.outcome == "applied"

        remove_rules(admin, installed.cluster_role, group="apps")
        repo.write("environments/dev/app.yaml", [configmap("settings", {"mode": "dev"}), deployment("web", "x:2")])
        repo.commit("new image")
        refused = sync_until_failed(agent)
    finally:
        agent.close()
    assert refused.reason == "PermissionDenied", refused.error
    assert "deployments.apps" in refused.error and installed.user in refused.error
    assert refused.error.endswith("(grant the agent's identity this permission in its RBAC)")


def pod_labels(deployment_spec: KubeObject) -> dict[str, str]:
    return dict(deployment_spec["template"]["metadata"]["labels"])


def token_kubeconfig(admin_kubeconfig: str, api_client: k8s.ApiClient, installed: Installed, path: Path) -> str:
    """A kubeconfig that authenticates as the agent's ServiceAccount itself (a bound token), as the
    agent in its pod does: impersonating another identity then needs the shipped RBAC."""
    request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
    token = k8s.CoreV1Api(api_client).create_namespaced_service_account_token(
        installed.service_account, installed.namespace, request
    )
    config = yaml.safe_load(Path(admin_kubeconfig).read_text())
    config["users"] = [{"name": "agent", "user": {"token": token.status.token}}]
    for context in config["contexts"]:
        context["context"]["user"] = "agent"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def environment_rbac(namespace: str) -> tuple[KubeObject, ...]:
    """manifests/examples/environment-rbac.yaml, for ``namespace``."""
    text = (ROOT / "manifests/examples/environment-rbac.yaml").read_text().replace("shop-prod", namespace)
    return tuple(o for o in yaml.safe_load_all(text) if o)


def test_an_environment_with_a_service_account_is_bounded_by_its_role(
    admin: KubeClient,
    installed: Installed,
    target: str,
    kubeconfig: str,
    api_client: k8s.ApiClient,
    tmp_path: Path,
) -> None:
    core = k8s.CoreV1Api(api_client)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=target)))
    install(admin, environment_rbac(target))
    repo = ConfigRepo(tmp_path / "config")
    repo.write("environments/prod/app.yaml", [configmap("settings", {"mode": "prod"}), secret("db", "hunter2")])
    repo.commit("with a Secret the Role does not allow")
    env = {"name": "prod", "path": "environments/prod", "namespace": target, "service_account": "deployer"}
    config = parse_config(
        yaml.safe_dump(
            {
                "repo": {"url": str(repo.root), "cache_dir": str(tmp_path / "cache")},
                "agent": {"namespace": installed.namespace},
                "environments": [{**env, "create_namespace": False}],
            }
        ),
        source="test.yaml",
    )
    as_agent = token_kubeconfig(kubeconfig, api_client, installed, tmp_path / "agent-kubeconfig")
    agent = build_agent(config, kubeconfig=as_agent)
    try:
        (refused,) = agent.sync_all()
        assert refused.reason == "PermissionDenied", refused.error
        deployer = f"system:serviceaccount:{target}:deployer"
        assert f'User "{deployer}" cannot list resource "secrets"' in refused.error, refused.error
        assert f'in the namespace "{target}"' in refused.error and f"acts as {deployer}" in refused.error
        assert "hunter2" not in refused.error
        assert agent.clusters.kube(config.environments[0]).writes == deque(), "nothing of the snapshot is written"
        assert core.list_namespaced_config_map(target).items == [] or all(
            cm.metadata.name == "kube-root-ca.crt" for cm in core.list_namespaced_config_map(target).items
        )

        repo.write("environments/prod/app.yaml", [configmap("settings", {"mode": "prod"})])
        repo.commit("without it")
        (applied,) = agent.sync_all()
        assert applied.outcome == "applied", applied.error
        assert core.read_namespaced_config_map("settings", target).data == {"mode": "prod"}
    finally:
        agent.close()


def remove_rules(admin: KubeClient, cluster_role: str, *, group: str) -> None:
    info = admin.discover().lookup("rbac.authorization.k8s.io", "ClusterRole")
    assert info is not None
    role = admin.get(info, "", cluster_role)
    assert role is not None
    role["rules"] = [r for r in role["rules"] if group not in r["apiGroups"]]
    admin.replace(role, info, field_manager=MANAGER)


def sync_until_failed(agent: Agent, timeout_s: float = 15) -> PassResult:
    """RBAC changes reach the authorizer within moments, not at once: pass until refused."""
    passes: list[PassResult] = []

    def refused() -> PassResult | None:
        (result,) = agent.sync_all()
        passes.append(result)
        return None if result.ok else result

    return wait_until(
        refused, timeout=timeout_s, interval=0.5,
        message=lambda: f"a pass refused for lack of permission ({len(passes)} passes, the last {passes[-1].outcome})",
    )  # fmt: skip
