"""Pod mode: the pod network plan (pure), the launcher's plan in pod mode, and — as root
with iproute2 and iptables — pods created and removed without leftovers."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from isthmus.cli import netns
from isthmus.cli.mesh_plan import ApplyConfig, Component, CreatePods, MintTokens, UpOptions, build_plan, pod_names, pod_services
from isthmus.samples.bookinfo.topology import LOCAL_PLATFORM


def _net(index: int = 7) -> netns.PodNetwork:
    return netns.plan_network("ab12", index, pod_names(), pod_services(), "/tmp/isthmus-pods-ab12")


def test_plan_network_addresses_and_names():
    net = _net()
    assert str(net.subnet) == "10.244.7.0/24" and net.host_ip == "10.244.7.1"
    gw = net.pod("istio-ingressgateway")
    assert (gw.ip, gw.netns, gw.capture) == ("10.244.7.10", "isthmus-ab12-istio-ingressgateway", False)
    rv2 = net.pod("reviews-v2")
    assert rv2.capture and rv2.ip.startswith("10.244.7.") and rv2.netns == "isthmus-ab12-reviews-v2"
    assert len({p.ip for p in net.pods}) == len(net.pods) == 7
    assert all(len(name) <= 15 for name in (net.bridge, *(p.veth for p in net.pods)))  # IFNAMSIZ
    assert dict(net.vips) == {"productpage": "10.96.7.10", "details": "10.96.7.11", "reviews": "10.96.7.12",
                              "ratings": "10.96.7.13"}
    assert netns.PodNetwork.from_state(net.to_state()) == net
    with pytest.raises(ValueError):
        netns.plan_network("xyz", 1, (), (), "/tmp/x")


def test_hosts_file_maps_service_names_to_vips():
    net = _net()
    hosts = netns.hosts_file(net, net.pod("productpage-v1"))
    assert "10.244.7.11\tproductpage-v1" in hosts
    assert "10.96.7.12\treviews reviews.default reviews.default.svc reviews.default.svc.cluster.local" in hosts
    assert hosts.startswith("127.0.0.1\tlocalhost\n")


def test_service_entries_get_their_vips():
    docs = list(yaml.safe_load_all(netns.with_vips(LOCAL_PLATFORM.read_text(), _net())))
    entries = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "ServiceEntry"}
    assert entries["reviews"]["addresses"] == ["10.96.7.12"]
    assert all(len(spec["addresses"]) == 1 for spec in entries.values())
    groups = [d for d in docs if d["kind"] == "WorkloadGroup"]
    assert groups == [d for d in yaml.safe_load_all(LOCAL_PLATFORM.read_text()) if d and d["kind"] == "WorkloadGroup"]


def test_free_index_skips_used_subnets():
    used = "4: eth0 inet 10.244.1.1/24 scope global\n10.96.2.0/24 dev x\n"
    assert netns.used_indexes(used) == {1, 2}
    assert netns.free_index(used) == 3


def test_capture_rules_exclude_the_control_plane():
    rules = _net().capture_rules()
    assert rules.proxy_uid == 1337 and rules.exclude_outbound_cidrs == ("10.244.7.1/32",)


def test_prerequisites_name_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "need root" in netns.prerequisites()


def test_plan_in_pod_mode(tmp_path):
    net = _net()
    plan = build_plan(UpOptions(run_dir=tmp_path, engine="envoy", pods=net))
    assert isinstance(plan.steps[0], CreatePods) and plan.steps[0].network == net
    comps = {c.name: c for c in plan.components}
    # the control plane: pods reach citadel and pilot on the bridge; nothing on the bridge is port-checked
    assert "10.244.7.1:8060" in comps["citadel"].argv and comps["citadel"].ports == (8061,)
    assert "10.244.7.1:15012" in comps["pilot"].argv and comps["pilot"].ports == (15014,)
    assert comps["galley"].address == "127.0.0.1:9901"
    side = comps["reviews-v2-sidecar"]
    assert side.argv[:9] == ("ip", "netns", "exec", "isthmus-ab12-reviews-v2", "setpriv", "--reuid=1337", "--regid=1337",
                             "--clear-groups", "--")
    args = " ".join(side.argv)
    assert "--capture iptables" in args and "--ip 10.244.7.14" in args and "--port http:9080 " in args
    assert "--pilot 10.244.7.1:15012" in args and "--token-file /tmp/isthmus-pods-ab12/reviews-v2/token" in args
    assert side.ready_url == "http://10.244.7.14:15021/healthz/ready" and side.log_owner == 1337
    assert side.urls["inbound"] == "10.244.7.14:9080"
    app = comps["reviews-v2"]
    assert app.argv[:4] == ("ip", "netns", "exec", "isthmus-ab12-reviews-v2") and "setpriv" not in app.argv
    assert app.argv[-4:] == ("--port", "9080", "--host", "0.0.0.0")
    assert app.env["HTTP_PROXY"] == "" and app.ports == ()
    gw = comps["istio-ingressgateway"]
    assert gw.argv[:4] == ("ip", "netns", "exec", "isthmus-ab12-istio-ingressgateway") and "setpriv" not in gw.argv
    assert plan.ingress_url == "http://10.244.7.10:8080/productpage"
    tokens = next(s for s in plan.steps if isinstance(s, MintTokens))
    assert ("default", "bookinfo-reviews", "reviews-v2") in tokens.copies
    config = next(s for s in plan.steps if isinstance(s, ApplyConfig))
    assert LOCAL_PLATFORM not in config.files and "10.96.7.12" in config.texts[0]
    # local mode is unchanged: no pods, no netns in any argv
    local = build_plan(UpOptions(run_dir=tmp_path))
    assert not [s for s in local.steps if isinstance(s, CreatePods)]
    assert all(c.argv[0] != "ip" for c in local.components if isinstance(c, Component))


@pytest.fixture
def root_pods():
    why = netns.prerequisites()
    if why:
        pytest.skip(why)
    net = netns.allocate((("a-v1", True), ("gw", False)), ("a",))
    yield net
    netns.teardown(net)


@pytest.mark.root
def test_create_and_teardown_leave_nothing(root_pods):
    net = root_pods
    netns.create(net)
    try:
        a, gw = net.pod("a-v1"), net.pod("gw")
        assert (Path(net.pod_dir) / "a-v1").stat().st_uid == 1337
        hosts = subprocess.run(["ip", "netns", "exec", a.netns, "getent", "hosts", "a.default.svc.cluster.local"],
                               capture_output=True, text=True, check=True).stdout
        assert hosts.split()[0] == net.vip("a")
        # names outside the hosts file fail at once (no DNS server in a pod), they do not time out
        t0 = time.monotonic()
        miss = subprocess.run(["ip", "netns", "exec", a.netns, "getent", "hosts", "nowhere.example"], capture_output=True)
        assert miss.returncode != 0 and time.monotonic() - t0 < 3
        saved = {p.name: subprocess.run(["ip", "netns", "exec", p.netns, "iptables-save", "-t", "nat"], capture_output=True,
                                        text=True, check=True).stdout for p in (a, gw)}
        assert "-A ISTIO_OUTPUT -d 10.244" in saved["a-v1"] and "ISTIO" not in saved["gw"]
        # the pods reach each other and the root namespace through the bridge
        probe = "import socket; s = socket.socket(); s.settimeout(2); print(s.connect_ex(('%s', 1)))"
        res = subprocess.run(["ip", "netns", "exec", gw.netns, sys.executable, "-c", probe % a.ip], capture_output=True,
                             text=True)
        assert res.stdout.strip() == "111", res  # ECONNREFUSED: the packet got there
    finally:
        assert netns.teardown(net) == []
    assert netns.leftovers(net) == []
    assert netns.teardown(net) == []  # idempotent
