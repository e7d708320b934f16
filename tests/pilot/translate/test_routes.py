"""RDS translation for sidecars: virtual hosts, domains, and VirtualService fields → Envoy fields.

Structure and field mapping are asserted on the protos; where a request lands is
asserted through `simulate_routes` (test_routes_simulation.py) and the whole output
is checked by real Envoy (test_routes_envoy.py). FEATURE_YAML exercises every field.
"""
from __future__ import annotations

import pytest
from google.protobuf import json_format

from isthmus.pilot.model.mesh import MeshConfig, RetryPolicy
from isthmus.pilot.model.proxy import CaptureMode
from isthmus.pilot.translate.routes import build_routes
from tests.pilot.fixtures import BOOKINFO_SERVICES, push_from_yaml, sidecar

FEATURE_YAML = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin}
spec:
  hosts: [httpbin.default.svc.cluster.local]
  addresses: [10.0.0.10]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}, {number: 80, name: http-web, protocol: HTTP}]
  endpoints: [{address: 127.0.0.51, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin}
spec:
  host: httpbin
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {consistentHash: {httpCookie: {name: session, ttl: 60s, path: /}}}
  - name: v2
    labels: {version: v2}
  - name: v3
    labels: {version: v3}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin}
spec:
  hosts: [httpbin]
  gateways: [mesh, my-gateway]
  http:
  - name: exact-rewrite
    match:
    - name: status
      uri: {exact: /status}
      ignoreUriCase: true
      statPrefix: httpbin_status
    rewrite: {uri: /get, authority: httpbin.org}
    route:
    - destination: {host: httpbin, subset: v1, port: {number: 8000}}
  - name: headers
    match:
    - headers:
        x-a: {exact: "1"}
        x-b: {prefix: p}
        x-c: {regex: "v[0-9]+"}
        x-d: {}
      withoutHeaders:
        x-e: {exact: "no"}
      queryParams:
        q: {exact: "yes"}
      method: {exact: POST}
      authority: {prefix: httpbin}
      scheme: {exact: http}
    headers:
      request:
        set: {x-set: s}
        add: {x-add: a}
        remove: [x-remove]
      response:
        set: {x-rset: s}
        add: {x-radd: a}
        remove: [x-rremove]
    route:
    - destination: {host: httpbin, subset: v1}
      weight: 80
      headers:
        request: {set: {x-dest: v1}}
        response: {add: {x-served-by: v1}}
    - destination: {host: httpbin, subset: v2}
      weight: 20
    - destination: {host: httpbin, subset: v3}
      weight: 0
    timeout: 3s
    retries:
      attempts: 3
      perTryTimeout: 1s
      retryOn: 5xx,gateway-error,503
      retryRemoteLocalities: true
  - name: redirect
    match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, authority: example.com, port: 8443, scheme: https, redirectCode: 302}
  - name: derive
    match: [{uri: {prefix: /derive}}]
    redirect: {uri: /derived, derivePort: FROM_REQUEST_PORT}
  - name: direct
    match: [{uri: {regex: "/teapot/.*"}}]
    directResponse: {status: 418, body: {string: "I'm a teapot"}}
  - name: direct-bytes
    match: [{uri: {exact: /bytes}}]
    directResponse: {status: 200, body: {bytes: aGVsbG8=}}
  - name: fault
    match: [{uri: {prefix: /fault}}]
    fault:
      delay: {fixedDelay: 2s, percentage: {value: 50}}
      abort: {httpStatus: 503, percentage: {value: 10.5}}
    timeout: 1s
    retries: {attempts: 5}
    route:
    - destination: {host: httpbin, subset: v1}
  - name: grpc-fault
    match: [{uri: {prefix: /grpc}}]
    headers:
      request: {set: {host: grpc.example}}
    fault:
      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}
    route:
    - destination: {host: httpbin, subset: v2}
  - name: mirror
    match: [{uri: {prefix: /mirror}}]
    mirrors:
    - destination: {host: httpbin, subset: v2}
      percentage: {value: 25}
    - destination: {host: details}
      percentage: {value: 5}
    - destination: {host: ratings}
    route:
    - destination: {host: httpbin, subset: v2}
  - name: legacy-mirror
    match: [{uri: {prefix: /lmirror}}]
    mirror: {host: ratings}
    mirrorPercentage: {value: 12.5}
    route:
    - destination: {host: httpbin, subset: v2}
  - name: cors
    match: [{uri: {prefix: /cors}}]
    corsPolicy:
      allowOrigins: [{exact: "https://a.example"}, {regex: "https://.*[.]b[.]example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-h]
      exposeHeaders: [x-e]
      maxAge: 24h
      allowCredentials: true
    route:
    - destination: {host: httpbin, subset: v1}
  - name: regex-rewrite
    match: [{uri: {prefix: /rr/}}]
    rewrite:
      uriRegexRewrite: {match: "^/rr/(.*)$", rewrite: '/\\1'}
    route:
    - destination: {host: httpbin, subset: v2}
  - name: no-retry
    match: [{uri: {prefix: /noretry}}]
    retries: {attempts: 0}
    route:
    - destination: {host: httpbin, subset: v2}
  - name: source
    match: [{uri: {prefix: /src}, sourceLabels: {app: productpage}, sourceNamespace: default}]
    route:
    - destination: {host: httpbin, subset: v3}
  - name: other-source
    match: [{uri: {prefix: /src}, sourceLabels: {app: reviews}}]
    route:
    - destination: {host: httpbin, subset: v2}
  - name: gateway-only
    match: [{uri: {prefix: /gw}, gateways: [my-gateway]}]
    route:
    - destination: {host: httpbin, subset: v2}
  - name: port80
    match: [{uri: {prefix: /p}, port: 80}]
    route:
    - destination: {host: httpbin, subset: v2}
  - name: catch-all
    route:
    - destination: {host: httpbin, subset: v1}
"""

WILDCARD_YAML = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wiki}
spec:
  hosts: ["*.wiki.example"]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wiki}
spec:
  hosts: ["*.wiki.example"]
  http:
  - match: [{uri: {prefix: /api}}]
    timeout: 5s
    route: [{destination: {host: "*.wiki.example"}}]
"""

SIDECAR_EVERYTHING_ELSE = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  egress:
  - hosts: [./reviews.default.svc.cluster.local]
"""


def build(extra: str = "", names=("9080",), proxy=None, mesh: MeshConfig | None = None) -> dict:
    text = BOOKINFO_SERVICES + ("---\n" + extra if extra else "")
    push = push_from_yaml(text, mesh)
    return {rc.name: rc for rc in build_routes(proxy or sidecar(), push, list(names))}


def vhost(rc, name: str):
    return next(v for v in rc.virtual_hosts if v.name == name)


def as_dict(msg) -> dict:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def feature_routes(port: int = 8000, proxy=None) -> dict:
    """The FEATURE VirtualService's routes for httpbin:PORT, by route name."""
    rc = build(FEATURE_YAML, names=(str(port),), proxy=proxy)[str(port)]
    return {r.name: r for r in vhost(rc, f"httpbin.default.svc.cluster.local:{port}").routes}


# ---------------------------------------------------------------- virtual hosts and domains

def test_port_route_has_a_vhost_per_http_service_on_that_port_then_allow_any():
    rc = build()["9080"]
    assert [v.name for v in rc.virtual_hosts] == [
        "details.default.svc.cluster.local:9080",
        "ratings.default.svc.cluster.local:9080",
        "reviews.default.svc.cluster.local:9080",
        "allow_any",
    ]
    assert rc.validate_clusters.value is False and rc.HasField("validate_clusters")
    allow_any = rc.virtual_hosts[-1]
    assert list(allow_any.domains) == ["*"]
    assert allow_any.routes[0].name == "allow_any"
    assert allow_any.routes[0].route.cluster == "PassthroughCluster"
    assert allow_any.routes[0].route.timeout.seconds == 0


def test_registry_only_answers_unknown_hosts_with_502():
    rc = build(mesh=MeshConfig(outbound_traffic_policy="REGISTRY_ONLY"))["9080"]
    block = rc.virtual_hosts[-1]
    assert block.name == "block_all" and list(block.domains) == ["*"]
    assert block.routes[0].name == "block_all"
    assert block.routes[0].direct_response.status == 502


def test_domains_same_namespace_include_short_names_with_and_without_port():
    reviews = vhost(build()["9080"], "reviews.default.svc.cluster.local:9080")
    assert list(reviews.domains) == [
        "reviews.default.svc.cluster.local", "reviews.default.svc.cluster.local:9080",
        "reviews", "reviews:9080",
        "reviews.default.svc", "reviews.default.svc:9080",
        "reviews.default", "reviews.default:9080",
    ]
    assert reviews.include_request_attempt_count


def test_domains_from_another_namespace_omit_the_short_name():
    reviews = vhost(build(proxy=sidecar(namespace="other"))["9080"], "reviews.default.svc.cluster.local:9080")
    assert "reviews" not in reviews.domains and "reviews:9080" not in reviews.domains
    assert {"reviews.default", "reviews.default:9080", "reviews.default.svc", "reviews.default.svc:9080"} <= set(reviews.domains)


def test_vips_are_domains_and_non_kubernetes_hosts_get_no_alt_names():
    rc = build(FEATURE_YAML, names=("8000",))["8000"]
    httpbin = vhost(rc, "httpbin.default.svc.cluster.local:8000")
    assert httpbin.domains[-2:] == ["10.0.0.10", "10.0.0.10:8000"]
    ext = build("""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 9080, name: http, protocol: HTTP}]
""")["9080"]
    assert list(vhost(ext, "api.example.com:9080").domains) == ["api.example.com", "api.example.com:9080"]


def test_wildcard_service_hosts_become_wildcard_domains_with_their_virtual_service():
    rc = build(WILDCARD_YAML, names=("80",))["80"]
    wiki = vhost(rc, "*.wiki.example:80")
    assert list(wiki.domains) == ["*.wiki.example", "*.wiki.example:80"]
    assert [r.route.cluster for r in wiki.routes] == ["outbound|80||*.wiki.example"]
    assert wiki.routes[0].route.timeout.seconds == 5


def test_http_proxy_route_covers_every_http_port_with_port_qualified_domains():
    rc = build(FEATURE_YAML, names=("http_proxy",))["http_proxy"]
    names = [v.name for v in rc.virtual_hosts]
    assert names == [
        "details.default.svc.cluster.local:9080",
        "httpbin.default.svc.cluster.local:80",
        "httpbin.default.svc.cluster.local:8000",
        "ratings.default.svc.cluster.local:9080",
        "reviews.default.svc.cluster.local:9080",
        "allow_any",
    ]  # no TCP service (mysqldb:3306); the catch-all names the original destination from the authority
    allow_any = vhost(rc, "allow_any").routes[0]
    assert [(h.header.key, h.header.value) for h in allow_any.request_headers_to_add] == [
        ("x-envoy-original-dst-host", "%REQ(:AUTHORITY)%")]
    assert all(":" in d for d in vhost(rc, "httpbin.default.svc.cluster.local:8000").domains)
    assert "httpbin" in vhost(rc, "httpbin.default.svc.cluster.local:80").domains  # port 80: bare names too
    assert "reviews:9080" in vhost(rc, "reviews.default.svc.cluster.local:9080").domains


def test_tcp_ports_get_no_virtual_host_and_unknown_names_an_empty_config():
    rcs = build(names=("3306", "not-a-route", "9080"))
    assert [v.name for v in rcs["3306"].virtual_hosts] == ["allow_any"]
    assert list(rcs) == ["3306", "not-a-route", "9080"]
    empty = rcs["not-a-route"]
    assert not empty.virtual_hosts and empty.HasField("validate_clusters") and not empty.validate_clusters.value


def test_sidecar_egress_limits_the_virtual_hosts():
    rc = build(SIDECAR_EVERYTHING_ELSE)["9080"]
    assert [v.name for v in rc.virtual_hosts] == ["reviews.default.svc.cluster.local:9080", "allow_any"]


def test_output_is_deterministic():
    a = build(FEATURE_YAML, names=("8000", "80", "http_proxy", "9080"))
    b = build(FEATURE_YAML, names=("8000", "80", "http_proxy", "9080"))
    for name in a:
        assert a[name].SerializeToString(deterministic=True) == b[name].SerializeToString(deterministic=True)


def test_no_domain_is_claimed_twice():
    for rc in build(FEATURE_YAML, names=("8000", "80", "http_proxy", "9080")).values():
        domains = [d.lower() for v in rc.virtual_hosts for d in v.domains]
        assert len(domains) == len(set(domains)), rc.name


# ---------------------------------------------------------------- default route

def test_default_route_without_virtual_service():
    route = vhost(build()["9080"], "reviews.default.svc.cluster.local:9080").routes[0]
    assert route.name == "default"
    assert route.match.prefix == "/"
    assert route.route.cluster == "outbound|9080||reviews.default.svc.cluster.local"
    assert route.decorator.operation == "reviews.default.svc.cluster.local:9080/*"
    assert route.route.timeout.seconds == 0 and route.route.timeout.nanos == 0
    retry = route.route.retry_policy
    assert retry.retry_on == "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    assert retry.num_retries.value == 2
    assert list(retry.retriable_status_codes) == [503]
    assert retry.host_selection_retry_max_attempts == 5
    assert [p.name for p in retry.retry_host_predicate] == ["envoy.retry_host_predicates.previous_hosts"]


def test_mesh_default_retry_policy_is_used_and_zero_attempts_disables_it():
    custom = MeshConfig(default_retry=RetryPolicy(attempts=4, retry_on="5xx,429", per_try_timeout_s=0.5))
    route = vhost(build(mesh=custom)["9080"], "reviews.default.svc.cluster.local:9080").routes[0]
    retry = route.route.retry_policy
    assert retry.num_retries.value == 4
    assert retry.retry_on == "5xx,retriable-status-codes" and list(retry.retriable_status_codes) == [429]
    assert retry.per_try_timeout.nanos == 500_000_000
    off = MeshConfig(default_retry=RetryPolicy(attempts=0))
    route = vhost(build(mesh=off)["9080"], "reviews.default.svc.cluster.local:9080").routes[0]
    assert not route.route.HasField("retry_policy")


def test_default_route_carries_the_destination_rule_hash_key():
    dr = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  trafficPolicy:
    loadBalancer: {consistentHash: {useSourceIp: true}}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {consistentHash: {httpQueryParameterName: user}}
"""
    route = vhost(build(dr)["9080"], "ratings.default.svc.cluster.local:9080").routes[0]
    assert [as_dict(h) for h in route.route.hash_policy] == [{"query_parameter": {"name": "user"}}]


# ---------------------------------------------------------------- VirtualService selection

def test_oldest_virtual_service_wins_per_host():
    two = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: first}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v1}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: second}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http: [{route: [{destination: {host: reviews, subset: v2}}]}]
"""
    route = vhost(build(two)["9080"], "reviews.default.svc.cluster.local:9080").routes[0]
    assert route.route.cluster == "outbound|9080|v1|reviews.default.svc.cluster.local"


def test_gateway_only_virtual_service_does_not_apply_to_sidecars():
    gw = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: gw}
spec:
  hosts: [reviews]
  gateways: [bookinfo-gateway]
  http: [{route: [{destination: {host: reviews, subset: v2}}]}]
"""
    route = vhost(build(gw)["9080"], "reviews.default.svc.cluster.local:9080").routes[0]
    assert route.name == "default"


def test_source_labels_select_routes_per_proxy_and_fall_back_to_default():
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - match: [{sourceLabels: {app: reviews, version: v2}}]
    route: [{destination: {host: ratings, subset: v2}}]
"""
    from_reviews_v2 = build(vs, proxy=sidecar("reviews-v2", labels={"app": "reviews", "version": "v2"}))["9080"]
    routes = vhost(from_reviews_v2, "ratings.default.svc.cluster.local:9080").routes
    assert [r.route.cluster for r in routes] == ["outbound|9080|v2|ratings.default.svc.cluster.local"]
    from_productpage = build(vs)["9080"]
    assert vhost(from_productpage, "ratings.default.svc.cluster.local:9080").routes[0].name == "default"


def test_route_names_and_first_catch_all_ends_the_list():
    routes = feature_routes()
    assert "exact-rewrite.status" in routes
    assert list(routes)[-1] == "catch-all"


def test_match_gateways_and_ports_filter_routes():
    on_8000, on_80 = feature_routes(8000), feature_routes(80)
    assert "gateway-only" not in on_8000 and "gateway-only" not in on_80
    assert "port80" not in on_8000 and "port80" in on_80
    # no destination port and two service ports: the vhost's port
    assert on_80["port80"].route.cluster == "outbound|80|v2|httpbin.default.svc.cluster.local"
    assert on_80["exact-rewrite.status"].route.cluster == "outbound|8000|v1|httpbin.default.svc.cluster.local"


# ---------------------------------------------------------------- match translation

def test_match_fields_map_to_envoy_matchers():
    r = feature_routes()
    exact = r["exact-rewrite.status"].match
    assert exact.path == "/status" and exact.case_sensitive.value is False
    m = as_dict(r["headers"].match)
    assert m["prefix"] == "/" and m["case_sensitive"] is True
    assert m["headers"] == [
        {"name": "x-a", "string_match": {"exact": "1"}},
        {"name": "x-b", "string_match": {"prefix": "p"}},
        {"name": "x-c", "string_match": {"safe_regex": {"regex": "v[0-9]+"}}},
        {"name": "x-d", "present_match": True},
        {"name": "x-e", "string_match": {"exact": "no"}, "invert_match": True, "treat_missing_header_as_empty": True},
        {"name": ":method", "string_match": {"exact": "POST"}},
        {"name": ":authority", "string_match": {"prefix": "httpbin"}},
        {"name": ":scheme", "string_match": {"exact": "http"}},
    ]
    assert m["query_parameters"] == [{"name": "q", "string_match": {"exact": "yes"}}]
    assert r["direct"].match.safe_regex.regex == "/teapot/.*"


# ---------------------------------------------------------------- actions

def test_weighted_destinations_drop_zero_weights_and_carry_destination_headers():
    action = feature_routes()["headers"].route
    clusters = [(c.name, c.weight.value) for c in action.weighted_clusters.clusters]
    assert clusters == [
        ("outbound|8000|v1|httpbin.default.svc.cluster.local", 80),
        ("outbound|8000|v2|httpbin.default.svc.cluster.local", 20),
    ]
    v1 = as_dict(action.weighted_clusters.clusters[0])
    assert v1["request_headers_to_add"] == [{"header": {"key": "x-dest", "value": "v1"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]
    assert v1["response_headers_to_add"] == [{"header": {"key": "x-served-by", "value": "v1"}}]  # APPEND_IF_EXISTS_OR_ADD (default)


def test_route_level_header_operations():
    d = as_dict(feature_routes()["headers"])
    assert d["request_headers_to_add"] == [
        {"header": {"key": "x-set", "value": "s"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
        {"header": {"key": "x-add", "value": "a"}},
    ]
    assert d["response_headers_to_add"][0]["header"] == {"key": "x-rset", "value": "s"}
    assert d["request_headers_to_remove"] == ["x-remove"]
    assert d["response_headers_to_remove"] == ["x-rremove"]


def test_timeout_and_retries():
    action = feature_routes()["headers"].route
    assert action.timeout.seconds == 3
    assert action.max_stream_duration.grpc_timeout_header_max.seconds == 3
    retry = action.retry_policy
    assert retry.num_retries.value == 3
    assert retry.per_try_timeout.seconds == 1
    assert retry.retry_on == "5xx,gateway-error,retriable-status-codes"
    assert list(retry.retriable_status_codes) == [503]
    assert retry.retry_priority.name == "envoy.retry_priorities.previous_priorities"
    assert not feature_routes()["no-retry"].route.HasField("retry_policy")


def test_rewrites():
    r = feature_routes()
    action = r["exact-rewrite.status"].route
    assert action.prefix_rewrite == "/get" and action.host_rewrite_literal == "httpbin.org"
    rr = r["regex-rewrite"].route.regex_rewrite
    assert rr.pattern.regex == "^/rr/(.*)$" and rr.substitution == "/\\1"


def test_redirects():
    r = feature_routes()
    assert as_dict(r["redirect"].redirect) == {
        "host_redirect": "example.com", "path_redirect": "/new", "scheme_redirect": "https",
        "port_redirect": 8443, "response_code": "FOUND",
    }
    derived = r["derive"].redirect
    assert derived.port_redirect == 8000 and derived.path_redirect == "/derived"
    assert derived.response_code == 0  # MOVED_PERMANENTLY


def test_direct_response():
    dr = feature_routes()["direct"].direct_response
    assert dr.status == 418 and dr.body.inline_string == "I'm a teapot"
    assert feature_routes()["direct-bytes"].direct_response.body.inline_bytes == b"hello"  # base64 in the spec


def test_host_header_operation_becomes_a_host_rewrite_and_stat_prefix_is_kept():
    r = feature_routes()
    assert r["grpc-fault"].route.host_rewrite_literal == "grpc.example"
    assert not r["grpc-fault"].request_headers_to_add  # Envoy may not set `host` as a header
    assert r["exact-rewrite.status"].stat_prefix == "httpbin_status"


def test_source_namespace_must_match_the_proxy():
    assert "source" in feature_routes()
    assert "source" not in feature_routes(proxy=sidecar(namespace="other"))


def test_fault_goes_to_typed_per_filter_config_and_disables_retries_and_timeout():
    from envoy.extensions.filters.http.fault.v3 import fault_pb2

    route = feature_routes()["fault"]
    fault = fault_pb2.HTTPFault()
    route.typed_per_filter_config["envoy.filters.http.fault"].Unpack(fault)
    assert fault.delay.fixed_delay.seconds == 2
    assert (fault.delay.percentage.numerator, fault.delay.percentage.denominator) == (500_000, 2)  # MILLION
    assert fault.abort.http_status == 503 and fault.abort.percentage.numerator == 105_000
    assert not route.route.HasField("retry_policy")
    assert route.route.timeout.seconds == 0
    grpc = fault_pb2.HTTPFault()
    feature_routes()["grpc-fault"].typed_per_filter_config["envoy.filters.http.fault"].Unpack(grpc)
    assert grpc.abort.grpc_status == 14 and not grpc.HasField("delay")


def test_mirrors():
    policies = [as_dict(p) for p in feature_routes()["mirror"].route.request_mirror_policies]
    assert policies == [
        {"cluster": "outbound|8000|v2|httpbin.default.svc.cluster.local",
         "runtime_fraction": {"default_value": {"numerator": 250000, "denominator": "MILLION"}}, "trace_sampled": False},
        {"cluster": "outbound|9080||details.default.svc.cluster.local",
         "runtime_fraction": {"default_value": {"numerator": 50000, "denominator": "MILLION"}}, "trace_sampled": False},
        {"cluster": "outbound|9080||ratings.default.svc.cluster.local",
         "runtime_fraction": {"default_value": {"numerator": 100}}, "trace_sampled": False},  # default 100%
    ]
    legacy = feature_routes()["legacy-mirror"].route.request_mirror_policies[0]
    assert legacy.cluster == "outbound|9080||ratings.default.svc.cluster.local"
    assert legacy.runtime_fraction.default_value.numerator == 125_000


def test_cors_policy():
    from envoy.extensions.filters.http.cors.v3 import cors_pb2

    cors = cors_pb2.CorsPolicy()
    feature_routes()["cors"].typed_per_filter_config["envoy.filters.http.cors"].Unpack(cors)
    d = as_dict(cors)
    assert d["allow_origin_string_match"] == [{"exact": "https://a.example"}, {"safe_regex": {"regex": "https://.*[.]b[.]example"}}]
    assert (d["allow_methods"], d["allow_headers"], d["expose_headers"], d["max_age"]) == ("GET,POST", "x-h", "x-e", "86400")
    assert d["allow_credentials"] is True and d["forward_not_matching_preflights"] is True


def test_consistent_hash_keys_and_retry_predicate():
    r = feature_routes()
    single = r["catch-all"].route  # subset v1 overrides the top-level header hash with a cookie
    assert [as_dict(h) for h in single.hash_policy] == [{"cookie": {"name": "session", "ttl": "60s", "path": "/"}}]
    assert not single.retry_policy.retry_host_predicate  # stay on the hashed host when retrying
    assert [as_dict(h) for h in r["no-retry"].route.hash_policy] == [{"header": {"header_name": "x-user"}}]


def test_decorators():
    r = feature_routes()
    assert r["exact-rewrite.status"].decorator.operation == "httpbin.default.svc.cluster.local:8000/status"
    assert r["headers"].decorator.operation == "httpbin:8000/*"  # weighted: VS name
    assert r["redirect"].decorator.operation == "httpbin:8000/old*"
    assert r["catch-all"].decorator.operation == "httpbin.default.svc.cluster.local:8000/*"


def test_short_destination_hosts_resolve_in_the_virtual_service_namespace():
    vs = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: ratings}}]}]
"""
    route = vhost(build(vs, proxy=sidecar(namespace="other"))["9080"], "reviews.default.svc.cluster.local:9080").routes[0]
    assert route.route.cluster == "outbound|9080||ratings.default.svc.cluster.local"


def test_gateways_get_empty_route_configurations_from_the_sidecar_generator():
    from isthmus.pilot.model.proxy import Proxy, ProxyType

    gw = Proxy(id="router~10.0.0.1~ingress.istio-system~istio-system.svc.cluster.local", type=ProxyType.ROUTER,
               ip_addresses=("10.0.0.1",), namespace="istio-system")
    rc = build(names=("http.8080",), proxy=gw)["http.8080"]
    assert rc.name == "http.8080" and not rc.virtual_hosts


@pytest.mark.parametrize("capture", [CaptureMode.IPTABLES, CaptureMode.EXPLICIT])
def test_capture_mode_does_not_change_a_named_route(capture):
    a = build(proxy=sidecar(capture=capture))["9080"]
    assert [v.name for v in a.virtual_hosts][-1] == "allow_any"
