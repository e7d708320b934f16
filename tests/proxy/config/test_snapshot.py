"""Snapshot: pure updates, all-or-nothing NACKs, references and readiness."""
from __future__ import annotations

import pytest
from google.protobuf import any_pb2

from isthmus.proxy.config.clusters import CLUSTER_TYPE_URL
from isthmus.proxy.config.errors import Invalid, Unsupported
from isthmus.proxy.config.listeners import LISTENER_TYPE_URL
from isthmus.proxy.config.routes import ROUTE_TYPE_URL
from isthmus.proxy.config.secrets import SECRET_TYPE_URL
from isthmus.proxy.config.snapshot import Snapshot
from tests.proxy.config.helpers import chain, cluster, corpus_text, hcm, listener, pilot_snapshot, route_configuration, vhost


def test_pilot_output_compiles_completely_and_is_ready():
    snap = pilot_snapshot(corpus_text("destination-rule-all.yaml", "virtual-service-reviews-jason-v2-v3.yaml"))
    assert snap.missing().empty
    refs = snap.references()
    assert set(refs.routes) == {"http_proxy"} and set(refs.secrets) == {"default", "ROOTCA"}
    assert "outbound|9080|v2|reviews.default.svc.cluster.local" in refs.endpoints
    assert snap.versions == {t: "v1" for t in snap.versions} and len(snap.versions) == 5
    assert snap.resources[LISTENER_TYPE_URL]["http_proxy"].name == "http_proxy"  # raw protos kept for config_dump


def test_with_update_is_pure_and_removes():
    a = Snapshot().with_update(CLUSTER_TYPE_URL, {"c": cluster({"type": "STATIC"}), "d": cluster({"name": "d", "type": "STATIC"})}, version="1")
    b = a.with_update(CLUSTER_TYPE_URL, {}, removed={"d"}, version="2")
    assert set(a.clusters) == {"c", "d"} and set(b.clusters) == {"c"}
    assert a.versions[CLUSTER_TYPE_URL] == "1" and b.versions[CLUSTER_TYPE_URL] == "2"
    assert b.clusters["c"] is a.clusters["c"]  # untouched resources are shared, not recompiled
    with pytest.raises(TypeError):
        b.clusters["x"] = None  # type: ignore[index]


def test_one_bad_resource_rejects_the_whole_update():
    good = Snapshot().with_update(LISTENER_TYPE_URL, {"l": listener()}, version="1")
    bad = listener(freebind=True)
    bad.name = "m"
    with pytest.raises(Unsupported) as e:
        good.with_update(LISTENER_TYPE_URL, {"l": listener(), "m": bad}, version="2")
    assert (e.value.type_url, e.value.resource_name, e.value.field_path) == (LISTENER_TYPE_URL, "m", "freebind")
    assert set(good.listeners) == {"l"} and good.versions[LISTENER_TYPE_URL] == "1"


def test_any_resources_names_and_unknown_types():
    packed = any_pb2.Any()
    packed.Pack(route_configuration([vhost("a", ["*"])]))
    snap = Snapshot().with_update(ROUTE_TYPE_URL, {"r": packed})
    assert snap.routes["r"].virtual_hosts[0].name == "a"
    with pytest.raises(Invalid):
        Snapshot().with_update(ROUTE_TYPE_URL, {"other": route_configuration([vhost("a", ["*"])])})
    with pytest.raises(Unsupported):
        Snapshot().with_update(CLUSTER_TYPE_URL, {"r": packed})  # an Any of the wrong type
    with pytest.raises(Unsupported):
        Snapshot().with_update("type.googleapis.com/envoy.service.runtime.v3.Runtime", {})


def test_missing_tracks_rds_eds_and_sds():
    snap = Snapshot().with_update(LISTENER_TYPE_URL, {"l": listener([chain("h", filter_config=hcm(rds="r1"))])})
    snap = snap.with_update(CLUSTER_TYPE_URL, {"c": cluster({"type": "EDS", "eds_cluster_config": {
        "service_name": "svc", "eds_config": {"ads": {}, "resource_api_version": "V3"}}})})
    missing = snap.missing()
    assert set(missing.routes) == {"r1"} and set(missing.endpoints) == {"svc"} and not missing.secrets
    snap = snap.with_update(ROUTE_TYPE_URL, {"r": route_configuration([vhost("a", ["*"])])})
    assert "r1" in snap.missing().routes  # a different name does not satisfy it
    renamed = route_configuration([vhost("a", ["*"])])
    renamed.name = "r1"
    assert "r1" not in snap.with_update(ROUTE_TYPE_URL, {"r1": renamed}).missing().routes
    assert SECRET_TYPE_URL not in snap.versions


def test_bootstrap_static_resources_compile():
    from google.protobuf import json_format

    from envoy.config.bootstrap.v3 import bootstrap_pb2
    from isthmus.proxy.bootstrap import WorkloadIdentity, build_bootstrap

    boot = json_format.ParseDict(build_bootstrap(WorkloadIdentity(name="reviews-v1-0"), "127.0.0.1:15012", "/tmp/agent.sock"),
                                 bootstrap_pb2.Bootstrap())
    snap = Snapshot().with_update(CLUSTER_TYPE_URL, {c.name: c for c in boot.static_resources.clusters})
    snap = snap.with_update(LISTENER_TYPE_URL, {l.name: l for l in boot.static_resources.listeners})
    xds = snap.clusters["xds-grpc"]
    assert xds.discovery_type == "STRICT_DNS" and xds.http.protocol == "http2" and xds.tls.sni == "istiod.istio-system.svc"
    assert snap.clusters["sds-grpc"].load_assignment.endpoints[0].address.pipe == "/tmp/agent.sock"
    stats = snap.listeners["prometheus_stats"].filter_chains[0].http.route_table
    assert stats.match("x", "/stats/prometheus", {}.get)[1].action.cluster == "prometheus_stats"
    assert set(snap.missing().secrets) == {"default", "ROOTCA"}
