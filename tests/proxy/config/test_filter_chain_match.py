"""Envoy's filter-chain match order: destination port → destination IP → server name →
transport protocol → application protocols → source type → source IP → source port,
most specific first, never backtracking."""
from __future__ import annotations

import pytest

from isthmus.proxy.config.errors import Invalid
from isthmus.proxy.config.listeners import compile_listener
from tests.proxy.config.helpers import chain, listener


def pick(chains, default: bool = False, **conn) -> str | None:
    extra = {"default_filter_chain": chain("default")} if default else {}
    lis = compile_listener(listener(chains, **extra))
    found = lis.select_chain(**conn)
    return found.name if found else None


def test_destination_port_is_decided_first_and_never_backtracks():
    chains = [chain("port", {"destination_port": 8080, "transport_protocol": "tls"}),
              chain("sni", {"server_names": ["a.example.com"]})]
    assert pick(chains, dest_port=8080, server_name="a.example.com", transport_protocol="tls") == "port"
    # Port 8080 matched a chain, so the plaintext connection does not fall back to "sni".
    assert pick(chains, dest_port=8080, server_name="a.example.com", transport_protocol="raw_buffer") is None
    assert pick(chains, default=True, dest_port=8080, transport_protocol="raw_buffer") == "default"
    assert pick(chains, dest_port=9090, server_name="a.example.com") == "sni"


def test_destination_ip_longest_prefix():
    chains = [chain("wide", {"prefix_ranges": [{"address_prefix": "10.0.0.0", "prefix_len": 8}]}),
              chain("narrow", {"prefix_ranges": [{"address_prefix": "10.1.0.0", "prefix_len": 16}]}),
              chain("any")]
    assert pick(chains, dest_ip="10.1.2.3") == "narrow"
    assert pick(chains, dest_ip="10.9.2.3") == "wide"
    assert pick(chains, dest_ip="192.168.0.1") == "any"
    assert pick(chains, dest_ip=None) == "any"


def test_server_name_exact_then_longest_wildcard_then_none():
    chains = [chain("exact", {"server_names": ["www.example.com"]}),
              chain("example", {"server_names": ["*.example.com"]}),
              chain("com", {"server_names": ["*.com"]}),
              chain("none")]
    assert pick(chains, server_name="www.example.com") == "exact"
    assert pick(chains, server_name="WWW.Example.com") == "exact"  # SNI is case-insensitive
    assert pick(chains, server_name="api.example.com") == "example"
    assert pick(chains, server_name="a.b.example.com") == "example"
    assert pick(chains, server_name="foo.com") == "com"
    assert pick(chains, server_name="example.com") == "com"  # "*.example.com" needs a label before it
    assert pick(chains, server_name="other.org") == "none"
    assert pick(chains, server_name="") == "none"


def test_transport_protocol_then_application_protocols_in_client_order():
    chains = [chain("tls-h2", {"transport_protocol": "tls", "application_protocols": ["h2"]}),
              chain("tls-h1", {"transport_protocol": "tls", "application_protocols": ["http/1.1"]}),
              chain("tls", {"transport_protocol": "tls"}),
              chain("plain", {"transport_protocol": "raw_buffer"})]
    assert pick(chains, transport_protocol="tls", alpn=("http/1.1", "h2")) == "tls-h1"
    assert pick(chains, transport_protocol="tls", alpn=("h2", "http/1.1")) == "tls-h2"
    assert pick(chains, transport_protocol="tls", alpn=("istio",)) == "tls"
    assert pick(chains, transport_protocol="raw_buffer") == "plain"


def test_source_type_then_source_ip_then_source_port():
    chains = [chain("local", {"source_type": "SAME_IP_OR_LOOPBACK"}),
              chain("external-10", {"source_type": "EXTERNAL", "source_prefix_ranges": [{"address_prefix": "10.0.0.0", "prefix_len": 8}]}),
              chain("external-10-port", {"source_type": "EXTERNAL", "source_prefix_ranges": [{"address_prefix": "10.0.0.0", "prefix_len": 8}],
                                         "source_ports": [1234]}),
              chain("any")]
    assert pick(chains, source_ip="127.0.0.1") == "local"
    assert pick(chains, source_ip="10.1.1.1", dest_ip="10.1.1.1") == "local"  # same IP counts as local
    assert pick(chains, source_ip="10.1.1.1", dest_ip="10.2.2.2") == "external-10"
    assert pick(chains, source_ip="10.1.1.1", dest_ip="10.2.2.2", source_port=1234) == "external-10-port"
    # EXTERNAL matched, but no external chain covers 192.168/16: no backtracking to "any".
    assert pick(chains, source_ip="192.168.1.1", dest_ip="10.2.2.2") is None


def test_pilot_style_permissive_inbound_chains():
    chains = [chain("mtls", {"destination_port": 15080, "transport_protocol": "tls"}),
              chain("plain", {"destination_port": 15080, "transport_protocol": "raw_buffer"})]
    assert pick(chains, default=True, dest_port=15080, transport_protocol="tls") == "mtls"
    assert pick(chains, default=True, dest_port=15080, transport_protocol="raw_buffer") == "plain"
    assert pick(chains, default=True, dest_port=3306) == "default"


def test_duplicate_matches_and_partial_wildcards_are_invalid():
    with pytest.raises(Invalid) as e:
        compile_listener(listener([chain("a", {"server_names": ["x.com", "y.com"]}), chain("b", {"server_names": ["y.com"]})]))
    assert "multiple filter chains with the same matching rules" in e.value.reason
    assert "filter_chains[0]" in e.value.reason and "filter_chains[1]" in e.value.reason
    with pytest.raises(Invalid) as e:
        compile_listener(listener([chain("a", {"server_names": ["foo*.example.com"]})]))
    assert e.value.field_path == "filter_chains[0].filter_chain_match.server_names[0]"


def test_listener_without_chains_uses_only_its_default():
    lis = compile_listener(listener([], default_filter_chain=chain("fallback")))
    assert lis.select_chain(dest_port=80).name == "fallback"
    with pytest.raises(Invalid):
        compile_listener(listener([]))
