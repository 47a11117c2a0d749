"""The sync engine against the real control plane: create, update, prune, safety, idempotence.

Each test builds a real git repository with two environments, points an agent config at it, and
syncs into namespaces unique to the test (the agent's own state too, so tests never share an
inventory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from gitops_agent.agent import Agent
from gitops_agent.core.prepare import ENV_LABEL, PRUNE_ANNOTATION
from gitops_agent.model import Action
from gitops_agent.reconcile import PassResult
from tests.support.builders import (
    ConfigRepo,
    Symlink,
    configmap,
    crd_scope,
    deployment,
    make_config,
    secret,
    widget_crd,
)

pytestmark = pytest.mark.integration


def actions(result: PassResult) -> dict[str, str]:
    assert result.sync is not None, result
    return {f"{o.key.kind}/{o.key.name}": o.action.value for o in result.sync.objects}


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)
)


def writes(agent: Agent) -> int:
    """Writes to the environments' objects; the agent's own ledger and inventory don't count."""
    state = agent.config.agent.namespace
    return sum(1 for _, key in agent.clusters.kube(agent.config.environments[0]).writes if key.namespace != state)


def test_create_update_prune_across_two_environments(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: Any, api_client: k8s.ApiClient
) -> None:
    repo.write("environments/dev/app.yaml", [configmap("settings", {"mode": "dev"}), deployment("api")])
    repo.write("environments/dev/extra.yaml", [configmap("extra", {"a": "1"})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"mode": "prod"})])
    first = repo.commit("first")
    agent = agent_factory(make_config(repo, names, tmp_path))

    dev, prod = agent.sync_all()
    assert dev.ok and prod.ok, (dev.error, prod.error)
    assert dev.commit == first
    assert actions(dev) == {
        "Namespace/" + names["dev"]: "created",
        "ConfigMap/extra": "created",
        "ConfigMap/settings": "created",
        "Deployment/api": "created",
    }
    core = k8s.CoreV1Api(api_client)
    live = core.read_namespaced_config_map("settings", names["prod"])
    assert live.data == {"mode": "prod"}
    assert live.metadata.labels[ENV_LABEL] == "prod"

    # update one object, remove another: configured + pruned, the rest untouched
    repo.write("environments/dev/app.yaml", [configmap("settings", {"mode": "dev2"}), deployment("api")])
    repo.remove("environments/dev/extra.yaml")
    repo.commit("second")
    dev, prod = agent.sync_all()
    assert dev.ok and prod.ok
    assert actions(dev) == {
        "Namespace/" + names["dev"]: "unchanged",
        "ConfigMap/settings": "configured",
        "Deployment/api": "unchanged",
        "ConfigMap/extra": "pruned",
    }
    assert dev.sync is not None
    configured = next(o for o in dev.sync.objects if o.action is Action.CONFIGURED)
    assert "/data/mode" in configured.paths
    assert actions(prod) == {"Namespace/" + names["prod"]: "unchanged", "ConfigMap/settings": "unchanged"}
    assert core.read_namespaced_config_map("settings", names["dev"]).data == {"mode": "dev2"}
    with pytest.raises(k8s.ApiException) as gone:
        core.read_namespaced_config_map("extra", names["dev"])
    assert gone.value.status == 404


def test_second_sync_without_a_new_commit_writes_nothing(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: Any
) -> None:
    # 1000m is stored as 1 by the server: the local compare can't tell, the dry-run can
    repo.write("environments/dev/app.yaml", [configmap("settings", {"mode": "dev"}), deployment("api")])
    repo.write("environments/prod/app.yaml", [secret("db", "hunter2")])
    repo.commit()
    agent = agent_factory(make_config(repo, names, tmp_path))
    assert all(r.ok for r in agent.sync_all())
    before = writes(agent)

    again = agent.sync_all()
    assert [r.outcome for r in again] == ["up-to-date", "up-to-date"]
    assert writes(agent) == before, "a pass with no new commit must not write"

    # forced: every object is compared with the server (dry-run where the local compare can't
    # decide, as for 1000m vs 1), and still nothing is written
    forced = agent.sync_all(force=True)
    assert all(r.ok for r in forced), [r.error for r in forced]
    assert all(o.action is Action.UNCHANGED for r in forced for o in (r.sync.objects if r.sync else ()))
    assert writes(agent) == before


def test_diff_shows_changes_and_never_secret_values(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: Any
) -> None:
    repo.write("environments/dev/app.yaml", [secret("db", "hunter2"), configmap("settings", {"mode": "a"})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"mode": "prod"})])
    repo.commit()
    agent = agent_factory(make_config(repo, names, tmp_path))
    assert all(r.ok for r in agent.sync_all())

    repo.write("environments/dev/app.yaml", [secret("db", "s3cr3t-new"), configmap("settings", {"mode": "b"})])
    repo.commit()
    dev = agent.sync_all("dev", dry_run=True)[0]
    assert dev.ok, dev.error
    assert dev.sync is not None
    text = "".join(o.diff for o in dev.sync.objects)
    assert "-  mode: a\n+  mode: b\n" in text
    assert "password: '*** (after)'" in text
    for leaked in ("hunter2", "s3cr3t-new", "aHVudGVyMg==", "czNjcjN0LW5ldw=="):
        assert leaked not in text
    assert actions(dev)["Secret/db"] == "configured"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {"environments/dev/bad.yaml": "kind: ConfigMap\nmetadata: {name: [\n"}, "bad.yaml", id="malformed"
        ),
        pytest.param(
            {"environments/dev/dup.yaml": [configmap("settings", {"mode": "x"})]}, "defined twice", id="duplicate"
        ),
        pytest.param(
            {"environments/dev/w.yaml": [{"apiVersion": "acme.io/v1", "kind": "Widget", "metadata": {"name": "w"}}]},
            "unknown kind 'Widget'",
            id="unknown-kind",
        ),
        pytest.param(
            {"environments/dev/kustomization.yaml": "resources: [../../missing-base]\n"},
            "environments/dev",
            id="kustomize-error",
        ),
        pytest.param(
            {"environments/dev/bad-field.yaml": [{**configmap("bad", {}), "data": {"k": {"nested": 1}}}]},
            "ConfigMap",
            id="server-rejects",
        ),
        pytest.param({"environments/dev/bomb.yaml": BILLION_LAUGHS}, "bomb.yaml", id="yaml-bomb"),
        pytest.param({"environments/dev/huge.yaml": "a: " + "x" * (6 * 1024 * 1024)}, "huge.yaml", id="huge-file"),
        pytest.param({"environments/dev/blob.yaml": b"\x00\xff\xfe binary"}, "blob.yaml", id="binary-file"),
        pytest.param({"environments/dev/link.yaml": Symlink("../../../../etc/passwd")}, "link.yaml", id="symlink-out"),
        pytest.param(
            {"environments/dev/dupkey.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, name: b}\n"},
            "dupkey.yaml",
            id="duplicate-keys",
        ),
        pytest.param(
            {"environments/dev/noname.yaml": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}]},
            "noname.yaml",
            id="no-name",
        ),
        pytest.param(
            {"environments/dev/v9.yaml": [{**deployment("v9"), "apiVersion": "apps/v9"}]},
            "apps/v9",
            id="wrong-api-version",
        ),
    ],
)
def test_bad_snapshot_changes_nothing(
    repo: ConfigRepo,
    names: dict[str, str],
    tmp_path: Path,
    agent_factory: Any,
    api_client: k8s.ApiClient,
    files: dict[str, Any],
    expected: str,
) -> None:
    repo.write("environments/dev/app.yaml", [configmap("settings", {"mode": "good"}), deployment("api")])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"mode": "prod"})])
    repo.commit()
    agent = agent_factory(make_config(repo, names, tmp_path))
    assert all(r.ok for r in agent.sync_all())
    core = k8s.CoreV1Api(api_client)
    before_rv = core.read_namespaced_config_map("settings", names["dev"]).metadata.resource_version

    # a good change and a bad file in the same commit: the good change must not land either
    repo.write("environments/dev/app.yaml", [configmap("settings", {"mode": "changed"}), deployment("api")])
    for path, content in files.items():
        repo.write(path, content)
    repo.commit("bad")
    writes_before = writes(agent)
    dev, prod = agent.sync_all()
    assert not dev.ok
    assert expected in dev.error
    assert prod.ok, "one broken environment must not stop the others"
    assert writes(agent) == writes_before
    live = core.read_namespaced_config_map("settings", names["dev"])
    assert (live.data, live.metadata.resource_version) == ({"mode": "good"}, before_rv)
    assert k8s.AppsV1Api(api_client).read_namespaced_deployment("api", names["dev"])  # not pruned


def test_crd_and_its_custom_resource_in_one_snapshot(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: Any, api_client: k8s.ApiClient
) -> None:
    group = f"t{names['agent'].split('-')[1]}.example.com"
    crd = widget_crd(group)
    widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}}
    # the custom resource's file sorts before the CRD's: order must come from the kinds, not the files
    repo.write("environments/dev/a-widget.yaml", [widget])
    repo.write("environments/dev/z-crd.yaml", [crd])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"mode": "prod"})])
    repo.commit()
    agent = agent_factory(make_config(repo, names, tmp_path, scope=crd_scope(names)))
    try:
        dev = agent.sync_all("dev")[0]
        assert dev.ok, dev.error
        assert actions(dev)["Widget/w1"] == "created"
        got = k8s.CustomObjectsApi(api_client).get_namespaced_custom_object(group, "v1", names["dev"], "widgets", "w1")
        assert got["spec"] == {"size": 3}
    finally:
        k8s.ApiextensionsV1Api(api_client).delete_custom_resource_definition(f"widgets.{group}")


def test_empty_snapshot_refuses_to_prune_everything(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: Any, api_client: k8s.ApiClient
) -> None:
    repo.write("environments/dev/app.yaml", [configmap("settings", {"mode": "dev"})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"mode": "prod"})])
    repo.commit()
    agent = agent_factory(make_config(repo, names, tmp_path))
    assert all(r.ok for r in agent.sync_all())

    repo.remove("environments/dev/app.yaml")
    repo.write("environments/dev/README.md", "nothing here any more\n")
    repo.commit("empty dev")
    dev = agent.sync_all("dev")[0]
    assert not dev.ok
    assert "renders zero objects; refusing to prune all 1 objects" in dev.error
    core = k8s.CoreV1Api(api_client)
    assert core.read_namespaced_config_map("settings", names["dev"]).data == {"mode": "dev"}

    # explicitly allowed: now it prunes
    allowed = agent_factory(make_config(repo, names, tmp_path, allow_empty=True))
    dev = allowed.sync_all("dev")[0]
    assert dev.ok, dev.error
    assert actions(dev)["ConfigMap/settings"] == "pruned"


def test_prune_protection_and_foreign_labels(
    repo: ConfigRepo, names: dict[str, str], tmp_path: Path, agent_factory: Any, api_client: k8s.ApiClient
) -> None:
    repo.write("environments/dev/app.yaml", [configmap("keep", {"a": "1"}), configmap("settings", {"a": "1"})])
    repo.write("environments/prod/app.yaml", [configmap("settings", {"mode": "prod"})])
    repo.commit()
    agent = agent_factory(make_config(repo, names, tmp_path))
    assert all(r.ok for r in agent.sync_all())
    core = k8s.CoreV1Api(api_client)
    core.patch_namespaced_config_map(
        "keep", names["dev"], {"metadata": {"annotations": {PRUNE_ANNOTATION: "disabled"}}}
    )

    repo.write("environments/dev/app.yaml", [configmap("settings", {"a": "1"})])
    repo.commit("drop keep")
    dev = agent.sync_all("dev")[0]
    assert dev.ok, dev.error
    assert actions(dev)["ConfigMap/keep"] == "skipped"
    assert core.read_namespaced_config_map("keep", names["dev"]).data == {"a": "1"}
