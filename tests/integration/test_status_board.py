"""The status board in a real browser (Debian's headless Chromium, driven by Selenium through the
system chromedriver), against a daemon passing real environments on the test control plane.

dev and prod are applied, prod's rollout fails, a manual staging waits, dev drifts by hand; the
page shows each in the right cell, follows a new commit without a reload, shows a hostile commit
message as text, and leaves screenshots (light and dark) in the test's directory for people."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from gitops_agent.composition.daemon import DaemonWiring
from gitops_agent.core.board import BoardCommit, EnvironmentFacts, Header, Links, board
from gitops_agent.core.ledger import LedgerEntry
from gitops_agent.scheduler import Scheduler, SchedulerOptions
from gitops_agent.server import AgentServer
from tests.controlplane.harness import FAIL_ANNOTATION
from tests.support.builders import ConfigRepo, config_yaml, configmap, deployment
from tests.support.daemon import running_daemon
from tests.support.fake_agent import FakeAgent
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HOSTILE = 'Tune dev <script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


@pytest.fixture
def staging(api_client: k8s.ApiClient) -> Iterator[str]:
    name = f"staging-{uuid.uuid4().hex[:6]}"
    yield name
    try:
        k8s.CoreV1Api(api_client).delete_namespace(name)
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture
def daemon(
    repo: ConfigRepo, names: dict[str, str], staging: str, tmp_path: Path, kubeconfig: str
) -> Iterator[DaemonWiring]:
    failing = deployment("api", replicas=1, annotations={FAIL_ANNOTATION: "crashloop"})
    failing["spec"]["progressDeadlineSeconds"] = 3
    repo.write("environments/dev/app.yaml", [deployment("web"), configmap("settings", {"mode": "one"})])
    repo.write("environments/prod/app.yaml", [failing])
    repo.write("environments/staging/app.yaml", [configmap("settings", {"mode": "one"})])
    repo.commit("First cut of dev, prod and staging (#7)")
    text: dict[str, Any] = yaml.safe_load(config_yaml(repo, names, tmp_path))
    text["environments"][1]["health_timeout"] = "60s"
    text["environments"].append(
        {"name": "staging", "path": "environments/staging", "namespace": staging, "policy": "manual"}
    )
    with running_daemon(text, kubeconfig) as wiring:
        yield wiring


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1100"):
        options.add_argument(flag)  # no sandbox: CI runs as root, where Chromium's refuses to start
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def api(wiring: DaemonWiring) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(f"{wiring.server.status_url}/api/v1/status", timeout=10).json()
    return data


def text(driver: webdriver.Chrome, selector: str) -> str:
    """The text of the first element matching, read in one step: the page redraws what changed."""
    script = "const e = document.querySelector(arguments[0]); return e ? e.innerText : ''"
    return str(driver.execute_script(script, selector))


def state(driver: webdriver.Chrome, sha: str, env: str) -> str | None:
    script = "const e = document.querySelector(arguments[0]); return e ? e.dataset.state : null"
    found: str | None = driver.execute_script(script, f'td[data-commit="{sha}"][data-env="{env}"]')
    return found


def press(driver: webdriver.Chrome, selector: str, *keys: str) -> None:
    """Click (or type ``keys`` into) an element, again if a redraw replaced it meanwhile."""

    def once() -> bool:
        try:
            element = driver.find_element(By.CSS_SELECTOR, selector)
            if keys:
                element.send_keys(*keys)
            else:
                element.click()
            return True
        except StaleElementReferenceException:
            return False

    wait_until(once, timeout=10)


def settled(wiring: DaemonWiring) -> dict[str, Any] | None:
    """The board once dev runs, prod's rollout failed and staging waits."""
    data = api(wiring)
    envs = {e["name"]: e for e in data["environments"]}
    dev, prod = envs["dev"]["running"], envs["prod"]["running"]
    ready = (
        dev is not None and dev["rollout"] == "Current"
        and prod is not None and prod["rollout"] == "Failed"
        and envs["staging"]["waiting"]
    )  # fmt: skip
    return data if ready else None


def card(driver: webdriver.Chrome, env: str) -> str:
    return text(driver, f'article[data-env="{env}"]')


def full_page(driver: webdriver.Chrome, path: Path) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1440, min(int(height) + 140, 4000))  # the window's frame is not the page
    driver.save_screenshot(str(path))


def test_the_board_shows_where_each_commit_runs_and_follows_changes_live(
    daemon: DaemonWiring, browser: webdriver.Chrome, repo: ConfigRepo, names: dict[str, str],
    api_client: k8s.ApiClient, tmp_path: Path,
) -> None:  # fmt: skip
    first = repo.git("rev-parse", "HEAD").strip()
    data = wait_until(lambda: settled(daemon), timeout=120, message=lambda: str(api(daemon)["environments"]))
    assert [c["sha"] for c in data["commits"]] == [first]

    page = httpx.get(f"{daemon.server.status_url}/", timeout=5)
    assert "script-src 'self'" in page.headers["content-security-policy"]
    browser.get(f"{daemon.server.status_url}/")
    wait_until(lambda: state(browser, first, "staging"), timeout=20)
    browser.execute_script("window.loadedOnce = 'yes'")  # gone if the page reloads
    assert (state(browser, first, "dev"), state(browser, first, "prod"), state(browser, first, "staging")) == (
        "running", "failed", "waiting",
    )  # fmt: skip
    assert "registry.example/api:1.0" in card(browser, "dev")  # the image the running commit carried
    assert "Failed" in card(browser, "prod") and "CrashLoopBackOff" in card(browser, "prod")
    assert "waiting for approval" in card(browser, "staging")

    # the keyboard: a cell opens its detail with Enter, Escape closes it
    press(browser, f'td[data-commit="{first}"][data-env="prod"] button', Keys.ENTER)
    detail = browser.find_element(By.ID, "detail")
    wait_until(detail.is_displayed, timeout=5)
    assert "failed" in text(browser, "#detail").lower() and "registry.example/api:1.0" in text(browser, "#detail")
    browser.switch_to.active_element.send_keys(Keys.ESCAPE)
    wait_until(lambda: not detail.is_displayed(), timeout=5)

    # a new commit, with a hostile message: the page follows it without a reload, as text
    repo.write("environments/dev/app.yaml", [deployment("web"), configmap("settings", {"mode": "two"})])
    second = repo.commit(HOSTILE)
    daemon.scheduler.push("refs/heads/main")
    wait_until(lambda: state(browser, second, "dev") == "running", timeout=90, message=lambda: str(api(daemon)))
    wait_until(lambda: state(browser, first, "dev") == "replaced", timeout=30, message=lambda: str(api(daemon)))
    # the second commit changed dev alone: prod and staging have no cell for it, and what prod runs
    # is still the first commit's change, whose rollout failed
    assert (state(browser, second, "prod"), state(browser, second, "staging")) == ("", "")
    assert (state(browser, first, "prod"), state(browser, first, "staging")) == ("failed", "waiting")
    assert browser.execute_script("return window.loadedOnce") == "yes"
    press(browser, f'td[data-commit="{second}"][data-env="dev"] button', Keys.ARROW_DOWN)  # the next row's
    assert browser.execute_script("return document.activeElement.dataset.key") == f"cell:{first}:dev"
    assert text(browser, f'[data-subject="{second}"]') == HOSTILE
    assert browser.find_elements(By.CSS_SELECTOR, f'[data-subject="{second}"] *') == []  # no element in it
    assert browser.execute_script("return window.pwned === undefined") is True

    # drift by hand: the page shows it live, which field, who and since when, never the value
    k8s.CoreV1Api(api_client).patch_namespaced_config_map(
        "settings", names["dev"], {"data": {"mode": "by hand"}}, field_manager="kubectl-edit"
    )
    wait_until(lambda: "drift: 1 unexpected, 0 expected" in card(browser, "dev"), timeout=60)
    press(browser, '[data-drift="dev"] summary')
    drift = text(browser, '[data-drift="dev"]')
    assert "ConfigMap/settings" in drift and "/data/mode" in drift and "kubectl-edit" in drift
    assert "by hand" not in browser.page_source
    assert browser.execute_script("return window.loadedOnce") == "yes"

    # per object health, on demand, with the reasons
    press(browser, '[data-health-of="prod"]')
    wait_until(lambda: "CrashLoopBackOff" in text(browser, 'article[data-env="prod"] .objects-health'), timeout=30)

    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe  # nothing the CSP blocked, no script error
    full_page(browser, tmp_path / "status-board.png")
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    )
    full_page(browser, tmp_path / "status-board-dark.png")
    assert (tmp_path / "status-board.png").stat().st_size > 10_000
    if shots := _keep_screenshots():
        for png in tmp_path.glob("status-board*.png"):
            shutil.copy(png, shots / png.name)


def _keep_screenshots() -> Path | None:
    """``$GITOPS_AGENT_SCREENSHOTS=dir`` keeps the screenshots past the test (the README's is one)."""
    where = os.environ.get("GITOPS_AGENT_SCREENSHOTS")
    return Path(where) if where else None


class StaticBoard:
    """A status board whose data is a fixture (``core.board`` builds it): the page's token flow
    needs no cluster."""

    def __init__(self) -> None:
        sha = "c" * 40
        dev = EnvironmentFacts("dev", "auto", "main", entries=(LedgerEntry(sha, "2026-05-01T10:00:00Z", "0.1.0",
                               "applied"),), carried=((sha,),), touched=frozenset({sha}))  # fmt: skip
        commit = BoardCommit(sha, "Ada", "2026-05-01T09:00:00Z", "Bump web")
        self.sha = sha
        self.data = board(Header("pod-a", True), [commit], [dev], Links(""), "2026-05-01T10:00:01Z")

    def view(self) -> dict[str, Any]:
        return self.data

    def health(self, name: str) -> dict[str, Any]:
        return {"environment": name, "commit": self.sha, "status": "Current", "objects": [], "error": ""}


def test_the_page_asks_for_the_status_token_and_keeps_it_in_the_tab(browser: webdriver.Chrome) -> None:
    fixture = StaticBoard()
    daemon = Scheduler(FakeAgent(), options=SchedulerOptions(identity="pod-a", probe_interval_s=0))
    loopback = ("127.0.0.1", 0)
    server = AgentServer(
        loopback, daemon, webhook_secret=None, status_address=loopback, status_token=b"let-me-see",
        board=fixture,  # type: ignore[arg-type]
    )  # fmt: skip
    server.start()
    try:
        browser.get(f"{server.status_url}/")
        wait_until(lambda: browser.find_element(By.ID, "token-form").is_displayed(), timeout=10)
        assert state(browser, fixture.sha, "dev") is None  # nothing without the token
        browser.find_element(By.ID, "token").send_keys("not-it", Keys.ENTER)
        wait_until(lambda: browser.find_element(By.ID, "token-form").is_displayed(), timeout=10)  # asked again
        token = browser.find_element(By.ID, "token")
        token.clear()
        token.send_keys("let-me-see", Keys.ENTER)
        wait_until(lambda: state(browser, fixture.sha, "dev") == "running", timeout=10)
        browser.refresh()  # the tab keeps it: no question again
        wait_until(lambda: state(browser, fixture.sha, "dev") == "running", timeout=10)
        assert not browser.find_element(By.ID, "token-form").is_displayed()
    finally:
        server.stop()
        daemon.stop()
