"""Nothing that changes behaviour is silently ignored: unknown type URLs, unknown
listener filters and set-but-unsupported fields are refused with the exact field path."""
from __future__ import annotations

import importlib
import pkgutil

import pytest

from envoy.config.listener.v3 import listener_pb2

import isthmus.proxy.config as config_pkg
from isthmus.proxy.config.clusters import compile_cluster
from isthmus.proxy.config.errors import Fields, Invalid, Unsupported
from isthmus.proxy.config.listeners import LISTENER_TYPE_URL, compile_listener
from isthmus.proxy.config.routes import compile_route_configuration
from tests.proxy.config.helpers import ROUTER, T, chain, cluster, hcm, listener, route_configuration, vhost


def refused(fn, *args) -> Unsupported:
    with pytest.raises(Unsupported) as e:
        fn(*args)
    return e.value


def test_unknown_network_filter_type_url_names_the_path():
    err = refused(compile_listener, listener([chain("a", filter_config={"@type": T + "google.protobuf.Empty"})]))
    assert err.type_url == LISTENER_TYPE_URL and err.resource_name == "l"
    assert err.field_path == "filter_chains[0].filters[0].typed_config"
    assert "google.protobuf.Empty" in err.reason
    assert str(err).startswith("Listener 'l': filter_chains[0].filters[0].typed_config: unsupported type URL")


def test_unknown_listener_filter_is_refused():
    from envoy.extensions.filters.listener.proxy_protocol.v3 import proxy_protocol_pb2  # noqa: F401

    msg = listener(listener_filters=[{"name": "envoy.filters.listener.proxy_protocol",
                                      "typed_config": {"@type": T + "envoy.extensions.filters.listener.proxy_protocol.v3.ProxyProtocol"}}])
    err = refused(compile_listener, msg)
    assert err.field_path == "listener_filters[0].typed_config"
    assert "ProxyProtocol" in err.reason


def test_unknown_http_filter_is_refused_unless_optional():
    from envoy.extensions.filters.http.buffer.v3 import buffer_pb2  # noqa: F401

    buffer = {"name": "envoy.filters.http.buffer",
              "typed_config": {"@type": T + "envoy.extensions.filters.http.buffer.v3.Buffer", "max_request_bytes": 10}}
    err = refused(compile_listener, listener([chain("a", filter_config=hcm(http_filters=[buffer, ROUTER]))]))
    assert err.field_path == "filter_chains[0].filters[0].typed_config.http_filters[0].typed_config"
    ok = compile_listener(listener([chain("a", filter_config=hcm(http_filters=[{**buffer, "is_optional": True}, ROUTER]))]))
    assert [f.kind for f in ok.filter_chains[0].http.http_filters] == ["router"]


@pytest.mark.parametrize("extra, path", [
    ({"freebind": True}, "freebind"),
    ({"socket_options": [{"level": 1, "name": 2, "int_value": 1}]}, "socket_options"),
    ({"additional_addresses": [{"address": {"socket_address": {"address": "::", "port_value": 1}}}]}, "additional_addresses"),
])
def test_set_but_unsupported_listener_fields(extra, path):
    assert refused(compile_listener, listener(**extra)).field_path == path


def test_nested_unsupported_fields_carry_the_full_path():
    tracing_route = route_configuration([vhost("a", ["*"], [{"match": {"prefix": "/"}, "route": {"cluster": "c"},
                                                              "tracing": {"client_sampling": {"numerator": 1}}}])])
    assert refused(compile_route_configuration, tracing_route).field_path == "virtual_hosts[0].routes[0].tracing"
    rate_limited = route_configuration([vhost("a", ["*"], [{"match": {"prefix": "/"}, "route": {"cluster": "c", "rate_limits": [{"actions": [{"remote_address": {}}]}]}}])])
    assert refused(compile_route_configuration, rate_limited).field_path == "virtual_hosts[0].routes[0].route.rate_limits"
    scoped = listener([chain("a", filter_config={**hcm(), "local_reply_config": {"mappers": [{"filter": {"status_code_filter": {"comparison": {"op": "EQ", "value": {"default_value": 503, "runtime_key": "k"}}}}}]}})])
    assert refused(compile_listener, scoped).field_path == "filter_chains[0].filters[0].typed_config.local_reply_config"
    hc = cluster({"type": "STATIC", "health_checks": [{"timeout": "1s", "interval": "1s", "tcp_health_check": {}}]})
    assert refused(compile_cluster, hc).field_path == "health_checks"
    access = listener([chain("a", filter_config={**hcm(), "access_log": [{"name": "x", "filter": {"not_health_check_filter": {}},
                                                                          "typed_config": {"@type": T + "envoy.extensions.access_loggers.file.v3.FileAccessLog", "path": "/dev/null"}}]})])
    assert refused(compile_listener, access).field_path == "filter_chains[0].filters[0].typed_config.access_log[0].filter"


def test_unknown_field_numbers_are_refused():
    raw = listener().SerializeToString() + bytes([0xF8, 0x3F, 0x01])  # field 1023, varint 1
    err = refused(compile_listener, listener_pb2.Listener.FromString(raw))
    assert "unknown field number 1023" in err.reason


def test_invalid_is_an_unsupported_and_bad_regex_is_invalid():
    bad = route_configuration([vhost("a", ["*"], [{"match": {"safe_regex": {"regex": "(?<=x)y"}}, "route": {"cluster": "c"}}])])
    err = refused(compile_route_configuration, bad)
    assert isinstance(err, Invalid) and err.field_path == "virtual_hosts[0].routes[0].match.safe_regex.regex"


def test_unknown_per_filter_config_type_is_refused_unless_optional():
    from envoy.config.route.v3 import route_components_pb2  # noqa: F401

    lua = {"@type": T + "google.protobuf.Empty"}
    bad = route_configuration([vhost("a", ["*"], [{"match": {"prefix": "/"}, "route": {"cluster": "c"},
                                                   "typed_per_filter_config": {"envoy.filters.http.lua": lua}}])])
    err = refused(compile_route_configuration, bad)
    assert err.field_path == 'virtual_hosts[0].routes[0].typed_per_filter_config["envoy.filters.http.lua"]'
    optional = {"@type": T + "envoy.config.route.v3.FilterConfig", "config": lua, "is_optional": True}
    table = compile_route_configuration(route_configuration([vhost("a", ["*"], [{
        "match": {"prefix": "/"}, "route": {"cluster": "c"}, "typed_per_filter_config": {"envoy.filters.http.lua": optional}}])]))
    assert table.virtual_hosts[0].routes[0].filter_config("envoy.filters.http.lua") is None


def _all_allow_lists() -> list[Fields]:
    out = []
    for info in pkgutil.iter_modules(config_pkg.__path__):
        mod = importlib.import_module(f"isthmus.proxy.config.{info.name}")
        out.extend(v for v in vars(mod).values() if isinstance(v, Fields))
    return out


def test_every_allow_list_partitions_its_message():
    lists = _all_allow_lists()
    assert len(lists) > 60
    for f in lists:
        assert f.honoured.isdisjoint(f.ignored), f.full_name
        assert all(reason for reason in f.ignored.values()), f"{f.full_name}: every ignored field says why"


def test_unknown_enum_values_are_refused():
    msg = route_configuration([vhost("a", ["*"])])
    msg.virtual_hosts[0].require_tls = 7  # a value a newer Envoy might define
    err = refused(compile_route_configuration, msg)
    assert err.field_path == "virtual_hosts[0].require_tls" and "value 7" in err.reason
