"""The status board's routes over real loopback HTTP: the page and its assets hold no data and need
no token; the API does; the page's CSP allows nothing but the agent's own script and style."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gitops_agent.scheduler import Scheduler, SchedulerOptions
from gitops_agent.server import AgentServer
from gitops_agent.status_board import BOARD_ASSETS
from tests.support.fake_agent import FakeAgent

TOKEN = b"let-me-see"


class FakeBoard:
    """What the server asks of ``StatusBoard``."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def view(self) -> dict[str, Any]:
        return {"schema": 1, "environments": [], "commits": []}

    def health(self, name: str) -> dict[str, Any]:
        self.asked.append(name)
        return {"environment": name, "objects": []}


@pytest.fixture
def board() -> FakeBoard:
    return FakeBoard()


@pytest.fixture
def status(board: FakeBoard) -> Iterator[httpx.Client]:
    daemon = Scheduler(FakeAgent(), options=SchedulerOptions(identity="pod-a", probe_interval_s=0))
    loopback = ("127.0.0.1", 0)
    server = AgentServer(
        loopback, daemon, webhook_secret=None, status_address=loopback, status_token=TOKEN,
        board=board,  # type: ignore[arg-type]
    )  # fmt: skip
    server.start()
    assert server.status_url is not None
    with httpx.Client(base_url=server.status_url, timeout=5) as client:
        yield client
    server.stop()
    daemon.stop()


def test_the_page_and_its_assets_need_no_token_and_carry_a_strict_csp(status: httpx.Client) -> None:
    for path, (_, content_type) in BOARD_ASSETS.items():
        answer = status.get(path)
        assert answer.status_code == 200 and answer.headers["content-type"] == content_type, path
        csp = answer.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
    page = status.get("/").text
    assert '<script src="/assets/board.js"' in page and "http" not in page.replace("http-equiv", "")  # no CDN


def test_the_script_never_writes_markup(status: httpx.Client) -> None:
    script = status.get("/assets/board.js").text
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script.replace("never innerHTML", ""), sink


def test_the_data_wants_the_token(status: httpx.Client, board: FakeBoard) -> None:
    bearer = {"Authorization": "Bearer " + TOKEN.decode()}
    for path in ("/api/v1/status", "/api/v1/environments/dev/health", "/status", "/metrics"):
        assert status.get(path).status_code == 401, path
        assert status.get(path, headers=bearer).status_code == 200, path
    assert status.get("/api/v1/status", headers=bearer).json()["schema"] == 1
    assert status.get("/api/v1/environments/nope/health", headers=bearer).status_code == 404
    assert board.asked == ["dev"]


def test_the_status_table_names_each_environment_s_owner() -> None:
    from gitops_agent.scheduler import EnvironmentView, SchedulerStatus
    from gitops_agent.status_page import status_html

    view = EnvironmentView("dev", "auto", "main", 60.0, False, False, None, None, None, None, owner="pod-b")
    page = status_html(SchedulerStatus(True, "pod-a", (), "", (view,), members=("pod-a", "pod-b")))
    assert "<th>owner</th>" in page and "<td>dev</td><td>pod-b</td>" in page
