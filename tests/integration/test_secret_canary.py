"""The canary: a Secret's values never reach any output, whatever happens to the Secret.

A canary value is planted in a Secret's ``data`` and ``stringData``; the Secret then drifts (a value
edited, then its whole ``data`` removed), an apply of it is refused by an admission policy that
quotes its values, a commit puts an integer canary in ``stringData``, and a pull request that
changes it is previewed. Meanwhile every command of the CLI runs, as text and as JSON, and the
daemon runs in this process with GitHub and chat doubles. Then every output is searched for every
planted value and its base64 form: the CLI's, the logs (at DEBUG), ``/status`` (JSON and HTML),
``/metrics``, the ConfigMaps in the agent's namespace (ledger, inventory), every request body GitHub
received and every chat payload. Zero hits; and the outputs are checked to hold what would have
leaked (the drifted paths, the quoted refusal), so the test fails when masking or scrubbing goes.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s

from gitops_agent.adapters.kube import KubeClient
from gitops_agent.cli import main
from gitops_agent.composition.daemon import DaemonWiring, RunOptions, daemon_wiring
from gitops_agent.config import parse_config
from tests.doubles.chat_server import ChatServer
from tests.doubles.github_server import GitHubServer
from tests.integration.secret_support import b64, canary_secret, echoing_refusal
from tests.support.builders import ConfigRepo, config_yaml, configmap
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

COMMANDS = (["sync"], ["diff"], ["drift"], ["status"], ["health"], ["history"])


@dataclass
class Canary:
    """The planted values: each contains ``word``; ``pin`` is the integer one."""

    word: str = field(default_factory=lambda: f"canary{uuid.uuid4().hex[:10]}")
    pin: int = field(default_factory=lambda: 7_000_000_000 + uuid.uuid4().int % 999_999_999)

    def forms(self, planted: list[str]) -> list[str]:
        """What must never show: the word, each planted value, their base64, the pin and its."""
        values = [self.word, *planted, str(self.pin)]
        return values + [b64(v) for v in values]


@dataclass
class Outputs:
    """Everything the agent said, by where it said it."""

    texts: dict[str, str] = field(default_factory=dict)

    def add(self, where: str, text: str) -> None:
        self.texts[f"{len(self.texts):03d} {where}"] = text

    def hits(self, forms: list[str]) -> list[tuple[str, str]]:
        return [(where, f) for where, text in self.texts.items() for f in forms if f in text]

    def joined(self, prefix: str) -> str:
        return "\n".join(t for w, t in self.texts.items() if w.split(" ", 1)[1].startswith(prefix))


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    with GitHubServer() as server:
        yield server


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    with ChatServer() as server:
        yield server


class Scene:
    """The config repository, the agent's config, the CLI and the in-process daemon of the test."""

    def __init__(self, repo: ConfigRepo, names: dict[str, str], tmp_path: Path, kubeconfig: str) -> None:
        self.repo, self.names, self.kubeconfig = repo, names, kubeconfig
        self.config_path = tmp_path / "gitops-agent.yaml"
        self.out = Outputs()
        self.wiring: DaemonWiring | None = None

    def write_config(self, tmp_path: Path, github: GitHubServer, chat: ChatServer) -> None:
        config = yaml.safe_load(config_yaml(self.repo, self.names, tmp_path))
        config["repo"]["poll_interval"] = "1h"  # passes run when the test says
        for name, text in (("github-token", github.token), ("slack", chat.slack_url), ("hook", chat.webhook_url)):
            (tmp_path / name).write_text(text + "\n")
        config["github"] = {
            "api_url": github.url,
            "repository": f"{github.owner}/{github.repo}",
            "token_file": str(tmp_path / "github-token"),
        }
        config["chat"] = {"slack_webhook_url_file": str(tmp_path / "slack"), "webhook_url_file": str(tmp_path / "hook")}
        self.config_path.write_text(yaml.safe_dump(config))

    def cli(self, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
        main([*argv, "--config", str(self.config_path), "--kubeconfig", self.kubeconfig])
        captured = capsys.readouterr()
        self.out.add(f"cli {' '.join(argv)}", captured.out + captured.err)
        return captured.out

    def every_command(self, capsys: pytest.CaptureFixture[str]) -> None:
        for command in COMMANDS:
            for output in ("text", "json"):
                self.cli(capsys, *command, "--env", "dev", "-o", output)

    def start_daemon(self) -> DaemonWiring:
        config = parse_config(self.config_path.read_text(), source=str(self.config_path))
        wiring = daemon_wiring(
            config,
            RunOptions(
                listen="127.0.0.1:0", status_listen="127.0.0.1:0", leader_election=False, kubeconfig=self.kubeconfig
            ),
        )
        wiring.server.start()
        wiring.scheduler.start()
        wiring.scheduler.set_leading(True)
        self.wiring = wiring
        return wiring

    def daemon_pass(self) -> None:
        """A push to main, and the daemon's pass of dev that follows it, finished."""
        assert self.wiring is not None
        scheduler = self.wiring.scheduler
        wait_until(lambda: not self._dev().running, timeout=60, message="the daemon's pass in flight")
        before = self._dev().finished_at
        scheduler.push("refs/heads/main")
        wait_until(
            lambda: self._dev().finished_at != before and not self._dev().running,
            timeout=60,
            message="the daemon's pass of dev",
        )
        if self.wiring.reporter is not None:
            self.wiring.reporter.flush()  # statuses are sent by a worker: all of them, before reading

    def _dev(self) -> Any:
        assert self.wiring is not None
        return next(v for v in self.wiring.scheduler.status().environments if v.name == "dev")

    def read_http(self) -> None:
        assert self.wiring is not None
        url = self.wiring.server.status_url  # /status and /metrics
        self.out.add("http /status json", httpx.get(f"{url}/status", timeout=10).text)
        self.out.add("http /status html", httpx.get(f"{url}/status", headers={"Accept": "text/html"}, timeout=10).text)
        self.out.add("http /metrics", httpx.get(f"{url}/metrics", timeout=10).text)

    def stop_daemon(self) -> None:
        """As ``serve.shut_down`` does, without its exit for a pass that would not stop."""
        wiring = self.wiring
        if wiring is None:
            return
        self.wiring = None
        wiring.stopping.set()
        wiring.scheduler.stop(timeout_s=30)
        wiring.server.stop()
        for closing in (wiring.approvals, wiring.reporter, wiring.chat):
            if closing is not None:
                closing.close()
        wiring.agent.close()

    def edit_secret(self, api_client: k8s.ApiClient, patch: list[dict[str, Any]]) -> None:
        k8s.CoreV1Api(api_client).patch_namespaced_secret(
            "db", self.names["dev"], patch, field_manager="kubectl-edit", _content_type="application/json-patch+json"
        )

    def commit(self, manifests: list[dict[str, Any]], message: str) -> str:
        self.repo.write("environments/dev/app.yaml", manifests)
        return self.repo.commit(message)

    def open_pull_request(self, number: int, manifests: list[dict[str, Any]]) -> str:
        """A branch with ``manifests`` for dev, published as GitHub does (``refs/pull/N/head``)."""
        self.repo.git("checkout", "-q", "-b", f"pr-{number}")
        head = self.commit(manifests, f"PR {number}")
        self.repo.git("update-ref", f"refs/pull/{number}/head", head)
        self.repo.git("checkout", "-q", "main")
        return head


@pytest.fixture
def scene(repo: ConfigRepo, names: dict[str, str], tmp_path: Path, kubeconfig: str) -> Iterator[Scene]:
    s = Scene(repo, names, tmp_path, kubeconfig)
    yield s
    s.stop_daemon()


def test_no_output_ever_holds_a_secret_value(
    scene: Scene,
    github: GitHubServer,
    chat: ChatServer,
    tmp_path: Path,
    api_client: k8s.ApiClient,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    canary = Canary()
    word, names = canary.word, scene.names
    stems = (word, f"{word}-v2", f"{word}-pr")  # canary_secret plants "<stem>-data" and "<stem>-string"
    planted = [f"{stem}-{part}" for stem in stems for part in ("data", "string")] + [f"{word}-edited"]
    settings = configmap("settings", {"v": "1"})
    scene.repo.write("environments/prod/app.yaml", [configmap("settings", {"v": "1"})])
    scene.commit([canary_secret("db", word), settings], "the canary")
    scene.write_config(tmp_path, github, chat)

    # Applied by the CLI, then seen by the daemon: in sync.
    scene.cli(capsys, "sync", "--env", "dev")
    scene.start_daemon()
    scene.daemon_pass()

    # Drift: a value edited by hand, then the whole data map removed.
    scene.edit_secret(api_client, [{"op": "replace", "path": "/data/token", "value": b64(f"{word}-edited")}])
    scene.every_command(capsys)
    scene.daemon_pass()
    scene.edit_secret(api_client, [{"op": "remove", "path": "/data"}])
    scene.every_command(capsys)
    scene.daemon_pass()

    # A pull request changing the Secret, previewed against the live environment.
    pr = scene.open_pull_request(7, [canary_secret("db", f"{word}-pr"), settings])
    for output in ("text", "json"):
        scene.cli(capsys, "preview", "--pr", "7", "--head", pr, "-o", output)

    # An apply refused by an admission policy that quotes the Secret's values.
    scene.commit([canary_secret("db", f"{word}-v2"), settings], "a new canary")
    probe = canary_secret("probe", word)
    probe["metadata"]["namespace"] = names["dev"]
    kube = KubeClient.connect(kubeconfig=scene.kubeconfig)
    info = kube.discover().lookup("", "Secret")
    assert info is not None
    with echoing_refusal(api_client, names["dev"], lambda: kube.apply(probe, info, field_manager="t", dry_run=True)):
        scene.every_command(capsys)
        scene.daemon_pass()
        for output in ("text", "json"):
            scene.cli(capsys, "preview", "--pr", "7", "--head", pr, "-o", output)
    kube.close()

    # An integer in stringData: refused before anything is sent.
    pinned = canary_secret("db", f"{word}-v2")
    pinned["stringData"]["pin"] = canary.pin
    scene.commit([pinned, settings], "an integer pin")
    scene.every_command(capsys)
    scene.daemon_pass()

    scene.read_http()
    scene.stop_daemon()
    out = scene.out
    for cm in k8s.CoreV1Api(api_client).list_namespaced_config_map(names["agent"]).items:
        out.add(f"configmap {cm.metadata.name if cm.metadata else ''}", json.dumps(cm.to_dict(), default=str))
    out.add("logs", "\n".join(f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records))
    for request in github.requests:
        out.add(f"github {request.method} {request.path}", request.path + request.body.decode(errors="replace"))
    for request in chat.requests:
        out.add(f"chat {request.method}", request.body.decode(errors="replace"))

    # What would have leaked did happen, and reached the outputs searched.
    cli = out.joined("cli")
    assert '"path": "/data/token"' in cli and '"path": "/data"' in cli, "the drift never showed"
    assert "refused, data is" in cli, "the refusal quoting the Secret never showed"
    assert "stringData['pin'] must be a string, found a number" in cli
    assert "created Secret" in out.joined("github") or "configured Secret" in out.joined("github"), "no preview"
    assert "ValidatingAdmissionPolicy" in out.joined("github"), "the failed apply never reached GitHub"
    assert "refused, data is" in out.joined("chat"), "the failed apply never reached chat"
    assert "refused, data is" in out.joined("configmap ledger"), "the failed apply never reached the ledger"
    assert "refused, data is" in out.joined("logs")
    assert github.violations == [] and chat.violations == []

    hits = out.hits(canary.forms(planted))
    assert hits == [], f"{len(hits)} leaks, first: {hits[:5]}"


def test_the_canary_s_search_finds_what_it_looks_for() -> None:
    """The search itself: a value in any of its forms is found."""
    canary = Canary(word="canaryabc")
    out = Outputs()
    out.add("cli", f"x {base64.b64encode(b'canaryabc-data').decode()} y")
    out.add("json", json.dumps({"pin": canary.pin}))
    hits = out.hits(canary.forms(["canaryabc-data"]))
    assert ("000 cli", b64("canaryabc-data")) in hits and ("001 json", str(canary.pin)) in hits
