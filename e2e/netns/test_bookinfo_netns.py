"""The Bookinfo traffic-management scenarios of e2e/test_bookinfo_traffic.py, unchanged,
with every workload in its own network namespace and iptables capture (conftest.py);
plus what only this mode can show: the apps' traffic really is captured."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

# In the order of the source file (pytest runs a module's tests in the order it holds them).
from e2e.test_bookinfo_traffic import (  # noqa: F401 - collected here with this directory's `mesh`
    test_virtual_service_all_v1,
    test_weighted_splits,
    test_jason_routing,
    test_reviews_test_v2,
    test_ratings_delay_for_jason,
    test_ratings_abort_for_jason,
    test_details_faults,
    test_strict_mtls_refuses_plaintext_to_sidecars,
)

pytestmark = pytest.mark.root


def _netns(mesh, component: str) -> str:
    return mesh.state["components"][component]["urls"]["pod"].split()[0]


def _redirected_packets(netns: str, chain: str) -> int:
    out = subprocess.run(["ip", "netns", "exec", netns, "iptables", "-t", "nat", "-L", chain, "-v", "-n", "-x"],
                         capture_output=True, text=True, check=True).stdout
    return sum(int(line.split()[0]) for line in out.splitlines()[2:] if "REDIRECT" in line)


def test_app_traffic_is_captured_not_proxied(mesh):
    """productpage has no HTTP proxy, calls http://details:9080 (a VIP from its hosts file),
    and its sidecar gets the connections through REDIRECT: outbound in productpage's pod,
    inbound in details'."""
    assert mesh.page()[0] == 200
    pid = mesh.state["components"]["productpage-v1"]["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert not [e for e in environ if e.split(b"=", 1)[0].lower() in (b"http_proxy", b"all_proxy") and e.split(b"=", 1)[1]]
    productpage, details = _netns(mesh, "productpage-v1-sidecar"), _netns(mesh, "details-v1-sidecar")
    hosts = subprocess.run(["ip", "netns", "exec", productpage, "getent", "hosts", "details"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert hosts[0].startswith("10.96.") and "details" in hosts
    assert _redirected_packets(productpage, "ISTIO_REDIRECT") > 0  # app → 15001
    assert _redirected_packets(details, "ISTIO_IN_REDIRECT") > 0  # → 15006


def test_inbound_passthrough_to_an_undeclared_port(mesh):
    """A port the workload does not declare (7777) is still captured inbound and passed
    through to the app unchanged, from 127.0.0.6 so it is not captured again (Istio's
    InboundPassthroughClusterIpv4)."""
    import sys
    import urllib.request

    mesh.cli("delete", "pa", "default", "-n", "istio-system", "--ignore-not-found")  # PERMISSIVE
    netns = _netns(mesh, "reviews-v1-sidecar")
    ip = mesh.state["components"]["reviews-v1-sidecar"]["urls"]["pod"].split()[1]
    server = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-m", "http.server", "7777", "--bind", "0.0.0.0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def answered() -> bool:
            with urllib.request.urlopen(f"http://{ip}:7777/", timeout=3) as r:
                return r.status == 200

        mesh.wait_for(answered, 15, "plain HTTP to an undeclared port through the inbound passthrough")
    finally:
        server.terminate()
        _, log = server.communicate(timeout=10)
    assert "127.0.0.6" in log, log[-500:]  # the passthrough's source address
    assert _redirected_packets(netns, "ISTIO_IN_REDIRECT") > 0
