"""The HCM's request header work (Envoy's ConnectionManagerUtility) and route mutations."""
from __future__ import annotations

import re

from isthmus.proxy.config.matchers import HeaderMutations, HeaderValueConfig
from isthmus.proxy.config.network_filters import TracingConfig
from isthmus.proxy.filters.headers import apply_mutations, prepare_request, trace_decision
from tests.proxy.filters.fakes import FakeConn, FakeHcm, FakePeer, FakeStream

UUID4 = re.compile(rb"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def run(headers, hcm=None, conn=None, upgrade=None) -> tuple[dict, FakeStream]:
    s = FakeStream(headers, conn=conn, upgrade=upgrade)
    out = prepare_request(s, hcm or FakeHcm())
    d: dict = {}
    for k, v in out:
        d.setdefault(k, []).append(v)
    return d, s


def test_request_id_generated_and_kept():
    d, s = run([(b"host", b"x")])
    assert UUID4.match(d[b"x-request-id"][0]) and s.request_id == d[b"x-request-id"][0]
    d, _ = run([(b"x-request-id", b"mine")])
    assert d[b"x-request-id"] == [b"mine"]
    d, _ = run([], FakeHcm(generate_request_id=False))
    assert b"x-request-id" not in d


def test_forwarded_proto_and_hop_by_hop():
    d, _ = run([(b"connection", b"keep-alive, x-hop"), (b"x-hop", b"1"), (b"keep-alive", b"5"), (b"te", b"trailers, gzip"),
                (b"x-keep", b"1")])
    assert d[b"x-forwarded-proto"] == [b"http"]
    assert b"connection" not in d and b"x-hop" not in d and b"keep-alive" not in d
    assert d[b"te"] == [b"trailers"] and d[b"x-keep"] == [b"1"]
    d, _ = run([(b"x-forwarded-proto", b"https")])
    assert d[b"x-forwarded-proto"] == [b"https"]  # not the edge: kept


def test_use_remote_address_edge_request():
    hcm = FakeHcm(use_remote_address=True)
    d, _ = run([(b"x-forwarded-proto", b"https"), (b"x-envoy-retry-on", b"5xx"), (b"x-request-id", b"outside")],
               hcm, FakeConn(remote="203.0.113.9"))
    assert d[b"x-forwarded-for"] == [b"203.0.113.9"]
    assert d[b"x-forwarded-proto"] == [b"http"]  # overwritten at the edge
    assert b"x-envoy-retry-on" not in d and b"x-envoy-internal" not in d
    assert d[b"x-request-id"] != [b"outside"]  # regenerated for an external request
    d, _ = run([], hcm, FakeConn(remote="10.0.0.9"))
    assert d[b"x-envoy-internal"] == [b"true"] and d[b"x-forwarded-for"] == [b"10.0.0.9"]


def test_xfcc_modes():
    peer = FakePeer()
    mine = b"By=spiffe://cluster.local/ns/default/sa/me;Hash=" + b"ab" * 32 + b";URI=spiffe://cluster.local/ns/default/sa/client"
    d, _ = run([(b"x-forwarded-client-cert", b"spoofed")], FakeHcm(forward_client_cert_details="sanitize"), FakeConn(peer=peer))
    assert b"x-forwarded-client-cert" not in d
    d, _ = run([(b"x-forwarded-client-cert", b"earlier")], FakeHcm(forward_client_cert_details="append_forward"),
               FakeConn(peer=peer))
    assert d[b"x-forwarded-client-cert"] == [b"earlier," + mine]
    d, _ = run([(b"x-forwarded-client-cert", b"earlier")], FakeHcm(forward_client_cert_details="sanitize_set"),
               FakeConn(peer=peer))
    assert d[b"x-forwarded-client-cert"] == [mine]
    d, _ = run([(b"x-forwarded-client-cert", b"earlier")], FakeHcm(forward_client_cert_details="append_forward"))
    assert b"x-forwarded-client-cert" not in d  # no client certificate: sanitized
    d, _ = run([(b"x-forwarded-client-cert", b"earlier")], FakeHcm(forward_client_cert_details="always_forward_only"))
    assert d[b"x-forwarded-client-cert"] == [b"earlier"]


def test_trace_context_created_only_when_absent():
    hcm = FakeHcm(tracing=TracingConfig())
    d, _ = run([], hcm)
    assert re.match(rb"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$", d[b"traceparent"][0])
    d, _ = run([(b"traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-00")], hcm)
    assert d[b"traceparent"] == [b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-00"]
    d, _ = run([(b"x-b3-traceid", b"abc")], hcm)
    assert b"traceparent" not in d
    d, _ = run([])
    assert b"traceparent" not in d  # tracing off


def test_peer_metadata_dropped_outbound_and_read_inbound():
    d, _ = run([(b"x-envoy-peer-metadata", b"forged")], FakeHcm(mesh=True))
    assert b"x-envoy-peer-metadata" not in d  # ours go per attempt, to mTLS upstreams (filters/forward.py)
    d, s = run([(b"x-envoy-peer-metadata", b"theirs"), (b"x-envoy-peer-metadata-id", b"x")], FakeHcm(outbound=False))
    assert b"x-envoy-peer-metadata" not in d and s.peer == ("labels", b"theirs")


def test_mutation_append_actions():
    def hv(key, value, action, keep=False):
        return HeaderValueConfig(key, (value,), action, keep, value)
    levels = (HeaderMutations((hv("a", "1", "append_if_exists_or_add"), hv("b", "2", "add_if_absent"),
                               hv("c", "3", "overwrite_if_exists_or_add"), hv("d", "4", "overwrite_if_exists"),
                               hv("e", "", "append_if_exists_or_add"), hv("f", "", "append_if_exists_or_add", True)),
                              ("gone",)),)
    out = apply_mutations([(b"a", b"0"), (b"b", b"0"), (b"c", b"0"), (b"gone", b"x")], levels, None)
    assert out == [(b"a", b"0"), (b"b", b"0"), (b"a", b"1"), (b"c", b"3"), (b"f", b"")]


ONE_PERCENT = (100, 10000, 100.0)  # Istio's default: random 1%, overall and client 100%


def test_trace_decision_is_envoys_uuid_request_id_extension():
    """As a real Envoy 1.40 decides (checked in tests/proxy/parity): the first 8 hex digits
    mod 10000 against the threshold, the reason packed into the 15th character."""
    sampled, not_sampled = b"00000063-aaaa-4aaa-8aaa-aaaaaaaaaaaa", b"00000064-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
    assert trace_decision(sampled, False, False, ONE_PERCENT) == (b"00000063-aaaa-9aaa-8aaa-aaaaaaaaaaaa", True)
    assert trace_decision(not_sampled, False, False, ONE_PERCENT) == (not_sampled, False)
    # 0x2710 = 10000 ≡ 0: sampled; the last digits do not count
    assert trace_decision(b"00002710-aaaa-4aaa-8aaa-aaaa00000001", False, False, ONE_PERCENT)[1] is True
    for reason in b"9ab":  # an earlier hop's decision stands
        rid = b"0000ffff-aaaa-%caaa-8aaa-aaaaaaaaaaaa" % reason
        assert trace_decision(rid, False, False, ONE_PERCENT) == (rid, True)
    assert trace_decision(not_sampled, True, False, ONE_PERCENT) == (b"00000064-aaaa-baaa-8aaa-aaaaaaaaaaaa", True)
    assert trace_decision(not_sampled, False, True, ONE_PERCENT) == (b"00000064-aaaa-aaaa-8aaa-aaaaaaaaaaaa", True)
    # overall_sampling vetoes, even a reason already there
    assert trace_decision(b"00000063-aaaa-9aaa-8aaa-aaaaaaaaaaaa", False, False, (100, 50, 100.0)) == \
        (b"00000063-aaaa-4aaa-8aaa-aaaaaaaaaaaa", False)
    for odd in (b"abc", b"zzzzzzzz-aaaa-4aaa-8aaa-aaaaaaaaaaaa", None):  # not a UUID / not hex: untouched, untraced
        assert trace_decision(odd, True, True, ONE_PERCENT) == (odd, False)


def test_request_id_carries_the_trace_decision_and_traceparent_follows_it():
    hcm = FakeHcm(tracing=TracingConfig(random_sampling=1.0))
    d, s = run([(b"x-request-id", b"00000063-aaaa-4aaa-8aaa-aaaaaaaaaaaa")], hcm)
    assert d[b"x-request-id"] == [b"00000063-aaaa-9aaa-8aaa-aaaaaaaaaaaa"] == [s.request_id]
    assert d[b"traceparent"][0].endswith(b"-01")
    d, _ = run([(b"x-request-id", b"00000064-aaaa-4aaa-8aaa-aaaaaaaaaaaa")], hcm)
    assert d[b"x-request-id"] == [b"00000064-aaaa-4aaa-8aaa-aaaaaaaaaaaa"] and d[b"traceparent"][0].endswith(b"-00")
    # an app cannot force a trace through its own sidecar (not an internal request); a trusted hop can
    d, _ = run([(b"x-request-id", b"00000064-aaaa-4aaa-8aaa-aaaaaaaaaaaa"), (b"x-envoy-force-trace", b"true")], hcm)
    assert d[b"x-request-id"][0][14:15] == b"4" and b"x-envoy-force-trace" not in d
    d, _ = run([(b"x-request-id", b"00000064-aaaa-4aaa-8aaa-aaaaaaaaaaaa"), (b"x-envoy-force-trace", b"true"),
                (b"x-forwarded-for", b"10.1.2.3")], hcm)
    assert d[b"x-request-id"][0][14:15] == b"a" and d[b"x-envoy-force-trace"] == [b"true"]


def test_router_control_headers_are_never_forwarded():
    sent = [(b"x-envoy-retry-on", b"5xx"), (b"x-envoy-max-retries", b"3"), (b"x-envoy-upstream-rq-timeout-ms", b"100"),
            (b"x-envoy-ip-tags", b"t"), (b"x-envoy-internal", b"true"), (b"x-envoy-original-path", b"/p"),
            (b"x-envoy-decorator-operation", b"op")]
    d, _ = run(sent)  # a sidecar's own app: not internal
    assert sorted(k for k in d if k.startswith(b"x-envoy")) == [b"x-envoy-decorator-operation", b"x-envoy-original-path"]
    d, _ = run([*sent, (b"x-forwarded-for", b"10.1.2.3")])  # from one internal hop
    assert sorted(k for k in d if k.startswith(b"x-envoy")) == [
        b"x-envoy-decorator-operation", b"x-envoy-internal", b"x-envoy-ip-tags", b"x-envoy-original-path"]
    d, _ = run(sent, FakeHcm(use_remote_address=True), FakeConn(remote="10.0.0.9"))  # internal at a gateway
    assert sorted(k for k in d if k.startswith(b"x-envoy")) == [
        b"x-envoy-decorator-operation", b"x-envoy-internal", b"x-envoy-ip-tags", b"x-envoy-original-path"]
