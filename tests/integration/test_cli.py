"""The command line on the real control plane (kwok playing the kubelet): ``sync``'s exit codes and
progress lines while it follows a rollout, ``--timeout``, an Ingress no controller serves, and
``history`` listing only the commits that changed what an environment renders."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gitops_agent.cli import EXIT_OK, EXIT_ROLLOUT_FAILED, main
from tests.support.builders import ConfigRepo, config_yaml, configmap, crashing, deployment

pytestmark = pytest.mark.integration
PROGRESS = re.compile(r"^dev: rollout (\d+)/(\d+) Current, (\d+)s of (\d+)s(; waiting for .*)?$")


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}]},
    }


def ingress(name: str) -> dict[str, Any]:
    backend = {"service": {"name": name, "port": {"number": 80}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
            "spec": {"defaultBackend": backend}}  # fmt: skip


def config_file(repo: ConfigRepo, names: dict[str, str], tmp_path: Path) -> list[str]:
    path = tmp_path / "gitops-agent.yaml"
    path.write_text(config_yaml(repo, names, tmp_path))
    return ["--config", str(path)]


def progress_lines(err: str) -> list[re.Match[str]]:
    return [m for line in err.splitlines() if (m := PROGRESS.match(line))]


def test_sync_exits_3_when_the_rollout_fails_and_says_how_it_goes_meanwhile(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, kubeconfig: str, capfd: pytest.CaptureFixture[str]
) -> None:
    repo.write("environments/dev/app.yaml", [crashing("api", deadline=12), configmap("settings", {})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {})])
    repo.commit()
    code = main(["sync", "--env", "dev", "--kubeconfig", kubeconfig, *config_file(repo, names, tmp_path)])
    out, err = capfd.readouterr()
    assert code == EXIT_ROLLOUT_FAILED, out + err
    assert "rollout: Failed: api: 0/2 ready, CrashLoopBackOff in container app" in out
    lines = progress_lines(err)
    assert len(lines) >= 2, err  # at the first look, and again before 10s had passed
    first = lines[0]
    assert (first[1], first[2], first[3]) == ("1", "2", "0")  # the ConfigMap is Current at once
    # the first look may come before the Deployment controller has made the new ReplicaSet
    waiting = rf"waiting for Deployment/{names['dev']}/api: 0/2 replicas (updated|available)$"
    assert re.search(waiting, first.string), first.string
    seconds = [int(m[3]) for m in lines]
    assert all(b - a <= 10 for a, b in itertools.pairwise(seconds)), seconds
    assert first[4] == "42"  # the default wait: the progress deadline plus 30s


def test_sync_timeout_overrides_the_wait(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, kubeconfig: str, capfd: pytest.CaptureFixture[str]
) -> None:
    repo.write("environments/dev/app.yaml", [crashing("api", deadline=600)])
    repo.write("environments/prod/app.yaml", [configmap("settings", {})])
    repo.commit()
    args = ["sync", "--env", "dev", "--timeout", "3s", "-o", "json", "--kubeconfig", kubeconfig]
    code = main([*args, *config_file(repo, names, tmp_path)])
    out, err = capfd.readouterr()
    assert code == EXIT_ROLLOUT_FAILED, out + err
    (dev,) = json.loads(out)["results"]
    assert dev["ok"] and dev["health"]["status"] == "Failed"
    assert dev["health"]["message"].startswith("timed out after 3s: ")
    assert "CrashLoopBackOff" in dev["health"]["message"]
    assert progress_lines(err)[0][4] == "3"


def test_an_ingress_no_controller_serves_does_not_hold_the_rollout(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, kubeconfig: str, capfd: pytest.CaptureFixture[str]
) -> None:
    repo.write("environments/dev/app.yaml", [deployment("web"), service("web"), ingress("web")])
    repo.write("environments/prod/app.yaml", [configmap("settings", {})])
    repo.commit()
    config = config_file(repo, names, tmp_path)
    code = main(["sync", "--env", "dev", "--timeout", "60s", "--kubeconfig", kubeconfig, *config])
    out, err = capfd.readouterr()
    assert code == EXIT_OK, out + err
    assert "rollout: Current: healthy (3 objects)" in out
    assert main(["health", "--env", "dev", "-o", "json", "--kubeconfig", kubeconfig, *config]) == EXIT_OK
    health = {o["kind"]: o for o in json.loads(capfd.readouterr().out)["objects"]}
    assert health["Ingress"]["status"] == "Current"
    assert "no load balancer address published" in health["Ingress"]["message"]


def test_history_lists_the_commits_that_changed_what_the_environment_renders(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, kubeconfig: str, capfd: pytest.CaptureFixture[str]
) -> None:
    repo.write("environments/dev/kustomization.yaml", "resources: [../../apps/web]\n")
    repo.write("apps/web/kustomization.yaml", "resources: [web.yaml]\n")
    repo.write("apps/web/web.yaml", [configmap("web", {"v": "1"})])
    repo.write("apps/api/api.yaml", [configmap("api", {"v": "1"})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"v": "1"})])
    base = repo.commit("web and api apps; dev uses web")
    repo.write("environments/prod/app.yaml", [configmap("settings", {"v": "2"})])
    repo.commit("prod: settings v2")
    repo.write("README.md", "docs\n")
    repo.commit("docs")
    config = [*config_file(repo, names, tmp_path), "--kubeconfig", kubeconfig]
    assert main(["sync", "--env", "dev", "--no-wait", *config]) == EXIT_OK
    first = repo.git("rev-parse", "HEAD").strip()
    repo.write("apps/web/web.yaml", [configmap("web", {"v": "2"})])
    bump = repo.commit("web v2")
    repo.write("apps/api/api.yaml", [configmap("api", {"v": "2"})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"v": "3"})])
    repo.commit("api v2, prod settings v3")
    assert main(["sync", "--env", "dev", "--no-wait", *config]) == EXIT_OK
    capfd.readouterr()

    assert main(["history", "--env", "dev", "-o", "json", *config]) == EXIT_OK
    latest, earliest = json.loads(capfd.readouterr().out)["history"]
    assert [c["sha"] for c in earliest["commits"]] == [base]  # not prod's commit, not the docs
    assert (earliest["since"], earliest["paths"]) == ("", ["apps/web", "environments/dev"])
    assert [c["sha"] for c in latest["commits"]] == [bump] and latest["since"] == first
    assert latest["commits"][0]["author"] == "Dev <dev@example.com>"

    assert main(["history", "--env", "dev", *config]) == EXIT_OK
    text = capfd.readouterr().out.splitlines()
    assert text[1] == f"    {first[:12]}..{latest['commit'][:12]}: 1 commit changed apps/web, environments/dev"
    assert text[2].startswith(f"    {bump[:12]} ") and text[2].endswith("Dev <dev@example.com>: web v2")
    assert text[4] == f"    first apply, up to {first[:12]}: 1 commit changed apps/web, environments/dev"
