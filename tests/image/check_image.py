"""The image as the cluster runs it (``make test-image``; ``make image`` builds it first).

The shipped ``manifests/`` are applied to the real test control plane through an overlay that only
replaces the agent's config, as users do. Then this test plays the kubelet for one pod of the
Deployment: each volume of the pod spec becomes a directory (the config ConfigMap and the Secrets
read back from the API, emptyDirs owned by the fsGroup) mounted where the container spec says; the
ServiceAccount volume is what Kubernetes projects (a token from the TokenRequest API, ``ca.crt``
from ``kube-root-ca.crt``, the ``namespace``); the container gets the spec's args, env, user,
read-only root and dropped capabilities, and ``KUBERNETES_SERVICE_HOST``/``_PORT``. It runs with
podman (runc, host network: the API server, the git remote and the GitHub double are on loopback).

The agent in it must become ready, take the leader Lease, reconcile config-repo-template (served
by ``git http-backend`` over HTTP, the token required) into every environment, answer its probes,
``/status`` and ``/metrics``, report commit statuses to the GitHub double, apply a signed push at
once, and stop cleanly on SIGTERM — with the shipped RBAC only: any 403 the API server answered
while it ran fails the test, naming the verb and resource.

Not collected by the default ``pytest`` run (the file name does not match ``test_*.py``): it needs
podman and the image. ``make test-image`` names it explicitly.
"""

from __future__ import annotations

import base64
import json
import os
import re
import resource
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from kubernetes import client as k8s
from prometheus_client.parser import text_string_to_metric_families

from tests.controlplane import harness
from tests.controlplane.harness import free_port
from tests.doubles.github_server import GitHubServer
from tests.integration.git_http import GitHTTPServer, serve_git
from tests.support import paths
from tests.support.builders import ConfigRepo
from tests.support.polling import wait_until
from tests.support.webhooks import post_push

pytestmark = pytest.mark.integration

ROOT = paths.REPOSITORY
IMAGE = os.environ.get("IMAGE", "gitops-agent:0.1.0")
NAMESPACE = "gitops-agent"  # the base's; this test's control plane is its own
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
GIT_TOKEN = "git-token-" + uuid.uuid4().hex
WEBHOOK_SECRET = "webhook-" + uuid.uuid4().hex
# podman here: runc (crun fails on hybrid cgroups), and rlimits must be given
PODMAN = ["podman", "--runtime", "runc"]
NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)
ULIMITS = ["--ulimit", f"nofile={NOFILE[0]}:{NOFILE[1]}", "--ulimit", "nproc=32768:32768"]
SECRETS = {  # the Secrets manifests/README.md tells users to create, as this test fills them
    "gitops-agent-git": {"token": GIT_TOKEN},
    "gitops-agent-webhook": {"secret": WEBHOOK_SECRET},
}


@dataclass
class Container:
    name: str
    proc: subprocess.Popen[str]
    log_path: Path
    listen: int
    status_listen: int
    secrets: dict[str, str] = field(repr=False)  # what each is: its value

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def tail(self, n: int = 30) -> str:
        """The log's last lines, for failure messages (the agent redacts credentials; so do we)."""
        text = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        for value in self.secrets.values():
            text = text.replace(value, "<redacted>")
        return text

    def get(self, port: int, path: str) -> httpx.Response | None:
        try:
            return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
        except httpx.TransportError:
            return None


def podman_ready() -> None:
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: apt-get install podman runc (or run .ci/run)")
    found = subprocess.run([*PODMAN, "image", "exists", IMAGE], check=False)
    if found.returncode != 0:
        pytest.fail(f"the image {IMAGE} is missing: run `make image` first")


def kubectl(*args: str, kubeconfig: str, stdin: str | None = None) -> str:
    binary = harness.bin_dir() / "kubectl"
    done = subprocess.run(
        [str(binary), f"--kubeconfig={kubeconfig}", *args], input=stdin, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def agent_config(github: GitHubServer, remote_url: str, listen: int, status_listen: int) -> dict[str, Any]:
    """The shipped config (manifests/gitops-agent.yaml) with only what a site changes: the repo, its
    environments (config-repo-template's), GitHub, and ports free on this host (host network)."""
    shipped = yaml.safe_load((ROOT / "manifests/gitops-agent.yaml").read_text())
    template = yaml.safe_load((paths.CONFIG_REPO_TEMPLATE / "gitops-agent.yaml").read_text())
    config = dict(shipped)
    config["repo"] = {**shipped["repo"], "url": remote_url}
    # prod acts as its own ServiceAccount (impersonation), as manifests/examples/environment-rbac.yaml says
    config["environments"] = [
        {**env, "service_account": "deployer", "create_namespace": False} if env["name"] == "prod" else env
        for env in template["environments"]
    ]
    config["github"] = {
        "api_url": github.url,
        "repository": f"{github.owner}/{github.repo}",
        "token_file": "/var/run/secrets/gitops-agent/github/token",
    }
    config["server"] = {
        **shipped["server"],
        "listen": f"127.0.0.1:{listen}",
        "status_listen": f"127.0.0.1:{status_listen}",
    }
    return config


def render(tmp_path: Path, config: dict[str, Any], kubeconfig: str) -> list[dict[str, Any]]:
    """manifests/ through an overlay that replaces only the config, as manifests/README.md says."""
    shutil.copytree(ROOT / "manifests", tmp_path / "base")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "gitops-agent.yaml").write_text(yaml.safe_dump(config))
    kustomization = {
        "resources": ["../base"],
        "configMapGenerator": [{"name": "gitops-agent-config", "behavior": "replace", "files": ["gitops-agent.yaml"]}],
        "images": [{"name": "gitops-agent", "newName": IMAGE.rsplit(":", 1)[0], "newTag": IMAGE.rsplit(":", 1)[1]}],
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return [o for o in yaml.safe_load_all(kubectl("kustomize", str(overlay), kubeconfig=kubeconfig)) if o]


def refusals(metrics_text: str) -> int:
    """Requests the API server's authorizers did not allow (``authorization_attempts_total`` not
    ``allowed``). A refused request is not counted in ``apiserver_request_total`` (authorization
    answers before the handler that counts), so this names no rule: the agent's log does."""
    lines = [line for line in metrics_text.splitlines() if line.startswith("authorization_attempts_total{")]
    assert lines, "the API server no longer reports authorization_attempts_total: count refusals another way"
    return sum(int(float(line.rsplit(None, 1)[-1])) for line in lines if 'result="allowed"' not in line)


class Kubelet:
    """Just enough of a kubelet to give one pod of the Deployment its volumes and container."""

    def __init__(self, core: k8s.CoreV1Api, root: Path) -> None:
        self.core, self.root = core, root

    def volume(self, spec: dict[str, Any]) -> Path:
        path: Path = self.root / "volumes" / str(spec["name"])
        path.mkdir(parents=True)
        if "configMap" in spec:
            cm = self.core.read_namespaced_config_map(spec["configMap"]["name"], NAMESPACE)
            for key, value in (cm.data or {}).items():
                (path / key).write_text(value)
        elif "secret" in spec:
            try:
                secret = self.core.read_namespaced_secret(spec["secret"]["secretName"], NAMESPACE)
            except k8s.ApiException as exc:
                if exc.status == 404 and spec["secret"].get("optional"):
                    return path  # an optional Secret not created: an empty directory, as the kubelet
                raise
            for key, encoded in (secret.data or {}).items():
                (path / key).write_bytes(base64.b64decode(encoded))
        elif "emptyDir" in spec:
            os.chown(path, 10001, 10001)  # owned by the pod's fsGroup (and its user, here)
            path.chmod(0o2775)
            return path
        else:
            raise AssertionError(f"this kubelet cannot make the volume {spec}")
        for child in path.iterdir():
            child.chmod(0o644)  # the kubelet's default mode for ConfigMap and Secret files
        return path

    def service_account(self, name: str) -> Path:
        """What Kubernetes projects at /var/run/secrets/kubernetes.io/serviceaccount."""
        path = self.root / "volumes" / "kube-api-access"
        path.mkdir(parents=True)
        request = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600))
        status = self.core.create_namespaced_service_account_token(name, NAMESPACE, request).status
        assert status is not None and status.token
        (path / "token").write_text(status.token)
        root_ca = wait_until(
            lambda: _config_map_data(self.core, "kube-root-ca.crt"), timeout=60, message="kube-root-ca.crt"
        )
        (path / "ca.crt").write_text(root_ca["ca.crt"])
        (path / "namespace").write_text(NAMESPACE)
        for child in path.iterdir():
            child.chmod(0o644)
        return path


def _config_map_data(core: k8s.CoreV1Api, name: str) -> dict[str, str] | None:
    try:
        return dict(core.read_namespaced_config_map(name, NAMESPACE).data or {})
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    with GitHubServer() as server:
        yield server
    assert server.violations == []


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[tuple[GitHTTPServer, ConfigRepo]]:
    """config-repo-template as a git repository, its remote served over HTTP on loopback."""
    with serve_git(tmp_path / "served", GIT_TOKEN) as server:
        bare = server.bare("config.git")
        clone = ConfigRepo(tmp_path / "config")
        shutil.copytree(paths.CONFIG_REPO_TEMPLATE, clone.root, dirs_exist_ok=True)
        clone.commit("Config repository from config-repo-template")
        clone.git("push", "-q", str(bare), "main")
        yield server, clone


def test_the_image_runs_as_the_cluster_runs_it_with_the_shipped_rbac(
    tmp_path: Path,
    kubeconfig: str,
    api_client: k8s.ApiClient,
    github: GitHubServer,
    remote: tuple[GitHTTPServer, ConfigRepo],
) -> None:
    podman_ready()
    server, clone = remote
    core = k8s.CoreV1Api(api_client)
    listen, status_listen = free_port(), free_port()
    config = agent_config(github, f"{server.url}/config.git", listen, status_listen)
    objects = render(tmp_path, config, kubeconfig)
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (spec,) = pod["containers"]
    # the shipped config's ports are the ones the Deployment declares and probes
    shipped = yaml.safe_load((ROOT / "manifests/gitops-agent.yaml").read_text())["server"]
    declared = {p["name"]: p["containerPort"] for p in spec["ports"]}
    assert (declared["http"], declared["status"]) == (
        int(shipped["listen"].rsplit(":", 1)[1]),
        int(shipped["status_listen"].rsplit(":", 1)[1]),
    )
    probe_port = {"http": listen, "status": status_listen}

    (tmp_path / "manifests.yaml").write_text(yaml.safe_dump_all(objects))
    kubectl("apply", "--server-side", "--field-manager=gitops-agent-install", "-f", str(tmp_path / "manifests.yaml"),
            kubeconfig=kubeconfig)  # fmt: skip
    prod = next(e for e in config["environments"] if e["name"] == "prod")
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=prod["namespace"])))
    example = (ROOT / "manifests/examples/environment-rbac.yaml").read_text().replace("shop-prod", prod["namespace"])
    kubectl("apply", "--server-side", "--field-manager=platform-team", "-f", "-", kubeconfig=kubeconfig, stdin=example)
    github_secret = {"token": github.token}
    for name, data in {**SECRETS, "gitops-agent-github": github_secret}.items():
        core.create_namespaced_secret(NAMESPACE, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name=name), string_data=data))

    kubelet = Kubelet(core, tmp_path / "pod")
    pod_name = f"gitops-agent-{uuid.uuid4().hex[:10]}"
    mounts: list[str] = []
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in spec["volumeMounts"]:
        path = kubelet.volume(volumes[mount["name"]])
        mode = "ro" if mount.get("readOnly") else "rw"
        mounts += ["--volume", f"{path}:{mount['mountPath']}:{mode}"]
    assert pod["automountServiceAccountToken"] is True
    mounts += ["--volume", f"{kubelet.service_account(pod['serviceAccountName'])}:{SA_DIR}:ro"]

    env: dict[str, str] = {}
    for item in spec.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = pod_name
        else:
            raise AssertionError(f"this kubelet cannot fill the env {item}")
    api = urlsplit(yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]["server"])
    env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"] = api.hostname or "", str(api.port)

    security = {**pod["securityContext"], **spec["securityContext"]}
    assert security["readOnlyRootFilesystem"] is True and security["capabilities"]["drop"] == ["ALL"]
    assert security["allowPrivilegeEscalation"] is False and security["runAsNonRoot"] is True
    command = [
        *PODMAN, "run", "--rm", "--name", pod_name, "--hostname", pod_name, *ULIMITS, "--network", "host",
        "--read-only", "--read-only-tmpfs=false",  # writable only where the pod mounts emptyDirs
        "--cap-drop", "all", "--security-opt", "no-new-privileges",
        "--user", f"{security['runAsUser']}:{security['runAsGroup']}", "--group-add", str(security["fsGroup"]),
        *mounts, *[a for k, v in env.items() for a in ("--env", f"{k}={v}")],
        spec["image"], *spec["args"],
    ]  # fmt: skip
    assert spec["image"] == IMAGE  # the overlay's images: entry, as users set theirs

    metrics_before = refusals(harness_metrics(api_client))
    log_path = tmp_path / "agent.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)
    container = Container(
        pod_name,
        proc,
        log_path,
        listen,
        status_listen,
        {"the git token": GIT_TOKEN, "the webhook secret": WEBHOOK_SECRET, "the GitHub token": github.token},
    )
    try:
        run_checks(container, spec, probe_port, core, api_client, github, server, clone, metrics_before)
    except AssertionError as exc:
        # whatever failed, a refusal by the API server is the first thing to say
        denied = refusals(harness_metrics(api_client)) - metrics_before
        if denied:
            raise AssertionError(refused(denied, container)) from exc
        raise
    finally:
        if proc.poll() is None:
            subprocess.run([*PODMAN, "rm", "--force", "--time", "0", pod_name], capture_output=True, check=False)
            proc.wait(30)


def harness_metrics(api_client: k8s.ApiClient) -> str:
    _, url, headers, _, _ = api_client.param_serialize(
        "GET", "/metrics", header_params={"Accept": "text/plain"}, auth_settings=["BearerToken"]
    )
    response: Any = api_client.call_api("GET", url, header_params=headers)
    return str(response.read().decode())


def run_checks(
    c: Container,
    spec: dict[str, Any],
    probe_port: dict[str, int],
    core: k8s.CoreV1Api,
    api_client: k8s.ApiClient,
    github: GitHubServer,
    server: GitHTTPServer,
    clone: ConfigRepo,
    metrics_before: int,
) -> None:
    def alive() -> None:
        assert c.proc.poll() is None, f"the container exited {c.proc.returncode}:\n{c.tail()}"

    # ready: its probes, where the Deployment points the kubelet
    def probe(kind: str) -> bool:
        alive()
        http_get = spec[kind]["httpGet"]
        answer = c.get(probe_port[http_get["port"]], http_get["path"])
        return answer is not None and answer.status_code == 200

    wait_until(lambda: probe("livenessProbe"), timeout=60, message=lambda: f"alive\n{c.tail()}")
    wait_until(lambda: probe("readinessProbe"), timeout=120, message=lambda: f"ready\n{c.tail()}")

    # the leader Lease, held by this replica
    def status() -> dict[str, Any]:
        alive()
        answer = c.get(c.status_listen, "/status")
        return answer.json() if answer is not None and answer.status_code == 200 else {}

    identity = wait_until(lambda: status().get("leader") and status()["identity"], timeout=60,
                          message=lambda: f"leading\n{c.tail()}")  # fmt: skip
    assert identity.startswith(c.name)
    coordination = k8s.CoordinationV1Api(api_client)
    assert leader_holder(coordination) == identity

    # every environment of config-repo-template reconciled from the remote, its rollout Current
    head = clone.git("rev-parse", "HEAD").strip()
    names = [e["name"] for e in yaml.safe_load((paths.CONFIG_REPO_TEMPLATE / "gitops-agent.yaml").read_text())[
        "environments"]]  # fmt: skip

    def reconciled() -> dict[str, Any] | None:
        envs = {e["name"]: e for e in status().get("environments", [])}
        for env in envs.values():  # what waiting longer never fixes fails at once
            assert env.get("reason") not in ("RenderFailed", "PermissionDenied"), f"{env}\n{c.tail()}"
        done = all(
            envs.get(n, {}).get("commit") == head
            and envs[n].get("outcome") == "applied"
            and (envs[n].get("health") or {}).get("status") == "Current"
            for n in names
        )
        return envs if done else None

    envs = wait_until(reconciled, timeout=240, interval=1,
                      message=lambda: f"{json.dumps(status().get('environments'), indent=1)}\n{c.tail()}")  # fmt: skip
    assert all(envs[n]["ok"] for n in names)
    for env in yaml.safe_load((paths.CONFIG_REPO_TEMPLATE / "gitops-agent.yaml").read_text())["environments"]:
        objects = core.list_namespaced_config_map(env["namespace"]).items
        assert any(o.metadata and o.metadata.name != "kube-root-ca.crt" for o in objects), env["namespace"]
    assert any(path.endswith("git-upload-pack") and ok for _, path, ok in server.requests)
    assert all(ok for _, _, ok in server.requests), "a request to the git remote without the token"

    # /metrics on the status port
    metrics = c.get(c.status_listen, "/metrics")
    assert metrics is not None and metrics.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    assert families["gitops_agent_leader"].samples[0].value == 1
    applied = {s.labels["environment"] for s in families["gitops_agent_passes"].samples
               if s.labels.get("outcome") == "applied" and s.name.endswith("_total") and s.value >= 1}  # fmt: skip
    assert applied >= set(names)

    # commit statuses for the commit, one context per environment, at GitHub (the double)
    def reported() -> set[str]:
        return {s["context"] for s in github.statuses if s["sha"] == head and s["state"] == "success"}

    wait_until(lambda: reported() >= {f"gitops-agent/{n}" for n in names}, timeout=60,
               message=lambda: f"statuses: {github.statuses}")  # fmt: skip

    # a signed push applies at once (poll_interval is 60s)
    dev = next(e for e in yaml.safe_load((paths.CONFIG_REPO_TEMPLATE / "gitops-agent.yaml").read_text())[
        "environments"] if e["name"] == "dev")  # fmt: skip
    pushed_cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pushed"}, "data": {"by": "webhook"}}
    clone.write("environments/dev/pushed.yaml", [pushed_cm])
    kustomization = yaml.safe_load((clone.root / "environments/dev/kustomization.yaml").read_text())
    kustomization["resources"].append("pushed.yaml")
    (clone.root / "environments/dev/kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    pushed = clone.commit("a push")
    clone.git("push", "-q", str(server.root / "config.git"), "main")
    answer = post_push(f"http://127.0.0.1:{c.listen}", WEBHOOK_SECRET, pushed, timeout=10)
    assert answer.status_code in (200, 202), answer.text
    wait_until(lambda: _config_map_in(core, "pushed", dev["namespace"]), timeout=30, interval=0.5,
               message=lambda: f"the pushed ConfigMap\n{c.tail()}")  # fmt: skip

    # SIGTERM: it stops cleanly, lets the Lease go and leaves the members
    subprocess.run([*PODMAN, "kill", "--signal", "TERM", c.name], check=True, capture_output=True)
    code = c.proc.wait(90)

    # nothing was refused, start to stop: the shipped RBAC is all it needed
    denied = refusals(harness_metrics(api_client)) - metrics_before
    assert not denied, refused(denied, c)
    said = denials_said(c)
    assert not said, refused(denied, c)

    assert code == 0, c.tail()
    messages = [line.get("message", "") for line in c.lines()]
    assert messages and messages[-1] == "stopped", c.tail()
    assert "released the Lease" in messages
    assert not leader_holder(coordination)
    # the git cache's sweep at start, before the first fetch made the cache, is no failure
    housekeeping = [m for line in c.lines() if line.get("logger") == "gitops_agent.git_hygiene"
                    and line.get("level") in ("warning", "error") for m in [line.get("message")]]  # fmt: skip
    assert not housekeeping, housekeeping
    members = coordination.list_namespaced_lease(NAMESPACE, label_selector="gitops-agent.io/member=true").items
    assert [m.metadata.name for m in members if m.metadata] == []

    # no credential in its log
    text = c.log_path.read_text(errors="replace")
    token = (c.log_path.parent / "pod" / "volumes" / "kube-api-access" / "token").read_text()
    leaked = [name for name, value in {**c.secrets, "the ServiceAccount token": token}.items() if value in text]
    assert not leaked, f"in the agent's log: {leaked}"  # names, never the values


def leader_holder(coordination: k8s.CoordinationV1Api) -> str | None:
    spec = coordination.read_namespaced_lease("gitops-agent-leader", NAMESPACE).spec
    return spec.holder_identity if spec else None


def denials_said(c: Container) -> list[str]:
    """The agent's log lines about a refusal: they name the verb, resource and namespace."""
    return [
        str(line.get("message", ""))
        for line in c.lines()
        if re.search(r"forbidden|PermissionDenied|cannot \w+ resource", json.dumps(line))
    ]


def refused(denied: int, c: Container) -> str:
    return (
        f"the API server refused {denied} request(s) while the agent ran: a rule missing from manifests/ "
        f"(rbac-*.yaml). The agent said: {denials_said(c)[:5]}"
    )


def _config_map_in(core: k8s.CoreV1Api, name: str, namespace: str) -> bool:
    try:
        core.read_namespaced_config_map(name, namespace)
        return True
    except k8s.ApiException as exc:
        if exc.status == 404:
            return False
        raise


def in_image(*command: str) -> str:
    """``command`` in a throwaway container of the image, as its own user, read-only."""
    done = subprocess.run(
        [*PODMAN, "run", "--rm", *ULIMITS, "--network", "none", "--read-only", "--cap-drop", "all",
         "--entrypoint", command[0], IMAGE, *command[1:]],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{' '.join(command)} in {IMAGE}: {done.stderr}"
    return done.stdout.strip()


def test_the_image_holds_the_tools_the_tests_use() -> None:
    podman_ready()
    # the image has no coreutils (tests/image/slim-rootfs.sh): its Python says who runs it
    assert in_image("python3", "-c", "import os; print(os.getuid(), os.getgid())") == "10001 10001"
    # cel-python's google-re2 is a compiled wheel: it must load on the image's Python; and every module
    # of the agent imports from the pruned stdlib and site-packages (__main__ would run the CLI)
    every_module = (
        "import importlib, pkgutil, gitops_agent, re2, celpy; "
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(gitops_agent.__path__, 'gitops_agent.') "
        "if m.name != 'gitops_agent.__main__']; print('ok')"
    )
    assert in_image("python3", "-c", every_module) == "ok"
    # git and its https helper, and ssh through /bin/sh (as git runs GIT_SSH_COMMAND)
    assert in_image("git", "--version").startswith("git version 2.")
    assert in_image("sh", "-c", 'test -x "$(git --exec-path)/git-remote-https" && echo ok') == "ok"
    assert in_image("sh", "-c", "ssh -V 2>&1").startswith("OpenSSH_")
    # kubectl and helm at the versions the tests render with
    host_kubectl = harness.bin_dir() / "kubectl"
    host_helm = subprocess.run(
        ["bash", str(ROOT / "tests/controlplane/build-helm.sh")], capture_output=True, text=True, check=True
    ).stdout.strip()
    version = ["version", "--client", "-o", "json"]
    ours = json.loads(in_image("kubectl", *version))["clientVersion"]["gitVersion"]
    theirs = json.loads(subprocess.run([str(host_kubectl), *version], capture_output=True, text=True).stdout)
    assert ours == theirs["clientVersion"]["gitVersion"]
    helm_version = ["version", "--template", "{{.Version}}"]
    ours_helm = in_image("helm", *helm_version)
    assert ours_helm == subprocess.run([host_helm, *helm_version], capture_output=True, text=True).stdout.strip()
    assert ours_helm.startswith("v3.")
