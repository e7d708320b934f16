"""Routes tested as traffic: a virtual request goes through the generated RouteConfiguration
(simulate_routes.match_route) and we assert where it lands — for every Bookinfo corpus
VirtualService (with destination-rule-all.yaml) and for the all-features VirtualService.
"""
from __future__ import annotations

import pytest

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2

from isthmus.pilot.model.proxy import CaptureMode
from isthmus.pilot.translate.routes import build_routes
from isthmus.pilot.translate.simulate_routes import destinations, match_route, select_virtual_host
from tests.conftest import corpus_path
from tests.pilot.fixtures import BOOKINFO_SERVICES, push_from_yaml, sidecar
from tests.pilot.translate.test_routes import FEATURE_YAML, WILDCARD_YAML

BOOKINFO = ("istio-samples", "bookinfo", "networking")


def svc(name: str, subset: str = "", port: int = 9080) -> str:
    return f"outbound|{port}|{subset}|{name}.default.svc.cluster.local"


def corpus_text(*files: str) -> str:
    return "\n---\n".join(corpus_path(*BOOKINFO, f).read_text() for f in files)


def route_configs(extra: str, proxy=None) -> dict[str, route_pb2.RouteConfiguration]:
    push = push_from_yaml(BOOKINFO_SERVICES + "\n---\n" + extra)
    return {c.name: c for c in build_routes(proxy or sidecar(capture=CaptureMode.IPTABLES), push, ["9080", "http_proxy"])}


def land(config, authority: str, path: str = "/", headers=None, method: str = "GET"):
    hit = match_route(config, authority, path, headers or {}, method)
    assert hit is not None, f"{authority}{path} found no route (404 NR)"
    return hit


def fault_of(route: rc.Route) -> fault_pb2.HTTPFault | None:
    any_ = route.typed_per_filter_config.get("envoy.filters.http.fault")
    if any_ is None:
        return None
    out = fault_pb2.HTTPFault()
    any_.Unpack(out)
    return out


JASON = {"end-user": "jason"}

# (corpus file, authority, request headers, expected (cluster, weight) list, expected fault kind)
CORPUS_CASES = [
    ("virtual-service-all-v1.yaml", "reviews:9080", {}, [(svc("reviews", "v1"), 100)], None),
    ("virtual-service-all-v1.yaml", "reviews:9080", JASON, [(svc("reviews", "v1"), 100)], None),
    ("virtual-service-all-v1.yaml", "ratings.default.svc.cluster.local:9080", {}, [(svc("ratings", "v1"), 100)], None),
    ("virtual-service-all-v1.yaml", "details:9080", {}, [(svc("details", "v1"), 100)], None),
    ("virtual-service-details-v2.yaml", "details:9080", {}, [(svc("details", "v2"), 100)], None),
    ("virtual-service-ratings-db.yaml", "reviews:9080", {}, [(svc("reviews", "v3"), 100)], None),
    ("virtual-service-ratings-db.yaml", "ratings:9080", {}, [(svc("ratings", "v2"), 100)], None),
    ("virtual-service-ratings-mysql.yaml", "ratings:9080", {}, [(svc("ratings", "v2-mysql"), 100)], None),
    ("virtual-service-ratings-mysql.yaml", "reviews.default:9080", {}, [(svc("reviews", "v3"), 100)], None),
    ("virtual-service-ratings-mysql-vm.yaml", "ratings:9080", {}, [(svc("ratings", "v2-mysql-vm"), 100)], None),
    ("virtual-service-ratings-test-abort.yaml", "ratings:9080", JASON, [(svc("ratings", "v1"), 100)], "abort"),
    ("virtual-service-ratings-test-abort.yaml", "ratings:9080", {}, [(svc("ratings", "v1"), 100)], None),
    ("virtual-service-ratings-test-delay.yaml", "ratings:9080", JASON, [(svc("ratings", "v1"), 100)], "delay"),
    ("virtual-service-ratings-test-delay.yaml", "ratings:9080", {"end-user": "mallory"}, [(svc("ratings", "v1"), 100)], None),
    ("virtual-service-reviews-50-v3.yaml", "reviews:9080", {}, [(svc("reviews", "v1"), 50), (svc("reviews", "v3"), 50)], None),
    ("virtual-service-reviews-80-20.yaml", "reviews:9080", {}, [(svc("reviews", "v1"), 80), (svc("reviews", "v2"), 20)], None),
    ("virtual-service-reviews-90-10.yaml", "reviews:9080", {}, [(svc("reviews", "v1"), 90), (svc("reviews", "v2"), 10)], None),
    ("virtual-service-reviews-jason-v2-v3.yaml", "reviews:9080", JASON, [(svc("reviews", "v2"), 100)], None),
    ("virtual-service-reviews-jason-v2-v3.yaml", "reviews:9080", {}, [(svc("reviews", "v3"), 100)], None),
    ("virtual-service-reviews-test-v2.yaml", "reviews:9080", JASON, [(svc("reviews", "v2"), 100)], None),
    ("virtual-service-reviews-test-v2.yaml", "reviews:9080", {"end-user": "Jason"}, [(svc("reviews", "v1"), 100)], None),
    ("virtual-service-reviews-v2-v3.yaml", "reviews:9080", {}, [(svc("reviews", "v2"), 50), (svc("reviews", "v3"), 50)], None),
    ("virtual-service-reviews-v3.yaml", "reviews.default.svc.cluster.local:9080", {}, [(svc("reviews", "v3"), 100)], None),
    ("fault-injection-details-v1.yaml", "details:9080", {}, [(svc("details", "v1"), 100)], "abort"),
]


@pytest.mark.parametrize("route_name", ["9080", "http_proxy"])
@pytest.mark.parametrize("vs_file,authority,headers,expected,fault", CORPUS_CASES)
def test_bookinfo_corpus_traffic(vs_file, authority, headers, expected, fault, route_name):
    configs = route_configs(corpus_text("destination-rule-all.yaml", vs_file))
    vhost_name, route = land(configs[route_name], authority, "/reviews/0", headers)
    host = authority.split(".")[0].split(":")[0]
    assert vhost_name == f"{host}.default.svc.cluster.local:9080"
    assert destinations(route) == expected
    f = fault_of(route)
    if fault is None:
        assert f is None
    else:
        assert f is not None and f.HasField(fault)
        assert not route.route.HasField("retry_policy")


def test_corpus_fault_values_are_istios():
    configs = route_configs(corpus_text("destination-rule-all.yaml", "virtual-service-ratings-test-delay.yaml"))
    _, route = land(configs["9080"], "ratings:9080", "/ratings/0", JASON)
    delay = fault_of(route).delay
    assert delay.fixed_delay.seconds == 7 and delay.percentage.numerator == 1_000_000
    configs = route_configs(corpus_text("fault-injection-details-v1.yaml"))
    _, route = land(configs["9080"], "details:9080")
    assert fault_of(route).abort.http_status == 555


def test_unknown_hosts_take_the_catch_all():
    configs = route_configs(corpus_text("destination-rule-all.yaml", "virtual-service-all-v1.yaml"))
    vhost_name, route = land(configs["9080"], "httpbin.org")
    assert vhost_name == "allow_any" and destinations(route) == [("PassthroughCluster", 100)]
    vhost_name, route = land(configs["http_proxy"], "10.1.2.3:8080")
    assert vhost_name == "allow_any" and destinations(route) == [("PassthroughCluster", 100)]


def test_http_proxy_needs_the_port_in_the_authority():
    configs = route_configs("")
    assert land(configs["http_proxy"], "reviews")[0] == "allow_any"  # would mean port 80
    assert land(configs["http_proxy"], "reviews.default.svc:9080")[0] == "reviews.default.svc.cluster.local:9080"


# ---------------------------------------------------------------- the all-features VirtualService as traffic

@pytest.fixture(scope="module")
def httpbin():
    push = push_from_yaml(BOOKINFO_SERVICES + "\n---\n" + FEATURE_YAML)
    return {c.name: c for c in build_routes(sidecar(), push, ["8000", "80", "http_proxy"])}


def httpbin_route(configs, path, headers=None, method="GET", name="8000", authority="httpbin:8000"):
    return land(configs[name], authority, path, headers, method)[1]


FULL_HEADERS = {"x-a": "1", "x-b": "pp", "x-c": "v12", "x-d": ""}


@pytest.mark.parametrize("path,headers,method,expected", [
    ("/status", {}, "GET", "exact-rewrite.status"),
    ("/STATUS", {}, "GET", "exact-rewrite.status"),  # ignoreUriCase
    ("/status/x", {}, "GET", "catch-all"),  # exact, not prefix
    ("/?q=yes", FULL_HEADERS, "POST", "headers"),
    ("/?q=yes", {**FULL_HEADERS, "x-e": "yes"}, "POST", "headers"),  # withoutHeaders x-e=no only
    ("/?q=yes", {**FULL_HEADERS, "x-e": "no"}, "POST", "catch-all"),
    ("/?q=yes", FULL_HEADERS, "GET", "catch-all"),  # method
    ("/?q=no", FULL_HEADERS, "POST", "catch-all"),  # query param
    ("/?q=yes", {**FULL_HEADERS, "x-c": "v"}, "POST", "catch-all"),  # regex is a full match
    ("/?q=yes", {k: v for k, v in FULL_HEADERS.items() if k != "x-d"}, "POST", "catch-all"),  # presence
    ("/old/page", {}, "GET", "redirect"),
    ("/teapot/earl-grey", {}, "GET", "direct"),
    ("/teapot", {}, "GET", "catch-all"),
    ("/fault", {}, "GET", "fault"),
    ("/src/a", {}, "GET", "source"),  # the proxy is productpage
    ("/gw", {}, "GET", "catch-all"),  # gateway-only route is not on the sidecar
    ("/p", {}, "GET", "catch-all"),  # port-80-only route
])
def test_feature_traffic_on_port_8000(httpbin, path, headers, method, expected):
    assert httpbin_route(httpbin, path, headers, method).name == expected


def test_feature_traffic_by_port_and_authority(httpbin):
    assert httpbin_route(httpbin, "/p", name="80", authority="httpbin").name == "port80"
    assert httpbin_route(httpbin, "/p", name="80", authority="10.0.0.10").name == "port80"  # VIP
    assert httpbin_route(httpbin, "/p", name="http_proxy", authority="httpbin.default:80").name == "port80"
    assert httpbin_route(httpbin, "/p", name="http_proxy", authority="httpbin.default:8000").name == "catch-all"
    # the headers route also needs :authority to start with "httpbin" — a VIP authority fails it
    hit = match_route(httpbin["8000"], "10.0.0.10:8000", "/?q=yes", FULL_HEADERS, "POST")
    assert hit is not None and hit[1].name == "catch-all"


def test_feature_redirect_and_weights_as_seen_by_traffic(httpbin):
    redirect = httpbin_route(httpbin, "/old").redirect
    assert (redirect.host_redirect, redirect.path_redirect, redirect.port_redirect) == ("example.com", "/new", 8443)
    weighted = httpbin_route(httpbin, "/?q=yes", FULL_HEADERS, "POST")
    assert destinations(weighted) == [(svc("httpbin", "v1", 8000), 80), (svc("httpbin", "v2", 8000), 20)]


def test_wildcard_service_entry_traffic():
    configs = route_configs(WILDCARD_YAML)
    push = push_from_yaml(BOOKINFO_SERVICES + "\n---\n" + WILDCARD_YAML)
    port80 = build_routes(sidecar(), push, ["80"])[0]
    vh, route = land(port80, "en.wiki.example", "/api/x")
    assert vh == "*.wiki.example:80" and destinations(route) == [("outbound|80||*.wiki.example", 100)]
    assert match_route(port80, "en.wiki.example", "/other") is None  # the VirtualService has no catch-all
    assert land(port80, "wiki.example")[0] == "allow_any"  # `*.` needs a label in front
    assert land(configs["http_proxy"], "en.wiki.example", "/api")[0] == "*.wiki.example:80"


# ---------------------------------------------------------------- the simulator itself (Envoy's rules)

def _config(*vhosts: tuple[str, list[str]], ignore_port: bool = False) -> route_pb2.RouteConfiguration:
    out = route_pb2.RouteConfiguration(name="t", ignore_port_in_host_matching=ignore_port)
    for name, domains in vhosts:
        out.virtual_hosts.add(name=name, domains=domains).routes.add(match=rc.RouteMatch(prefix="/"), route=rc.RouteAction(cluster=name))
    return out


@pytest.mark.parametrize("authority,expected", [
    ("api.example.com", "exact"),
    ("API.Example.com", "exact"),
    ("x.api.example.com", "long-suffix"),
    ("x.example.com", "short-suffix"),
    ("example.com", "prefix"),  # `*.example.com` needs at least one character before the suffix
    ("example.org", "prefix"),
    ("other.net", "any"),
])
def test_virtual_host_selection_order(authority, expected):
    config = _config(
        ("any", ["*"]), ("prefix", ["example.*"]), ("short-suffix", ["*.example.com"]),
        ("long-suffix", ["*.api.example.com"]), ("exact", ["api.example.com"]),
    )
    assert select_virtual_host(config, authority).name == expected


def test_ignore_port_in_host_matching():
    config = _config(("a", ["reviews"]))
    assert select_virtual_host(config, "reviews:9080") is None
    config.ignore_port_in_host_matching = True
    assert select_virtual_host(config, "reviews:9080").name == "a"


def test_header_matcher_inversion_rules():
    route = rc.Route(match=rc.RouteMatch(prefix="/", headers=[
        rc.HeaderMatcher(name="x", string_match={"exact": "a"}, invert_match=True),
    ]))
    config = route_pb2.RouteConfiguration()
    config.virtual_hosts.add(name="v", domains=["*"]).routes.append(route)
    assert match_route(config, "h", "/", {"x": "b"}) is not None
    assert match_route(config, "h", "/", {"x": "a"}) is None
    assert match_route(config, "h", "/", {}) is None  # missing header: no match even inverted
    config.virtual_hosts[0].routes[0].match.headers[0].treat_missing_header_as_empty = True
    assert match_route(config, "h", "/", {}) is not None


def test_path_matchers_and_query_strings():
    config = route_pb2.RouteConfiguration()
    vh = config.virtual_hosts.add(name="v", domains=["*"])
    vh.routes.add(name="exact", match=rc.RouteMatch(path="/a"))
    vh.routes.add(name="regex", match=rc.RouteMatch(safe_regex={"regex": "/r/[0-9]+"}))
    vh.routes.add(name="sep", match=rc.RouteMatch(path_separated_prefix="/api"))
    assert match_route(config, "h", "/a?x=1")[1].name == "exact"
    assert match_route(config, "h", "/r/42?x=1")[1].name == "regex"
    assert match_route(config, "h", "/r/42x") is None
    assert match_route(config, "h", "/api/v1")[1].name == "sep"
    assert match_route(config, "h", "/apiary") is None
