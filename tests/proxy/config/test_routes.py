"""Route tables: Envoy's virtual-host domain selection, route matchers (path, headers,
query, gRPC, runtime fraction) and actions (weighted clusters, rewrites, redirects,
direct responses, header mutations, per-filter configs, retries, hashing, mirrors)."""
from __future__ import annotations

import pytest

from isthmus.proxy.config.errors import Invalid, Unsupported
from isthmus.proxy.config.http_filters import DISABLED, CorsPolicyConfig, FaultConfig
from isthmus.proxy.config.route_action import DirectResponseConfig, RedirectConfig
from isthmus.proxy.config.routes import compile_route_configuration, strip_port
from tests.proxy.config.helpers import T, route_configuration, vhost

DOMAINS = [
    vhost("exact", ["www.example.com", "reviews:9080"]),
    vhost("suffix-long", ["*.api.example.com"]),
    vhost("suffix", ["*.example.com", "*-bar.foo.com"]),
    vhost("prefix", ["foo.*", "foo.bar.*"]),
    vhost("default", ["*"]),
]


def table(vhosts, **extra):
    return compile_route_configuration(route_configuration(vhosts, **extra))


def select(t, authority: str) -> str | None:
    vh = t.select_virtual_host(authority)
    return vh.name if vh else None


@pytest.mark.parametrize("authority, expected", [
    ("www.example.com", "exact"),
    ("WWW.EXAMPLE.COM", "exact"),
    ("reviews:9080", "exact"),
    ("reviews", "default"),  # the port is part of the domain
    ("www.example.com:80", "default"),
    ("v1.api.example.com", "suffix-long"),
    ("api.example.com", "suffix"),
    ("x.example.com", "suffix"),
    ("baz-bar.foo.com", "suffix"),
    ("-bar.foo.com", "default"),  # a wildcard never matches the empty string
    ("foo.bar.baz", "prefix"),
    ("foo.x", "prefix"),
    ("foo.", "default"),
    ("other", "default"),
])
def test_domain_selection(authority, expected):
    assert select(table(DOMAINS), authority) == expected


def test_no_default_vhost_means_no_match_and_ports_can_be_ignored():
    t = table([vhost("a", ["reviews"])])
    assert select(t, "reviews:9080") is None and t.match("reviews:9080", "/", {}.get) is None
    assert select(table([vhost("a", ["reviews"])], ignore_port_in_host_matching=True), "reviews:9080") == "a"
    assert strip_port("[::1]:80") == "[::1]" and strip_port("[::1]") == "[::1]" and strip_port("a:1") == "a"


def test_duplicate_domains_are_invalid():
    with pytest.raises(Invalid) as e:
        table([vhost("a", ["x.com"]), vhost("b", ["X.com"])])
    assert e.value.field_path == "virtual_hosts[1].domains" and "'a'" in e.value.reason
    with pytest.raises(Invalid):
        table([vhost("a", ["*"]), vhost("b", ["*"])])


def routes_for(*routes, **vhost_extra):
    return table([vhost("v", ["*"], list(routes), **vhost_extra)])


def r(name: str, match: dict, **action) -> dict:
    return {"name": name, "match": match, **(action or {"route": {"cluster": name}})}


def hit(t, path="/", headers=None, method="GET", query="", **kw) -> str | None:
    h = {k.lower(): v for k, v in (headers or {}).items()}
    found = t.match("host", path, h.get, method, query, **kw)
    return found[1].name if found else None


def test_path_matchers_and_case_sensitivity():
    t = routes_for(
        r("exact", {"path": "/Status"}),
        r("exact-nocase", {"path": "/Health", "case_sensitive": False}),
        r("regex", {"safe_regex": {"regex": "/items/[0-9]+"}}),
        r("sep", {"path_separated_prefix": "/api"}),
        r("prefix-nocase", {"prefix": "/Docs", "case_sensitive": False}),
        r("root", {"prefix": "/"}),
    )
    assert hit(t, "/Status") == "exact" and hit(t, "/status") == "root"
    assert hit(t, "/HEALTH") == "exact-nocase"
    assert hit(t, "/items/42") == "regex" and hit(t, "/items/42/x") == "root"  # regex must match the whole path
    assert hit(t, "/api") == "sep" and hit(t, "/api/v1") == "sep" and hit(t, "/apiv1") == "root"
    assert hit(t, "/docs/x") == "prefix-nocase"
    assert hit(t, "/Status", query="a=1") == "exact"  # query is not part of path matching


def test_header_matchers():
    t = routes_for(
        r("exact", {"prefix": "/", "headers": [{"name": "x-a", "string_match": {"exact": "1"}}]}),
        r("regex", {"prefix": "/", "headers": [{"name": "x-b", "safe_regex_match": {"regex": "v[0-9]+"}}]}),
        r("nocase", {"prefix": "/", "headers": [{"name": "x-c", "string_match": {"prefix": "ab", "ignore_case": True}}]}),
        r("suffix-contains", {"prefix": "/", "headers": [{"name": "x-d", "string_match": {"suffix": "z"}},
                                                          {"name": "x-d", "contains_match": "mid"}]}),
        r("range", {"prefix": "/", "headers": [{"name": "x-n", "range_match": {"start": 10, "end": 20}}]}),
        r("absent", {"prefix": "/", "headers": [{"name": "x-gone", "present_match": False}, {"name": "x-p"}]}),
        r("not-no", {"prefix": "/", "headers": [{"name": "x-e", "string_match": {"exact": "no"}, "invert_match": True,
                                                  "treat_missing_header_as_empty": True}, {"name": "x-q", "present_match": True}]}),
        r("inverted-missing", {"prefix": "/", "headers": [{"name": "x-f", "string_match": {"exact": "no"}, "invert_match": True},
                                                           {"name": "x-r", "present_match": True}]}),
        r("method", {"prefix": "/", "headers": [{"name": ":method", "string_match": {"exact": "POST"}},
                                                 {"name": ":authority", "string_match": {"exact": "host"}}]}),
        r("root", {"prefix": "/"}),
    )
    assert hit(t, headers={"x-a": "1"}) == "exact" and hit(t, headers={"x-a": "2"}) == "root"
    assert hit(t, headers={"x-b": "v12"}) == "regex" and hit(t, headers={"x-b": "v12x"}) == "root"
    assert hit(t, headers={"x-c": "ABc"}) == "nocase"
    assert hit(t, headers={"x-d": "amidz"}) == "suffix-contains" and hit(t, headers={"x-d": "amid"}) == "root"
    assert hit(t, headers={"x-n": "15"}) == "range" and hit(t, headers={"x-n": "20"}) == "root" and hit(t, headers={"x-n": "x"}) == "root"
    assert hit(t, headers={"x-p": ""}) == "absent" and hit(t, headers={"x-p": "", "x-gone": "1"}) == "root"
    # invert + treat missing as empty: a missing header is "" which is not "no" → matches.
    assert hit(t, headers={"x-q": "1"}) == "not-no" and hit(t, headers={"x-q": "1", "x-e": "no"}) == "root"
    # invert without treat-missing: a missing header never matches.
    assert hit(t, headers={"x-r": "1"}) == "root" and hit(t, headers={"x-r": "1", "x-f": "yes"}) == "inverted-missing"
    assert hit(t, method="POST") == "method" and hit(t, method="GET") == "root"


def test_query_grpc_and_runtime_fraction():
    t = routes_for(
        r("q", {"prefix": "/", "query_parameters": [{"name": "debug", "string_match": {"exact": "on"}}, {"name": "v", "present_match": True}]}),
        r("qre", {"prefix": "/", "query_parameters": [{"name": "id", "string_match": {"safe_regex": {"regex": "[a-z]+%20[a-z]+"}}}]}),
        r("grpc", {"prefix": "/", "grpc": {}}),
        r("half", {"prefix": "/", "runtime_fraction": {"default_value": {"numerator": 50, "denominator": "HUNDRED"}}}),
        r("root", {"prefix": "/"}),
    )
    assert hit(t, query="debug=on&v") == "q" and hit(t, query="debug=on") == "half"
    assert hit(t, query="id=john%20doe&id=x", random_value=99) == "qre"  # the first value, not percent-decoded (as Envoy)
    assert hit(t, headers={"content-type": "application/grpc+proto"}) == "grpc"
    assert hit(t, headers={"content-type": "application/grpcx"}, random_value=50) == "root"
    assert hit(t, random_value=49) == "half" and hit(t, random_value=150) == "root"


def test_weighted_clusters_and_per_cluster_headers():
    t = routes_for(r("w", {"prefix": "/"}, route={"weighted_clusters": {"clusters": [
        {"name": "v1", "weight": 80, "request_headers_to_add": [{"header": {"key": "x-dest", "value": "v1"}}]},
        {"name": "v2", "weight": 20},
        {"name": "v3", "weight": 0}]}}))
    action = t.virtual_hosts[0].routes[0].action
    wc = action.weighted_clusters
    assert wc.total_weight == 100
    picks = [wc.pick(i).name for i in range(200)]
    assert picks.count("v1") == 160 and picks.count("v2") == 40 and "v3" not in picks
    assert [h.key for m in wc.clusters[0].request_mutations for h in m.add] == ["x-dest"]
    with pytest.raises(Invalid):
        routes_for(r("w", {"prefix": "/"}, route={"weighted_clusters": {"clusters": [{"name": "a", "weight": 1}], "total_weight": 5}}))
    with pytest.raises(Invalid):
        routes_for(r("w", {"prefix": "/"}, route={"weighted_clusters": {"clusters": [{"name": "a", "weight": 0}]}}))


def test_path_rewrites():
    t = routes_for(
        r("regex", {"prefix": "/rr/"}, route={"cluster": "c", "regex_rewrite": {"pattern": {"regex": "^/rr/(.*)$"}, "substitution": "/\\1"}}),
        r("swap", {"prefix": "/service/"}, route={"cluster": "c", "regex_rewrite": {"pattern": {"regex": "^/service/([^/]+)(/.*)$"},
                                                                                        "substitution": "\\2/instance/\\1"}}),
        r("prefix", {"prefix": "/old/"}, route={"cluster": "c", "prefix_rewrite": "/new/"}),
        r("exact", {"path": "/status"}, route={"cluster": "c", "prefix_rewrite": "/get"}),
        r("all", {"prefix": "/a"}, route={"cluster": "c", "regex_rewrite": {"pattern": {"regex": "a"}, "substitution": "b"}}),
    )
    routes = {rt.name: rt for rt in t.virtual_hosts[0].routes}
    assert routes["regex"].rewrite_path("/rr/x/y") == "/x/y"
    assert routes["swap"].rewrite_path("/service/foo/v1/api") == "/v1/api/instance/foo"
    assert routes["prefix"].rewrite_path("/old/a/b") == "/new/a/b"
    assert routes["exact"].rewrite_path("/status") == "/get"  # exact match: the whole path
    assert routes["all"].rewrite_path("/aaa") == "/bbb"  # every match is replaced (RE2 GlobalReplace)


def test_redirect_and_direct_response():
    t = routes_for(
        r("redir", {"prefix": "/old"}, redirect={"host_redirect": "example.com", "port_redirect": 8443, "scheme_redirect": "HTTPS",
                                                  "path_redirect": "/new", "response_code": "FOUND", "strip_query": True}),
        r("https", {"prefix": "/h"}, redirect={"https_redirect": True}),
        r("teapot", {"prefix": "/"}, direct_response={"status": 418, "body": {"inline_string": "I'm a teapot"}}),
    )
    redir, https, teapot = (rt.action for rt in t.virtual_hosts[0].routes)
    assert redir == RedirectConfig(scheme="https", host="example.com", port=8443, path="/new", response_code=302, strip_query=True)
    assert https.scheme == "https" and https.response_code == 301
    assert teapot == DirectResponseConfig(418, b"I'm a teapot")
    assert [rt.kind for rt in t.virtual_hosts[0].routes] == ["redirect", "redirect", "direct_response"]
    with pytest.raises(Invalid) as e:
        routes_for(r("big", {"prefix": "/"}, direct_response={"status": 200, "body": {"inline_string": "x" * 5000}}))
    assert e.value.field_path == "virtual_hosts[0].routes[0].direct_response.body"


def _mutation_keys(levels):
    return [(h.key, h.literal) for level in levels for h in level.add]


def test_header_mutation_order_and_values():
    def build(most_specific: bool):
        add = lambda v: [{"header": {"key": "x-level", "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]  # noqa: E731
        return table([vhost("v", ["*"], [r("rt", {"prefix": "/"}, route={"cluster": "c"}) | {"request_headers_to_add": add("route")}],
                            request_headers_to_add=add("vhost"))],
                     request_headers_to_add=add("config"), most_specific_header_mutations_wins=most_specific)
    default = build(False).virtual_hosts[0].routes[0]
    assert [v for _, v in _mutation_keys(default.request_mutations)] == ["route", "vhost", "config"]  # config applied last: wins
    reverse = build(True).virtual_hosts[0].routes[0]
    assert [v for _, v in _mutation_keys(reverse.request_mutations)] == ["config", "vhost", "route"]
    t = routes_for(r("rt", {"prefix": "/"}) | {
        "request_headers_to_add": [{"header": {"key": "X-Peer", "value": "%DOWNSTREAM_REMOTE_ADDRESS%"}, "append_action": "ADD_IF_ABSENT"}],
        "response_headers_to_remove": ["x-internal"]})
    rt = t.virtual_hosts[0].routes[0]
    h = rt.request_mutations[0].add[0]
    assert h.key == "x-peer" and h.append_action == "add_if_absent" and h.literal is None
    assert h.value[0].command == "DOWNSTREAM_REMOTE_ADDRESS"
    assert rt.response_mutations[0].remove == ("x-internal",)
    with pytest.raises(Invalid):
        routes_for(r("rt", {"prefix": "/"}) | {"request_headers_to_add": [{"header": {"key": ":path", "value": "/x"}}]})


FAULT = {"@type": T + "envoy.extensions.filters.http.fault.v3.HTTPFault",
         "abort": {"http_status": 503, "percentage": {"numerator": 10}}}
CORS = {"@type": T + "envoy.extensions.filters.http.cors.v3.CorsPolicy", "allow_origin_string_match": [{"exact": "https://a"}],
        "allow_methods": "GET"}


def test_per_filter_config_most_specific_wins():
    t = table([vhost("v", ["*"], [
        r("own", {"prefix": "/own"}) | {"typed_per_filter_config": {"envoy.filters.http.fault": FAULT}},
        r("off", {"prefix": "/off"}) | {"typed_per_filter_config": {"envoy.filters.http.cors": {
            "@type": T + "envoy.config.route.v3.FilterConfig", "disabled": True}}},
        r("inherit", {"prefix": "/"}),
    ], typed_per_filter_config={"envoy.filters.http.cors": CORS})])
    own, off, inherit = t.virtual_hosts[0].routes
    assert isinstance(own.filter_config("envoy.filters.http.fault"), FaultConfig)
    assert own.filter_config("envoy.filters.http.fault").abort.http_status == 503
    assert isinstance(own.filter_config("envoy.filters.http.cors"), CorsPolicyConfig)
    assert off.filter_config("envoy.filters.http.cors") is DISABLED
    cors = inherit.filter_config("envoy.filters.http.cors")
    assert cors.allow_origins[0].matches("https://a") and cors.forward_not_matching_preflights
    assert inherit.filter_config("envoy.filters.http.fault") is None


def test_retry_timeouts_hash_and_mirrors():
    vh_retry = {"retry_on": "5xx", "num_retries": 4}
    t = table([vhost("v", ["*"], [
        r("own", {"prefix": "/own"}, route={"cluster": "c", "timeout": "0s", "idle_timeout": "9s",
                                             "retry_policy": {"retry_on": "connect-failure,retriable-status-codes", "retriable_status_codes": [503],
                                                              "per_try_timeout": "1s", "retry_back_off": {"base_interval": "0.1s"},
                                                              "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
                                                                                        "typed_config": {"@type": T + "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}],
                                                              "host_selection_retry_max_attempts": 5},
                                             "hash_policy": [{"header": {"header_name": "X-User"}}, {"cookie": {"name": "s", "ttl": "60s", "path": "/"}},
                                                             {"connection_properties": {"source_ip": True}, "terminal": True}],
                                             "request_mirror_policies": [{"cluster": "shadow", "runtime_fraction": {"default_value": {"numerator": 25}}}]}),
        r("inherit", {"prefix": "/"}),
    ], retry_policy=vh_retry)])
    own, inherit = (rt.action for rt in t.virtual_hosts[0].routes)
    assert own.timeout is None and own.idle_timeout == 9.0 and inherit.timeout == 15.0  # Envoy's default route timeout
    rp = own.retry_policy
    assert rp.retry_on == {"connect-failure", "retriable-status-codes"} and rp.retriable_status_codes == {503}
    assert rp.per_try_timeout == 1.0 and rp.back_off_base == 0.1 and rp.back_off_max == pytest.approx(1.0)
    assert rp.retry_host_predicates == ("previous_hosts",) and rp.host_selection_retry_max_attempts == 5
    assert inherit.retry_policy.num_retries == 4 and inherit.retry_policy.retry_on == {"5xx"}
    assert [(h.kind, h.name, h.terminal) for h in own.hash_policies] == [("header", "x-user", False), ("cookie", "s", False), ("source_ip", "", True)]
    assert own.hash_policies[1].cookie_ttl == 60.0
    assert own.mirror_policies[0].cluster == "shadow" and own.mirror_policies[0].fraction.percent == 25.0
    with pytest.raises(Unsupported) as e:
        routes_for(r("x", {"prefix": "/"}, route={"cluster": "c", "retry_policy": {"retry_on": "5xx,sometimes"}}))
    assert e.value.field_path == "virtual_hosts[0].routes[0].route.retry_policy.retry_on" and "sometimes" in e.value.reason
