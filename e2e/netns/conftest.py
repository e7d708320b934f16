"""The netns run mode: `isthmus up --capture iptables`, once per engine.

Every workload runs in its own network namespace on a private bridge, resolves service
names to VIPs through its hosts file and sends plain HTTP (no HTTP_PROXY); istio-init's
REDIRECT rules hand its traffic to its sidecar (outbound 15001, inbound 15006). Needs
root, iproute2, iptables and network namespaces: otherwise every test here is skipped
with the reason the machine gives. After `isthmus down` nothing of the run may remain.
"""
from __future__ import annotations

import pytest

from e2e.conftest import ENGINES, start_mesh


@pytest.fixture(scope="session")
def netns_usable() -> None:
    from isthmus.cli.netns import prerequisites

    why = prerequisites()
    if why:
        pytest.skip(f"netns mode unavailable: {why}")


@pytest.fixture(scope="module", params=ENGINES)
def mesh(request, tmp_path_factory, netns_usable):
    from isthmus.cli.netns import PodNetwork, leftovers

    engine = request.param
    network = None
    with start_mesh(engine, tmp_path_factory.mktemp(f"netns-{engine}"), capture="iptables") as m:
        network = PodNetwork.from_state(m.state["pods"])
        yield m
    left = leftovers(network)
    assert not left, f"isthmus down left these behind: {left}"
