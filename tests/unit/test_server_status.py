"""``/status`` shows each environment's rollout health (JSON and the page for people)."""

from __future__ import annotations

from gitops_agent.model import Health, HealthStatus
from gitops_agent.reconcile import PassResult
from gitops_agent.scheduler import EnvironmentView, SchedulerStatus
from gitops_agent.status_page import status_html, status_json

SHA = "0123456789abcdef0123456789abcdef01234567"


def view(name: str, result: PassResult | None) -> EnvironmentView:
    return EnvironmentView(name, "report", "main", 60.0, False, False, result, 1.7e9, 1.0, 1.7e9)


def status() -> SchedulerStatus:
    failed = Health(HealthStatus.FAILED, "api: 0/2 ready, CrashLoopBackOff in container app")
    views = (
        view("dev", PassResult("dev", SHA, "applied", health=Health(HealthStatus.CURRENT, "healthy (3 objects)"))),
        view("prod", PassResult("prod", SHA, "applied", health=failed)),
        view("qa", PassResult("qa", SHA, "applied")),  # not followed (--no-wait)
        view("new", None),
    )
    return SchedulerStatus(True, "pod-a", (), "", views)


def test_status_json_has_each_environment_s_rollout_health() -> None:
    envs = {e["name"]: e for e in status_json(status())["environments"]}
    assert envs["dev"]["health"] == {"status": "Current", "message": "healthy (3 objects)"}
    assert envs["prod"]["health"]["status"] == "Failed"
    assert envs["qa"]["health"] is None and envs["new"]["health"] is None


def test_the_page_shows_health_and_marks_a_failed_rollout() -> None:
    page = status_html(status())
    assert "<th>health</th>" in page
    assert "<td>Current: healthy (3 objects)</td>" in page
    row = next(line for line in page.splitlines() if "<td>prod</td>" in line)
    assert row.startswith('<tr class="failed">') and "Failed: api: 0/2 ready, CrashLoopBackOff" in row
