"""cluster.wait against the real API server: a CRD is waited on until Established and served; one
that never becomes Established (its names conflict) fails in bounded time, with its name."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from gitops_agent.cluster import ClusterApi, SyncOptions
from gitops_agent.cluster.apply import Applied, apply_in_order
from gitops_agent.cluster.prepare import prepare_snapshot
from gitops_agent.cluster.wait import wait_for_crds
from gitops_agent.errors import ClusterError
from tests.integration.cluster.support import desired
from tests.support.builders import widget_crd

pytestmark = pytest.mark.integration


@pytest.fixture
def group(names: dict[str, str], api_client: k8s.ApiClient) -> Iterator[str]:
    group = f"w{names['agent'].split('-')[1]}.example.com"
    yield group
    ext = k8s.ApiextensionsV1Api(api_client)
    for crd in ext.list_custom_resource_definition().items:
        if crd.spec.group == group:
            ext.delete_custom_resource_definition(crd.metadata.name)


def test_a_crd_is_waited_on_until_its_kind_is_served(api: ClusterApi, options: SyncOptions, group: str) -> None:
    crds = [p for p in prepare_snapshot(api, desired(widget_crd(group)), options) if p.key.kind != "Namespace"]
    apply_in_order(api, crds, options, Applied())
    wait_for_crds(api, crds, timeout_s=60)
    assert api.lookup(group, "Widget") is not None


def test_a_crd_that_never_becomes_established_fails_in_bounded_time(
    api: ClusterApi, options: SyncOptions, group: str
) -> None:
    twin = copy.deepcopy(widget_crd(group))  # the same kind under another plural: NamesAccepted=False
    twin["metadata"]["name"] = f"gadgets.{group}"
    twin["spec"]["names"].update({"plural": "gadgets", "singular": "gadget"})
    first = [p for p in prepare_snapshot(api, desired(widget_crd(group)), options) if p.key.kind != "Namespace"]
    apply_in_order(api, first, options, Applied())
    wait_for_crds(api, first, timeout_s=60)
    second = [p for p in prepare_snapshot(api, desired(twin), options) if p.key.kind != "Namespace"]
    apply_in_order(api, second, options, Applied())
    with pytest.raises(ClusterError, match=rf"CustomResourceDefinition/gadgets\.{group}: not Established after 2s"):
        wait_for_crds(api, second, timeout_s=2)
