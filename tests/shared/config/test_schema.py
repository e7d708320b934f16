"""Structural validation against the CRD schema, as `kubectl apply --validate=strict` sees it."""
from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isthmus.shared.config import kinds
from isthmus.shared.config.documents import read_paths
from isthmus.shared.config.validation import validate_document
from isthmus.shared.config.validation.report import Findings
from isthmus.shared.config.validation.schema import check_spec, prune_spec
from tests.conftest import corpus_path


def check(kind: str, spec: Any) -> Findings:
    f = Findings()
    check_spec(kinds.by_kind(kind).schema(), spec, f)
    return f


def errors(kind: str, spec: Any) -> list[str]:
    return [f"{e.path}: {e.message}" for e in check(kind, spec).errors]


def vs_http(**route: Any) -> dict[str, Any]:
    """A VirtualService spec with one HTTP route, extra route fields merged in."""
    return {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}], **route}]}


def se(**fields: Any) -> dict[str, Any]:
    return {"hosts": ["api.example.com"], "ports": [{"number": 443, "name": "https", "protocol": "TLS"}], **fields}


def we(**fields: Any) -> dict[str, Any]:
    return {"address": "10.0.0.1", **fields}


GW_PORT = {"number": 443, "name": "https", "protocol": "HTTPS"}

# (id, kind, spec, expected "path: message": exact, a prefix when it ends in "…", or a list)
INVALID: list[tuple[str, str, Any, str | list[str]]] = [
    # unknown fields
    ("unknown-top", "VirtualService", {"hosts": ["a"], "foo": 1}, "spec.foo: unknown field"),
    ("unknown-typo-hint", "VirtualService", vs_http(rout=[]), 'spec.http[0].rout: unknown field (did you mean "route"?)'),
    ("unknown-deep", "DestinationRule", {"host": "a", "trafficPolicy": {"tls": {"mode": "SIMPLE", "zzz": "x"}}},
     "spec.trafficPolicy.tls.zzz: unknown field"),
    ("unknown-null-valued", "Gateway", {"servers": [], "selectr": None},
     'spec.selectr: unknown field (did you mean "selector"?)'),
    ("peerauth-has-no-targetRef", "PeerAuthentication", {"targetRef": {"kind": "Service", "name": "x"}},
     "spec.targetRef: unknown field"),
    # types
    ("integer-from-string", "VirtualService",
     {"hosts": ["a"], "http": [{"route": [{"destination": {"host": "a"}, "weight": "abc"}]}]},
     'spec.http[0].route[0].weight: must be an integer (got string "abc")'),
    ("integer-not-fraction", "VirtualService", vs_http(retries={"attempts": 1.5}),
     "spec.http[0].retries.attempts: must be an integer (got number 1.5)"),
    ("integer-not-bool", "VirtualService",
     {"hosts": ["a"], "http": [{"route": [{"destination": {"host": "a", "port": {"number": True}}}]}]},
     "spec.http[0].route[0].destination.port.number: must be an integer (got boolean true)"),
    ("list-not-string", "VirtualService", {"hosts": "reviews"}, 'spec.hosts: must be a list (got string "reviews")'),
    ("string-not-int", "VirtualService", {"hosts": ["a"], "gateways": [1]}, "spec.gateways[0]: must be a string (got integer 1)"),
    ("object-not-list", "VirtualService", {"hosts": ["a"], "tls": [[]]}, "spec.tls[0]: must be an object (got a list)"),
    ("boolean-not-string", "DestinationRule",
     {"host": "a", "trafficPolicy": {"loadBalancer": {"consistentHash": {"useSourceIp": "yes"}}}},
     'spec.trafficPolicy.loadBalancer.consistentHash.useSourceIp: must be a boolean (got string "yes")'),
    ("number-not-string", "DestinationRule",
     {"host": "a", "trafficPolicy": {"loadBalancer": {"warmup": {"duration": "1s", "aggression": "x"}}}},
     'spec.trafficPolicy.loadBalancer.warmup.aggression: must be a number (got string "x")'),
    ("number-finite", "DestinationRule",
     {"host": "a", "trafficPolicy": {"loadBalancer": {"warmup": {"duration": "1s", "aggression": float("inf")}}}},
     "spec.trafficPolicy.loadBalancer.warmup.aggression: must be a finite number (got number inf)"),
    ("map-value-type", "DestinationRule", {"host": "a", "subsets": [{"name": "v1", "labels": {"version": 1}}]},
     "spec.subsets[0].labels[version]: must be a string (got integer 1)"),
    ("null-list-item", "VirtualService", {"hosts": [None]}, "spec.hosts[0]: must be a string (got null)"),
    ("yaml-date", "VirtualService", {"hosts": [datetime.date(2024, 1, 2)]},
     "spec.hosts[0]: must be a string (got date 2024-01-02; quote it to make it a string)"),
    ("spec-not-object", "Gateway", ["servers"], "spec: must be an object (got a list)"),
    # enums, bounds, lengths, patterns, formats
    ("enum", "ServiceEntry", se(resolution="FOO"),
     'spec.resolution: must be one of NONE, STATIC, DNS, DNS_ROUND_ROBIN, DYNAMIC_DNS (got "FOO")'),
    ("enum-case", "PeerAuthentication", {"mtls": {"mode": "strict"}},
     'spec.mtls.mode: must be one of UNSET, DISABLE, PERMISSIVE, STRICT (got "strict")'),
    ("uint32-max", "Sidecar", {"egress": [{"hosts": ["./*"], "port": {"number": 2**32}}]},
     "spec.egress[0].port.number: must be between 0 and 4294967295 (got 4294967296)"),
    ("uint32-negative", "ServiceEntry", {"hosts": ["a"], "ports": [{"number": -1, "name": "p"}]},
     ["spec.ports[0].number: must be between 0 and 4294967295 (got -1)",
      "spec.ports[0].number: port must be between 1-65535"]),  # schema bound and CEL rule, as Kubernetes
    ("int32-format", "DestinationRule",
     {"host": "a", "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": 2**31}}}},
     "spec.trafficPolicy.connectionPool.tcp.maxConnections: must be between -2147483648 and 2147483647 (got 2147483648)"),
    ("maximum-percent", "DestinationRule",
     {"host": "a", "trafficPolicy": {"loadBalancer": {"warmup": {"duration": "1s", "minimumPercent": 101}}}},
     "spec.trafficPolicy.loadBalancer.warmup.minimumPercent: must be between 0 and 100 (got 101)"),
    ("minimum-only", "DestinationRule",
     {"host": "a", "trafficPolicy": {"loadBalancer": {"warmup": {"duration": "1s", "aggression": -1}}}},
     "spec.trafficPolicy.loadBalancer.warmup.aggression: must be at least 0 (got -1)"),
    ("max-length", "AuthorizationPolicy", {"selector": {"matchLabels": {"app": "x" * 64}}},
     "spec.selector.matchLabels[app]: must be at most 63 characters long (got 64)"),
    ("min-length", "RequestAuthentication", {"jwtRules": [{"issuer": ""}]}, "spec.jwtRules[0].issuer: must not be empty"),
    ("max-items", "ServiceEntry",
     {"hosts": ["a"], "ports": [{"number": i + 1, "name": f"p{i}"} for i in range(257)]},
     "spec.ports: must have at most 256 items (got 257)"),
    ("pattern", "AuthorizationPolicy", {"targetRef": {"kind": "Service!", "name": "x"}},
     'spec.targetRef.kind: must match the regular expression ^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$ (got "Service!")'),
    ("byte-format", "VirtualService",
     {"hosts": ["a"], "http": [{"directResponse": {"status": 200, "body": {"bytes": "not base64!"}}}]},
     "spec.http[0].directResponse.body.bytes: must be base64-encoded bytes"),
    ("min-properties", "PeerAuthentication", {"selector": {"matchLabels": {"a": "b"}}, "portLevelMtls": {}},
     "spec.portLevelMtls: must not be empty"),
    # required, including a null that counts as absent
    ("required", "ServiceEntry", {"hosts": ["a"], "ports": [{"number": 80}]}, "spec.ports[0].name: required"),
    ("required-top", "DestinationRule", {"subsets": []}, "spec.host: required"),
    ("required-null", "DestinationRule", {"host": None}, "spec.host: required"),
    # list-map keys
    ("list-map-duplicate", "ServiceEntry",
     {"hosts": ["a"], "ports": [{"number": 80, "name": "http"}, {"number": 81, "name": "http"}]},
     'spec.ports[1]: duplicate entry: name "http" is already used by spec.ports[0]'),
    # oneOf rendered as field rules
    ("oneof-match", "VirtualService", vs_http(match=[{"uri": {"exact": "/a", "prefix": "/b"}}]),
     "spec.http[0].match[0].uri: only one of `exact`, `prefix`, `regex` may be set (got `exact`, `prefix`)"),
    ("oneof-lb", "DestinationRule",
     {"host": "a", "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN", "consistentHash": {"useSourceIp": True}}}},
     "spec.trafficPolicy.loadBalancer: only one of `simple`, `consistentHash`, `backendUtilization` may be set (got `simple`, `consistentHash`)"),
    ("oneof-in-allof", "DestinationRule",
     {"host": "a", "trafficPolicy": {"loadBalancer": {"consistentHash": {"ringHash": {}, "maglev": {}}}}},
     "spec.trafficPolicy.loadBalancer.consistentHash: only one of `ringHash`, `maglev` may be set (got `ringHash`, `maglev`)"),
    ("oneof-telemetry", "Telemetry",
     {"metrics": [{"overrides": [{"match": {"metric": "REQUEST_COUNT", "customMetric": "x"}}]}]},
     "spec.metrics[0].overrides[0].match: only one of `metric`, `customMetric` may be set (got `metric`, `customMetric`)"),
    # CEL rules from several kinds
    ("cel-duration-small", "VirtualService", vs_http(timeout="0.5ms"),
     "spec.http[0].timeout: must be a valid duration greater than 1ms"),
    ("cel-duration-garbage", "VirtualService", vs_http(timeout="soon"),
     "spec.http[0].timeout: must be a valid duration greater than 1ms (invalid duration 'soon')"),
    ("cel-duration-dr", "DestinationRule",
     {"host": "a", "trafficPolicy": {"connectionPool": {"tcp": {"connectTimeout": "0s"}}}},
     "spec.trafficPolicy.connectionPool.tcp.connectTimeout: must be a valid duration greater than 1ms"),
    ("cel-se-duplicate-ports", "ServiceEntry",
     {"hosts": ["a"], "ports": [{"number": 80, "name": "http"}, {"number": 80, "name": "http2"}]},
     "spec.ports: port number cannot be duplicated"),
    ("cel-se-port-range", "ServiceEntry", {"hosts": ["a"], "ports": [{"number": 70000, "name": "p"}]},
     "spec.ports[0].number: port must be between 1-65535"),
    ("cel-se-none-endpoints", "ServiceEntry", se(endpoints=[{"address": "1.2.3.4"}]),
     "spec: NONE mode cannot set endpoints"),
    ("cel-se-cidr-dns", "ServiceEntry", se(addresses=["10.0.0.0/8"], resolution="DNS"),
     "spec: CIDR addresses are allowed only for NONE/STATIC resolution types"),
    ("cel-se-rr-endpoints", "ServiceEntry",
     se(resolution="DNS_ROUND_ROBIN", endpoints=[{"address": "a.com"}, {"address": "b.com"}]),
     "spec: DNS_ROUND_ROBIN mode cannot have multiple endpoints"),
    ("cel-se-selector-and-endpoints", "ServiceEntry",
     se(resolution="STATIC", workloadSelector={"labels": {"app": "x"}}, endpoints=[{"address": "1.2.3.4"}]),
     "spec: only one of WorkloadSelector or Endpoints can be set"),
    ("cel-sidecar-wildcard", "Sidecar", {"workloadSelector": {"labels": {"app": "*"}}},
     "spec.workloadSelector.labels[app]: wildcard is not supported in selector"),
    ("cel-sidecar-tls", "Sidecar",
     {"ingress": [{"port": {"number": 9080, "protocol": "HTTPS", "name": "h"},
                   "tls": {"mode": "SIMPLE", "credentialName": "a", "credentialNames": ["b"]}}]},
     "spec.ingress[0].tls: only one of credentialName or credentialNames can be set"),
    ("cel-gateway-tls", "Gateway",
     {"servers": [{"port": GW_PORT, "hosts": ["*"], "tls": {"credentialNames": ["a"], "tlsCertificates": [{}]}}]},
     # Istio ships this rule twice with different messages; both fire, as in Kubernetes.
     ["spec.servers[0].tls: only one of credentialNames or tlsCertificates can be set",
      "spec.servers[0].tls: only one of credentialName or tlsCertificates can be set"]),
    ("cel-peerauth-port-key", "PeerAuthentication",
     {"selector": {"matchLabels": {"app": "x"}}, "portLevelMtls": {"http": {"mode": "STRICT"}}},
     "spec.portLevelMtls: port must be between 1-65535 (cannot convert 'http' to int)"),
    ("cel-peerauth-port-needs-selector", "PeerAuthentication", {"portLevelMtls": {8080: {"mode": "STRICT"}}},
     "spec: portLevelMtls requires selector"),
    ("cel-peerauth-empty-selector", "PeerAuthentication",
     {"selector": {"matchLabels": {}}, "portLevelMtls": {8080: {"mode": "STRICT"}}},
     "spec: portLevelMtls requires selector"),
    ("cel-peerauth-label-key", "PeerAuthentication", {"selector": {"matchLabels": {"ap*": "x"}}},
     "spec.selector.matchLabels: wildcard not allowed in label key match"),
    ("cel-authz-selector-and-targetref", "AuthorizationPolicy",
     {"selector": {"matchLabels": {"app": "x"}}, "targetRef": {"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}},
     "spec: only one of targetRefs or selector can be set"),
    ("cel-authz-cross-namespace", "AuthorizationPolicy",
     {"targetRef": {"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw", "namespace": "other"}},
     "spec.targetRef.namespace: cross namespace referencing is not currently supported"),
    ("cel-authz-sa-with-principals", "AuthorizationPolicy",
     {"rules": [{"from": [{"source": {"serviceAccounts": ["ns/sa"], "principals": ["x"]}}]}]},
     "spec.rules[0].from[0].source: Cannot set serviceAccounts with namespaces or principals"),
    ("cel-reqauthn-url", "RequestAuthentication", {"jwtRules": [{"issuer": "x", "jwksUri": "keys.example.com/jwks"}]},
     "spec.jwtRules[0].jwksUri: url must have scheme http:// or https:// …"),
    ("cel-reqauthn-jwks-twice", "RequestAuthentication",
     {"jwtRules": [{"issuer": "x", "jwksUri": "https://a/jwks", "jwks": "{}"}]},
     "spec.jwtRules[0]: only one of jwks or jwksUri can be set"),
    ("cel-we-address", "WorkloadEntry", {"labels": {"app": "x"}}, "spec: Address is required"),
    ("cel-we-uds-ports", "WorkloadEntry", we(address="unix:///var/run/a.sock", ports={"http": 80}),
     "spec: UDS may not include ports"),
    ("cel-we-uds-dir", "WorkloadEntry", we(address="unix:///var/run/"), "spec.address: UDS may not be a dir"),
    ("cel-we-uds-relative", "WorkloadEntry", we(address="unix://run/a.sock"),
     "spec.address: UDS must be an absolute path or abstract socket"),
    ("cel-we-port-name", "WorkloadEntry", we(ports={"http_1": 80}), "spec.ports: port name must be valid"),
    ("cel-wg-uds", "WorkloadGroup", {"template": {"address": "unix:///a/"}}, "spec.template.address: UDS may not be a dir"),
    ("cel-telemetry-upsert", "Telemetry",
     {"metrics": [{"overrides": [{"tagOverrides": {"t": {"operation": "UPSERT", "value": ""}}}]}]},
     "spec.metrics[0].overrides[0].tagOverrides[t]: value must be set when operation is UPSERT"),
    ("cel-telemetry-remove", "Telemetry",
     {"metrics": [{"overrides": [{"tagOverrides": {"t": {"operation": "REMOVE", "value": "x"}}}]}]},
     "spec.metrics[0].overrides[0].tagOverrides[t]: value must not be set when operation is REMOVE"),
]


@pytest.mark.parametrize(("kind", "spec", "expected"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid(kind: str, spec: Any, expected: str | list[str]) -> None:
    found = errors(kind, spec)
    if isinstance(expected, list):
        assert found == expected
    elif expected.endswith("…"):
        assert len(found) == 1 and found[0].startswith(expected[:-1].rstrip()), found
    else:
        assert found == [expected]


VALID: list[tuple[str, str, Any]] = [
    ("empty-gateway", "Gateway", {}),
    ("integral-float-is-integer", "VirtualService",
     {"hosts": ["a"], "http": [{"route": [{"destination": {"host": "a"}, "weight": 100.0}]}]}),
    ("null-means-absent", "VirtualService", {"hosts": ["a"], "gateways": None, "http": None}),
    ("nullable-null", "DestinationRule",
     {"host": "a", "trafficPolicy": {"loadBalancer": {"localityLbSetting": {"enabled": None}}}}),
    ("int-map-key", "PeerAuthentication", {"selector": {"matchLabels": {"app": "a"}}, "portLevelMtls": {8080: {"mode": "STRICT"}}}),
    ("duration-ok", "VirtualService", vs_http(timeout="1.5s", retries={"attempts": 3, "perTryTimeout": "1h2m"})),
    ("se-static-cidr", "ServiceEntry", se(addresses=["10.0.0.0/8"], resolution="STATIC", endpoints=[{"address": "10.0.0.1"}])),
    ("se-unique-ports", "ServiceEntry", {"hosts": ["a"], "ports": [{"number": 80, "name": "http"}, {"number": 443, "name": "https"}]}),
    ("we-abstract-socket", "WorkloadEntry", {"address": "unix://@abstract"}),
    ("reqauthn-https", "RequestAuthentication", {"jwtRules": [{"issuer": "x", "jwksUri": "https://example.com/jwks"}]}),
    ("oneof-single", "VirtualService", vs_http(match=[{"uri": {"prefix": "/"}, "headers": {"end-user": {"exact": "jason"}}}])),
    ("byte-ok", "VirtualService", {"hosts": ["a"], "http": [{"directResponse": {"status": 200, "body": {"bytes": "aGVsbG8="}}}]}),
]


@pytest.mark.parametrize(("kind", "spec"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_valid(kind: str, spec: Any) -> None:
    f = check(kind, spec)
    assert [e.render("") for e in f.errors + f.warnings] == []


def test_reports_every_problem_in_one_pass() -> None:
    spec = {"hosts": "a", "bogus": 1, "http": [vs_http(timeout="0.5ms")["http"][0], {"timeout": 5}]}
    assert errors("VirtualService", spec) == [
        'spec.hosts: must be a list (got string "a")',
        "spec.bogus: unknown field",
        "spec.http[0].timeout: must be a valid duration greater than 1ms",
        "spec.http[1].timeout: must be a string (got integer 5)",
    ]


def test_cel_waits_for_a_sound_subtree() -> None:
    # The enum error below blocks the map's port-key rule and the spec's selector rule,
    # as Kubernetes skips CEL when a type/enum/required error would make it misleading.
    spec = {"portLevelMtls": {"http": {"mode": "X"}}}
    assert errors("PeerAuthentication", spec) == [
        'spec.portLevelMtls[http].mode: must be one of UNSET, DISABLE, PERMISSIVE, STRICT (got "X")'
    ]


def test_pipeline_renders_subject_and_path() -> None:
    doc = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
           "metadata": {"name": "reviews", "namespace": "default"}, "spec": vs_http(timeout="0.5ms")}
    outcome = validate_document(doc)
    assert outcome.errors == ("VirtualService default/reviews: spec.http[0].timeout: must be a valid duration greater than 1ms",)


# --- the reference corpus passes untouched ------------------------------------------------
def _corpus_docs(*parts: str) -> list[Any]:
    folder = corpus_path(*parts)
    return read_paths([str(p) for p in sorted(folder.glob("*.yaml"))])


@pytest.mark.parametrize("folder", [("istio-samples", "bookinfo", "networking"), ("istio-validation-valid",)])
def test_corpus_is_valid(folder: tuple[str, ...]) -> None:
    docs = _corpus_docs(*folder)
    assert docs
    for doc in docs:
        f = check(doc.body["kind"], doc.body.get("spec") or {})
        assert [e.render(doc.source) for e in f.errors + f.warnings] == []


# --- never raises on any input ------------------------------------------------------------
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["hosts", "http", "route", "timeout", "ports", "number", "name", "match", "uri",
                         "exact", "prefix", "selector", "portLevelMtls", "tls", "x"]) | st.integers(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from([k.kind for k in kinds.KINDS]), spec=json_like)
def test_never_raises(kind: str, spec: Any) -> None:
    f = check(kind, spec)
    for e in f.errors:
        assert e.path.startswith("spec") and e.message


def test_deep_nesting_does_not_raise() -> None:
    value: Any = "x"
    for _ in range(5000):
        value = {"match": [value]}
    assert errors("VirtualService", {"http": [value]})


# --- schema constructs Istio's kinds do not use today, on small synthetic schemas ------------
INT_OR_STRING = {"type": "object", "properties": {"port": {
    "anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}}}
SYNTHETIC: list[tuple[str, dict[str, Any], Any, list[str]]] = [
    ("int-or-string-int", INT_OR_STRING, {"port": 80}, []),
    ("int-or-string-str", INT_OR_STRING, {"port": "http"}, []),
    ("int-or-string-bad", INT_OR_STRING, {"port": True},
     ["spec.port: must be an integer or a string (got boolean true)"]),
    ("preserve-unknown", {"type": "object", "properties": {"config": {
        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}, {"config": {"any": {"thing": [1]}}}, []),
    ("list-type-set", {"type": "object", "properties": {"tags": {
        "type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}}}, {"tags": ["a", "b", "a"]},
     ['spec.tags[2]: duplicate entry: "a" is already used by spec.tags[0]']),
    ("anyof-required", {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                        "anyOf": [{"required": ["a"]}, {"required": ["b"]}]}, {}, ["spec: at least one of `a`, `b` must be set"]),
    ("not-required", {"type": "object", "properties": {"a": {"type": "string"}}, "not": {"required": ["a"]}},
     {"a": "x"}, ["spec: `a` must not be set"]),
    ("oneof-none", {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                    "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}, {}, ["spec: exactly one of `a`, `b` must be set"]),
    ("rule-without-message", {"type": "object", "properties": {"n": {"type": "integer"}},
                              "x-kubernetes-validations": [{"rule": "self.n > 1 &&\n  self.n < 5"}]},
     {"n": 9}, ["spec: failed rule: self.n > 1 && self.n < 5"]),
    ("message-expression", {"type": "object", "properties": {"n": {"type": "integer"}}, "x-kubernetes-validations": [
        {"rule": "self.n < 5", "messageExpression": "'n is ' + string(self.n) + ', want < 5'"}]},
     {"n": 9}, ["spec: n is 9, want < 5"]),
    ("transition-rule-passes", {"type": "object", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}, {}, []),
    ("exclusive-bounds", {"type": "object", "properties": {"r": {
        "type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1}}}, {"r": 0},
     ["spec.r: must be greater than 0 and at most 1 (got 0)"]),
    ("max-properties", {"type": "object", "properties": {"m": {
        "type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 1}}}, {"m": {"a": "1", "b": "2"}},
     ["spec.m: must have at most 1 entries (got 2)"]),
]


@pytest.mark.parametrize(("schema", "spec", "expected"), [c[1:] for c in SYNTHETIC], ids=[c[0] for c in SYNTHETIC])
def test_synthetic_schema(schema: dict[str, Any], spec: Any, expected: list[str]) -> None:
    f = Findings()
    check_spec(schema, spec, f)
    assert [f"{e.path}: {e.message}" for e in f.errors] == expected


def test_prune_spec_is_what_the_api_server_stores() -> None:
    schema = kinds.by_kind("ServiceEntry").schema()
    spec = {"hosts": ["a.com"], "ports": [{"number": 80.0, "name": "http"}], "endpoints": None, "bogus": 1}
    assert prune_spec(schema, spec) == {"hosts": ["a.com"], "ports": [{"number": 80, "name": "http"}]}
    pa = kinds.by_kind("PeerAuthentication").schema()
    assert prune_spec(pa, {"portLevelMtls": {8080: {"mode": "STRICT"}}}) == {"portLevelMtls": {"8080": {"mode": "STRICT"}}}
