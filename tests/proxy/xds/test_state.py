"""The ADS client's protocol state, without sockets: requests, ACK/NACK, warming, node."""
from __future__ import annotations

from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2, json_format

from isthmus.pilot.xds.node import proxy_from_node
from isthmus.proxy.bootstrap import build_bootstrap
from isthmus.proxy.xds.node import build_node
from isthmus.proxy.xds.state import CLUSTER, ENDPOINT, LISTENER, AdsState
from tests.proxy.config.helpers import cluster, listener
from tests.proxy.xds.pilot import PRODUCTPAGE

EDS_CLUSTER = {"type": "EDS", "eds_cluster_config": {"service_name": "svc", "eds_config": {"ads": {}, "resource_api_version": "V3"}}}


def pack(*msgs) -> list[any_pb2.Any]:
    out = []
    for m in msgs:
        a = any_pb2.Any()
        a.Pack(m)
        out.append(a)
    return out


def sotw(type_url: str, version: str, nonce: str, *msgs) -> discovery_pb2.DiscoveryResponse:
    return discovery_pb2.DiscoveryResponse(type_url=type_url, version_info=version, nonce=nonce, resources=pack(*msgs))


def cla(name: str) -> endpoint_pb2.ClusterLoadAssignment:
    return json_format.ParseDict({"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
        "socket_address": {"address": "10.0.0.1", "port_value": 80}}}}]}]}, endpoint_pb2.ClusterLoadAssignment())


def test_node_is_the_bootstraps_and_pilot_reads_it():
    node = build_node(PRODUCTPAGE)
    boot = build_bootstrap(PRODUCTPAGE, "127.0.0.1:15012", "/tmp/sds")["node"]
    assert (node.id, node.cluster) == (boot["id"], boot["cluster"])
    assert json_format.MessageToDict(node.metadata) == boot["metadata"]
    proxy = proxy_from_node(node)
    assert (proxy.namespace, proxy.service_account, proxy.labels["app"]) == ("default", "bookinfo-productpage", "productpage")
    assert proxy.ports[0].port == 9080


def test_sotw_stream_start_ack_nack_and_subscriptions():
    s = AdsState(build_node(PRODUCTPAGE))
    first = s.start_stream()
    assert [r.type_url for r in first] == [CLUSTER, LISTENER]
    assert first[0].node.id and not first[1].HasField("node")  # node on the first message only
    out = s.receive(sotw(CLUSTER, "v1", "n1", cluster(EDS_CLUSTER)))
    ack, eds = out.requests
    assert (ack.type_url, ack.version_info, ack.response_nonce, ack.HasField("error_detail")) == (CLUSTER, "v1", "n1", False)
    assert (eds.type_url, list(eds.resource_names), eds.response_nonce) == (ENDPOINT, ["svc"], "")
    assert out.publish is None  # the cluster waits for its endpoints
    (nack,) = s.receive(sotw(LISTENER, "v2", "n2", listener(freebind=True))).requests
    assert (nack.version_info, nack.response_nonce) == ("", "n2")  # no LDS version accepted yet
    assert nack.error_detail.code == 3 and "'l': freebind:" in nack.error_detail.message
    assert s.types[LISTENER].last_nack.resource == "l"
    out = s.receive(sotw(ENDPOINT, "v1", "n3", cla("svc"), cla("unasked")))
    assert list(out.requests[0].resource_names) == ["svc"] and set(s.pending.endpoints) == {"svc"}
    assert out.publish is s.pending  # complete now (no listeners yet is fine)
    assert s.published(out.publish) == []
    out = s.receive(sotw(LISTENER, "v3", "n4", listener()))
    assert out.requests == [] and out.publish is not None  # LDS is ACKed after the data plane applied it
    (lds_ack,) = s.published(out.publish, [])
    assert (lds_ack.version_info, lds_ack.response_nonce, lds_ack.HasField("error_detail")) == ("v3", "n4", False)
    assert s.complete


def test_duplicate_names_and_foreign_types_are_nacked():
    s = AdsState(build_node(PRODUCTPAGE))
    s.start_stream()
    (nack,) = s.receive(sotw(CLUSTER, "v1", "n1", cluster({"type": "STATIC"}), cluster({"type": "STATIC"}))).requests
    assert "appears twice" in nack.error_detail.message
    resp = discovery_pb2.DiscoveryResponse(type_url=CLUSTER, version_info="v2", nonce="n2", resources=pack(listener()))
    (nack,) = s.receive(resp).requests
    assert "envoy.config.listener.v3.Listener" in nack.error_detail.message
    assert s.pending.clusters == {}


def test_delta_reconnect_sends_initial_resource_versions_and_unsubscribes():
    s = AdsState(build_node(PRODUCTPAGE), delta=True)
    s.start_stream()
    resp = discovery_pb2.DeltaDiscoveryResponse(type_url=CLUSTER, system_version_info="v1", nonce="n1", resources=[
        discovery_pb2.Resource(name="c", version="h1", resource=pack(cluster(EDS_CLUSTER))[0])])
    ack, eds = s.receive(resp).requests
    assert (ack.response_nonce, list(ack.resource_names_subscribe)) == ("n1", [])
    assert list(eds.resource_names_subscribe) == ["svc"]
    s.receive(discovery_pb2.DeltaDiscoveryResponse(type_url=ENDPOINT, system_version_info="v1", nonce="n2", resources=[
        discovery_pb2.Resource(name="svc", version="e1", resource=pack(cla("svc"))[0])]))
    again = s.start_stream()
    assert [r.type_url for r in again] == [CLUSTER, ENDPOINT, LISTENER]
    assert dict(again[0].initial_resource_versions) == {"c": "h1"} and again[0].node.id
    assert dict(again[1].initial_resource_versions) == {"svc": "e1"} and list(again[1].resource_names_subscribe) == ["svc"]
    # The cluster goes away: its endpoints are dropped and unsubscribed.
    out = s.receive(discovery_pb2.DeltaDiscoveryResponse(type_url=CLUSTER, system_version_info="v2", nonce="n3",
                                                         removed_resources=["c"]))
    _, unsub = out.requests
    assert list(unsub.resource_names_unsubscribe) == ["svc"] and s.pending.endpoints == {}


def test_warming_deadline_and_expiry():
    now = [100.0]
    s = AdsState(build_node(PRODUCTPAGE), warming_timeout=5.0, clock=lambda: now[0])
    s.start_stream()
    assert s.receive(sotw(CLUSTER, "v1", "n1", cluster(EDS_CLUSTER))).publish is None
    assert s.warming_deadline() is None  # the first snapshot also waits for LDS, without a clock
    now[0] = 101.0
    assert s.receive(sotw(LISTENER, "v1", "n2")).publish is None  # still missing the endpoints
    assert s.warming_deadline() == 106.0
    out = s.warming_expired()
    assert out.publish is s.pending and s.warming_deadline() is None
    (lds_ack,) = s.published(out.publish)
    assert lds_ack.response_nonce == "n2" and not lds_ack.HasField("error_detail")
    assert not s.complete and s.missing().empty  # published without it; not waited for again
    assert s.receive(sotw(ENDPOINT, "v1", "n3", cla("svc"))).publish is not None
