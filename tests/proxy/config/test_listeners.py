"""Listener compilation: addresses, listener filters, downstream TLS, the HTTP connection
manager's settings, access log formats, tcp_proxy."""
from __future__ import annotations

import pytest

from isthmus.pilot.model.proxy import CaptureMode
from isthmus.proxy.config.errors import Invalid, Unsupported, Where
from isthmus.proxy.config.formatter import Operator, parse_format
from isthmus.proxy.config.listeners import compile_listener
from tests.pilot.fixtures import sidecar
from tests.proxy.config.helpers import ROUTER, T, TCP_PROXY_TYPE, chain, hcm, listener, pilot_snapshot

W = Where("t", "r")


def test_pilot_inbound_listener_permissive_mtls():
    snap = pilot_snapshot()
    inbound = snap.listeners["127.0.0.1_15080"]
    assert (inbound.address.host, inbound.address.port, inbound.bind_to_port) == ("127.0.0.1", 15080, True)
    assert [f.kind for f in inbound.listener_filters] == ["tls_inspector"]
    assert inbound.continue_on_listener_filters_timeout and inbound.listener_filters_timeout == pytest.approx(0.1)
    assert inbound.traffic_direction == "inbound"
    mtls = inbound.select_chain(transport_protocol="tls", alpn=("istio-peer-exchange", "istio"))
    assert mtls.name == "inbound|9080||-mtls"
    tls = mtls.tls
    assert tls.require_client_certificate
    assert [r.name for r in tls.common.certificate_sds] == ["default"]
    assert tls.common.validation_sds.name == "ROOTCA"
    assert tls.common.validation_sds.source.kind == "grpc" and tls.common.validation_sds.source.cluster == "sds-grpc"
    assert tls.common.alpn == ("h2", "http/1.1") and tls.common.min_version == "TLSv1.2"
    plain = inbound.select_chain(transport_protocol="raw_buffer")
    assert plain.name == "inbound|9080||-plaintext" and plain.tls is None
    http = plain.http
    assert http.route_table is not None and http.rds_name == ""
    assert http.forward_client_cert_details == "append_forward" and http.set_current_client_cert_details.uri


def test_pilot_outbound_http_proxy_hcm():
    lis = pilot_snapshot().listeners["http_proxy"]
    http = lis.filter_chains[0].http
    assert http.rds_name == "http_proxy" and http.rds_source.kind == "ads"
    assert [f.kind for f in http.http_filters] == ["fault", "cors", "router"]
    assert [f.name for f in http.http_filters][-1] == "envoy.filters.http.router"
    assert http.codec_type == "auto" and http.allow_absolute_url and http.generate_request_id
    assert http.stream_idle_timeout is None  # explicit 0 disables it
    assert http.max_headers_count == 100 and http.normalize_path and not http.use_remote_address
    assert http.forward_client_cert_details == "sanitize_set"
    assert http.tracing.random_sampling == pytest.approx(1.0) and http.tracing.client_sampling == 100.0
    log = http.access_logs[0]
    assert log.path == "/dev/stdout" and log.text is None
    fields = dict(log.json.fields)
    assert fields["response_flags"] == (Operator("RESPONSE_FLAGS"),)
    assert fields["path"] == (Operator("REQ", ("x-envoy-original-path", ":path")),)


def test_pilot_iptables_listeners():
    snap = pilot_snapshot(proxy=sidecar(capture=CaptureMode.IPTABLES))
    outbound = snap.listeners["virtualOutbound"]
    assert outbound.use_original_dst and outbound.address.port == 15001
    assert outbound.default_filter_chain.tcp.cluster == "PassthroughCluster"
    assert not snap.listeners["0.0.0.0_9080"].bind_to_port
    inbound = snap.listeners["virtualInbound"]
    assert [f.kind for f in inbound.listener_filters] == ["original_dst", "tls_inspector"]
    assert inbound.select_chain(dest_port=15080, transport_protocol="tls").name == "inbound|9080||-mtls"
    assert inbound.select_chain(dest_port=7777).tcp.cluster == "InboundPassthroughClusterIpv4"


def test_pipe_address_and_hcm_options():
    opts = hcm(codec_type="HTTP2", stream_idle_timeout="7s", request_timeout="0s", use_remote_address=True,
               xff_num_trusted_hops=2, server_name="isthmus", via="isthmus", strip_any_host_port=True,
               common_http_protocol_options={"idle_timeout": "0s", "max_headers_count": 50, "headers_with_underscores_action": "DROP_HEADER"},
               http2_protocol_options={"max_concurrent_streams": 7}, upgrade_configs=[{"upgrade_type": "websocket"}],
               forward_client_cert_details="SANITIZE", generate_request_id=False, max_request_headers_kb=96)
    lis = compile_listener(listener([chain("h", filter_config=opts)], address={"pipe": {"path": "/tmp/x.sock", "mode": 384}}))
    assert lis.address.pipe == "/tmp/x.sock" and lis.address.pipe_mode == 384 and str(lis.address) == "unix:///tmp/x.sock"
    http = lis.filter_chains[0].http
    assert http.codec_type == "http2" and http.stream_idle_timeout == 7.0 and http.request_timeout is None
    assert http.use_remote_address and http.xff_num_trusted_hops == 2 and http.server_name == "isthmus" and http.via == "isthmus"
    assert http.strip_port_mode == "any" and http.idle_timeout is None and http.max_headers_count == 50
    assert http.headers_with_underscores_action == "drop_header" and http.http2_max_concurrent_streams == 7
    assert http.upgrades == (("websocket", True),) and not http.generate_request_id and http.max_request_headers_kb == 96
    assert http.tracing is None  # no tracing block: tracing off
    assert http.route_table.virtual_hosts[0].routes[0].action.cluster == "c"


def test_http_filter_chain_must_end_with_one_router():
    fault = {"name": "envoy.filters.http.fault", "typed_config": {"@type": T + "envoy.extensions.filters.http.fault.v3.HTTPFault"}}
    with pytest.raises(Invalid) as e:
        compile_listener(listener([chain("h", filter_config=hcm(http_filters=[ROUTER, fault]))]))
    assert e.value.field_path == "filter_chains[0].filters[0].typed_config.http_filters[0]"
    with pytest.raises(Invalid):
        compile_listener(listener([chain("h", filter_config=hcm(http_filters=[fault]))]))


def test_http3_codec_and_two_network_filters_are_refused():
    with pytest.raises(Unsupported) as e:
        compile_listener(listener([chain("h", filter_config=hcm(codec_type="HTTP3"))]))
    assert e.value.field_path == "filter_chains[0].filters[0].typed_config.codec_type"
    two = chain("h")
    two["filters"] = two["filters"] * 2
    with pytest.raises(Unsupported) as e:
        compile_listener(listener([two]))
    assert e.value.field_path == "filter_chains[0].filters"


def test_tcp_proxy_weighted_clusters_and_timeouts():
    tp = {"@type": TCP_PROXY_TYPE, "stat_prefix": "s", "idle_timeout": "0s", "max_connect_attempts": 3,
          "weighted_clusters": {"clusters": [{"name": "a", "weight": 1}, {"name": "b", "weight": 3}]},
          "hash_policy": [{"source_ip": {}}]}
    proxy = compile_listener(listener([chain("t", filter_config=tp)])).filter_chains[0].tcp
    assert proxy.idle_timeout is None and proxy.max_connect_attempts == 3 and proxy.hash_by_source_ip
    assert [proxy.pick(r) for r in range(4)] == ["a", "b", "b", "b"]
    assert compile_listener(listener()).filter_chains[0].tcp.idle_timeout == 3600.0


def test_downstream_tls_inline_certificate_and_san_checks():
    tls = {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": T + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "require_client_certificate": True,
        "common_tls_context": {
            "tls_certificates": [{"certificate_chain": {"filename": "/c.pem"}, "private_key": {"inline_string": "k"}}],
            "validation_context": {"trusted_ca": {"filename": "/ca.pem"},
                                   "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"prefix": "spiffe://cluster.local/"}}]},
            "alpn_protocols": ["h2"]}}}
    c = chain("tls")
    c["transport_socket"] = tls
    cfg = compile_listener(listener([c])).filter_chains[0].tls
    cert = cfg.common.certificates[0]
    assert cert.chain.filename == "/c.pem" and cert.key.inline == b"k"
    san = cfg.common.validation.san_matchers[0]
    assert san.san_type == "uri" and san.match.matches("spiffe://cluster.local/ns/a/sa/b") and not san.match.matches("spiffe://x/")
    no_cert = {**tls, "typed_config": {**tls["typed_config"], "common_tls_context": {"alpn_protocols": ["h2"]}}}
    c["transport_socket"] = no_cert
    with pytest.raises(Invalid):
        compile_listener(listener([c]))


@pytest.mark.parametrize("text, pieces", [
    ("plain", ("plain",)),
    ("100%% sure", ("100% sure",)),
    ("%START_TIME(%Y/%m/%d)% x", (Operator("START_TIME", ("%Y/%m/%d",)), " x")),
    ("[%REQ(X-Forwarded-For?:AUTHORITY):10%]", ("[", Operator("REQ", ("x-forwarded-for", ":authority"), 10), "]")),
    ("%UPSTREAM_METADATA(istio:workload)%", (Operator("UPSTREAM_METADATA", ("istio", "workload")),)),
    ("", ()),
])
def test_format_strings_are_parsed_once(text, pieces):
    assert parse_format(text, W) == pieces


def test_bad_format_strings():
    with pytest.raises(Invalid):
        parse_format("100% sure", W)
    with pytest.raises(Unsupported) as e:
        parse_format("%NOT_A_COMMAND%", W)
    assert "NOT_A_COMMAND" in e.value.reason
    with pytest.raises(Invalid):
        parse_format("%REQ%", W)


def test_text_access_log_and_default_format():
    log = {"name": "envoy.access_loggers.file", "typed_config": {
        "@type": T + "envoy.extensions.access_loggers.file.v3.FileAccessLog", "path": "/tmp/a.log",
        "log_format": {"text_format_source": {"inline_string": "%RESPONSE_CODE% %ROUTE_NAME%\n"}, "omit_empty_values": True}}}
    default = {"name": "d", "typed_config": {"@type": T + "envoy.extensions.access_loggers.file.v3.FileAccessLog", "path": "/tmp/b.log"}}
    http = compile_listener(listener([chain("h", filter_config=hcm(access_log=[log, default]))])).filter_chains[0].http
    a, b = http.access_logs
    assert a.path == "/tmp/a.log" and a.omit_empty_values
    assert a.text == (Operator("RESPONSE_CODE"), " ", Operator("ROUTE_NAME"), "\n")
    assert b.text[0] == "[" and Operator("UPSTREAM_HOST") in b.text
