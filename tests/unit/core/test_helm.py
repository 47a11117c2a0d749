"""core.helm: chart sources, the template argv, capabilities, repository index entries, digests, provenance."""

from __future__ import annotations

import pytest

from gitops_agent.core.helm import (
    Capabilities,
    ChartRef,
    ChartSource,
    api_versions,
    chart_refs,
    check_digest,
    describe,
    index_entry,
    kube_version,
    kustomize_charts,
    template_argv,
    version_problem,
)
from gitops_agent.core.report import EnvironmentReport, Phase, commit_status
from gitops_agent.errors import RenderError

WEB = ChartSource("https://charts.example/stable/", "web", "1.2.3")


def test_template_argv_sets_release_namespace_crds_no_tests_values_and_capabilities() -> None:
    caps = Capabilities("v1.36.3", ("policy/v1", "v1"))
    files = ["a.yaml", "b.yaml"]
    argv = template_argv(
        "/bin/helm", release="web", chart="/c.tgz", namespace="shop", values_files=files, capabilities=caps
    )
    assert argv == [
        "/bin/helm", "template", "web", "/c.tgz", "--namespace", "shop", "--include-crds", "--skip-tests",
        "--values", "a.yaml", "--values", "b.yaml", "--kube-version", "v1.36.3",
        "--api-versions", "policy/v1", "--api-versions", "v1",
    ]  # fmt: skip
    assert "--kube-version" not in template_argv("h", release="r", chart="c", namespace="n", values_files=[],
                                                 capabilities=None)  # fmt: skip


def test_capabilities_from_discovery() -> None:
    served = {("", "v1", "ConfigMap"), ("policy", "v1", "PodDisruptionBudget")}
    assert api_versions(served) == ("policy/v1", "policy/v1/PodDisruptionBudget", "v1", "v1/ConfigMap")
    assert kube_version("v1.36.3+k3s1") == "v1.36.3"
    assert kube_version("v1.30") == "v1.30.0"
    with pytest.raises(RenderError):
        kube_version("unknown")


@pytest.mark.parametrize("version", ["^1.2", "~1.2.3", ">=1.0.0", "1.x", "*", "latest", ""])
def test_a_range_is_not_a_pinned_version(version: str) -> None:
    assert version_problem(version)


@pytest.mark.parametrize("version", ["1.2.3", "v1.2.3", "1.2.3-rc.1", "0.1.0+build.5"])
def test_exact_versions(version: str) -> None:
    assert version_problem(version) is None


INDEX = {
    "entries": {
        "web": [
            {"version": "1.2.3", "urls": ["web-1.2.3.tgz"], "digest": "ABC"},
            {"version": "1.0.0", "urls": ["https://cdn.example/web-1.0.0.tgz"]},
        ]
    }
}


def test_index_entry_resolves_relative_urls_and_reads_the_digest() -> None:
    url = "https://charts.example/stable/index.yaml"
    assert index_entry(INDEX, WEB, url).url == "https://charts.example/stable/web-1.2.3.tgz"
    assert index_entry(INDEX, WEB, url).digest == "abc"
    other = ChartSource(WEB.repo, "web", "1.0.0")
    assert index_entry(INDEX, other, url).url == "https://cdn.example/web-1.0.0.tgz"


def test_index_errors_name_the_chart_and_what_exists() -> None:
    with pytest.raises(
        RenderError, match=r"chart web 9\.9\.9 from .*no version 9\.9\.9 of web \(has: 1\.2\.3, 1\.0\.0\)"
    ):
        index_entry(INDEX, ChartSource(WEB.repo, "web", "9.9.9"), "u")
    with pytest.raises(RenderError, match="no chart named 'api'"):
        index_entry(INDEX, ChartSource(WEB.repo, "api", "1.0.0"), "u")
    with pytest.raises(RenderError, match="not a Helm repository index"):
        index_entry({"html": 1}, WEB, "u")


def test_digest_must_match_the_index_when_it_gives_one() -> None:
    check_digest(WEB, "", "abc")
    check_digest(WEB, "abc", "abc")
    with pytest.raises(RenderError, match="refused"):
        check_digest(WEB, "abc", "def")


def test_kustomize_helm_charts_need_a_pinned_version() -> None:
    data = {"helmCharts": [{"name": "web", "repo": "https://c.example/", "version": "1.0.0"}, {"name": "local"}],
            "helmGlobals": {"chartHome": "vendor"}}  # fmt: skip
    (chart,) = kustomize_charts("k.yaml", data)
    assert chart.source == ChartSource("https://c.example/", "web", "1.0.0") and chart.chart_home == "vendor"
    with pytest.raises(RenderError, match=r"k\.yaml: helmCharts entry web from https://c\.example/ has no version"):
        list(kustomize_charts("k.yaml", {"helmCharts": [{"name": "web", "repo": "https://c.example/"}]}))


def test_oci_reference() -> None:
    oci = ChartSource("oci://registry.example/charts", "web", "1.0.0")
    assert oci.oci and oci.reference == "oci://registry.example/charts/web"


def test_provenance_round_trips_and_is_said_in_the_commit_status() -> None:
    ref = ChartRef("web", "1.2.3", "sha256:ab", "https://c.example/")
    assert chart_refs([{"name": "web", "version": "1.2.3", "digest": "sha256:ab", "source": "https://c.example/"}]) == (
        ref,
    )
    assert chart_refs(None) == ()
    report = EnvironmentReport("prod", "c" * 40, Phase.HEALTHY, changes="1 configured", charts=describe([ref, ref]))
    status = commit_status(report)
    assert status.description == "web 1.2.3, web 1.2.3; 1 configured; rollout healthy"
    many = EnvironmentReport("prod", "c" * 40, Phase.HEALTHY, changes="1 configured", charts=describe([ref] * 30))
    assert len(commit_status(many).description) <= 140
