"""Istio's webhook rules for PeerAuthentication, AuthorizationPolicy, RequestAuthentication.

Cases the CRD schema lets through run the whole pipeline (`validate_document`); rules
the CRD's CEL also enforces are checked on the semantic validator itself, since the
pipeline never reaches it with such a spec.
"""
from __future__ import annotations

import json

import pytest
from jwcrypto import jwk

from isthmus.shared.config import documents, kinds
from isthmus.shared.config.validation import Findings, validate_document
from tests.conftest import corpus_path

API = {"PeerAuthentication": "security.istio.io/v1", "AuthorizationPolicy": "security.istio.io/v1",
       "RequestAuthentication": "security.istio.io/v1"}
SEL = {"matchLabels": {"app": "httpbin"}}


def document(kind: str, spec: dict, namespace: str = "foo") -> dict:
    return {"apiVersion": API[kind], "kind": kind, "metadata": {"name": "p", "namespace": namespace}, "spec": spec}


def pipeline(kind: str, spec: dict) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(errors, warnings) of the whole pipeline as (path, message) pairs."""
    outcome = validate_document(document(kind, spec))
    prefix = f"{kind} foo/p: "

    def split(lines: tuple[str, ...]) -> list[tuple[str, str]]:
        out = []
        for line in lines:
            assert line.startswith(prefix), line
            path, _, message = line[len(prefix):].partition(": ")
            out.append((path, message))
        return out

    return split(outcome.errors), split(outcome.warnings)


def semantic(kind: str, spec: dict) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(errors, warnings) of the kind's semantic validator alone."""
    row = kinds.by_kind(kind)
    f = Findings()
    info = kinds.ObjectInfo(kind=kind, api_version=API[kind], name="p", namespace="foo", labels={}, annotations={})
    row.validate(row.spec_class.from_dict(spec), info, f)
    return [(e.path, e.message) for e in f.errors], [(w.path, w.message) for w in f.warnings]


def ap_rule(**rule: object) -> dict:
    """An ALLOW policy with one rule (`from_` spelled for Python)."""
    if "from_" in rule:
        rule["from"] = rule.pop("from_")
    return {"selector": SEL, "rules": [rule]}


def when(key: str, values: list[str] | None = None, not_values: list[str] | None = None) -> dict:
    cond: dict = {"key": key}
    if values is not None:
        cond["values"] = values
    if not_values is not None:
        cond["notValues"] = not_values
    return ap_rule(when=[cond])


def src(**source: object) -> dict:
    return ap_rule(from_=[{"source": source}])


def op(**operation: object) -> dict:
    return ap_rule(to=[{"operation": operation}])


_KEY = jwk.JWK.generate(kty="EC", crv="P-256", kid="k1")
JWKS = json.dumps({"keys": [json.loads(_KEY.export_public())]})
SINGLE_JWK = json.dumps(json.loads(JWKS)["keys"][0])

# (id, kind, spec, path, phrase): the pipeline must report an error at `path` containing `phrase`.
INVALID = [
    # AuthorizationPolicy: action, provider, rules
    ("custom-without-rules", "AuthorizationPolicy", {"action": "CUSTOM", "provider": {"name": "ext"}},
     "spec.rules", "CUSTOM action without `rules`"),
    ("custom-without-provider", "AuthorizationPolicy", {"action": "CUSTOM", "rules": [{}]},
     "spec.provider.name", "must not be empty"),
    ("provider-with-allow", "AuthorizationPolicy", {"action": "ALLOW", "provider": {"name": "ext"}, "rules": [{}]},
     "spec.provider", "non-CUSTOM action (found ALLOW)"),
    ("provider-with-default-action", "AuthorizationPolicy", {"provider": {"name": "ext"}},
     "spec.provider", "non-CUSTOM action"),
    ("deny-without-rules", "AuthorizationPolicy", {"action": "DENY", "selector": SEL},
     "spec.rules", "DENY action without `rules`"),
    ("custom-with-principals", "AuthorizationPolicy",
     {"action": "CUSTOM", "provider": {"name": "ext"}, "rules": [{"from": [{"source": {"principals": ["a"]}}]}]},
     "spec.rules[0].from[0].source.principals", "not supported with the CUSTOM action"),
    ("custom-with-request-principals", "AuthorizationPolicy",
     {"action": "CUSTOM", "provider": {"name": "ext"},
      "rules": [{"from": [{"source": {"notRequestPrincipals": ["a"]}}]}]},
     "spec.rules[0].from[0].source.notRequestPrincipals", "not supported with the CUSTOM action"),
    ("custom-with-jwt-condition", "AuthorizationPolicy",
     {"action": "CUSTOM", "provider": {"name": "ext"},
      "rules": [{"when": [{"key": "request.auth.claims[iss]", "values": ["x"]}]}]},
     "spec.rules[0].when[0].key", "not supported with the CUSTOM action"),
    # AuthorizationPolicy: from / source
    ("from-without-source", "AuthorizationPolicy", ap_rule(from_=[{}]),
     "spec.rules[0].from[0].source", "must be set"),
    ("empty-source", "AuthorizationPolicy", src(), "spec.rules[0].from[0].source", "must not be empty"),
    ("bad-ip-block", "AuthorizationPolicy", src(ipBlocks=["10.0.0.1", "10.0.0.300"]),
     "spec.rules[0].from[0].source.ipBlocks[1]", "not a valid IP address or CIDR"),
    ("bad-cidr", "AuthorizationPolicy", src(notRemoteIpBlocks=["10.0.0.0/33"]),
     "spec.rules[0].from[0].source.notRemoteIpBlocks[0]", "not a valid IP address or CIDR"),
    ("netmask-cidr", "AuthorizationPolicy", src(ipBlocks=["10.0.0.0/255.0.0.0"]),
     "spec.rules[0].from[0].source.ipBlocks[0]", "prefix length must be a decimal number"),
    ("bad-remote-ip", "AuthorizationPolicy", src(remoteIpBlocks=["example.com"]),
     "spec.rules[0].from[0].source.remoteIpBlocks[0]", "not a valid IP"),
    ("empty-principal", "AuthorizationPolicy", src(principals=["ok", ""]),
     "spec.rules[0].from[0].source.principals[1]", "empty value not allowed"),
    ("middle-wildcard-principal", "AuthorizationPolicy", src(principals=["cluster.local/ns/*/sa/x"]),
     "spec.rules[0].from[0].source.principals[0]", "'*' is only allowed"),
    ("double-wildcard-namespace", "AuthorizationPolicy", src(namespaces=["*foo*"]),
     "spec.rules[0].from[0].source.namespaces[0]", "'*' is only allowed"),
    ("service-account-wildcard", "AuthorizationPolicy", src(serviceAccounts=["ns/*"]),
     "spec.rules[0].from[0].source.serviceAccounts[0]", "wildcard not allowed"),
    ("service-account-format", "AuthorizationPolicy", src(notServiceAccounts=["a/b/c"]),
     "spec.rules[0].from[0].source.notServiceAccounts[0]", "expected format"),
    # AuthorizationPolicy: to / operation
    ("to-without-operation", "AuthorizationPolicy", ap_rule(to=[{}]),
     "spec.rules[0].to[0].operation", "must be set"),
    ("empty-operation", "AuthorizationPolicy", op(), "spec.rules[0].to[0].operation", "must not be empty"),
    ("named-port", "AuthorizationPolicy", op(ports=["http"]), "spec.rules[0].to[0].operation.ports[0]", "bad port"),
    ("port-too-big", "AuthorizationPolicy", op(ports=["80", "70000"]),
     "spec.rules[0].to[0].operation.ports[1]", "between 0 and 65535"),
    ("negative-not-port", "AuthorizationPolicy", op(notPorts=["-1"]),
     "spec.rules[0].to[0].operation.notPorts[0]", "bad port"),
    ("middle-wildcard-host", "AuthorizationPolicy", op(hosts=["*.example.com:*"]),
     "spec.rules[0].to[0].operation.hosts[0]", "'*' is only allowed"),
    ("middle-wildcard-path", "AuthorizationPolicy", op(paths=["/ok", "/api/*/users"]),
     "spec.rules[0].to[0].operation.paths[1]", "'*' is only allowed"),
    ("template-any-not-last", "AuthorizationPolicy", op(paths=["/a/{**}/{*}"]),
     "spec.rules[0].to[0].operation.paths[0]", "{**} must be the last operator"),
    ("template-any-twice", "AuthorizationPolicy", op(notPaths=["/{**}/b/{**}"]),
     "spec.rules[0].to[0].operation.notPaths[0]", "{**} must be the last operator"),
    ("template-partial-segment", "AuthorizationPolicy", op(paths=["/a/{*}.txt"]),
     "spec.rules[0].to[0].operation.paths[0]", "whole-segment templates"),
    ("template-with-glob", "AuthorizationPolicy", op(paths=["/a/{*}/b*"]),
     "spec.rules[0].to[0].operation.paths[0]", "not a valid literal"),
    ("template-empty-segment", "AuthorizationPolicy", op(paths=["/a//{*}"]),
     "spec.rules[0].to[0].operation.paths[0]", "not a valid literal"),
    ("braces-without-template", "AuthorizationPolicy", op(paths=["/users/{id}"]),
     "spec.rules[0].to[0].operation.paths[0]", "whole-segment templates"),
    ("empty-method", "AuthorizationPolicy", op(methods=[""]),
     "spec.rules[0].to[0].operation.methods[0]", "empty value not allowed"),
    # AuthorizationPolicy: when
    ("when-empty-key", "AuthorizationPolicy", when("", ["x"]), "spec.rules[0].when[0].key", "must not be empty"),
    ("when-unknown-key", "AuthorizationPolicy", when("request.method", ["GET"]),
     "spec.rules[0].when[0].key", "unknown attribute"),
    ("when-no-values", "AuthorizationPolicy", when("source.ip"), "spec.rules[0].when[0]",
     "at least one of `values` or `notValues`"),
    ("when-bad-ip", "AuthorizationPolicy", when("source.ip", ["10.0.0.1", "nope"]),
     "spec.rules[0].when[0].values[1]", "not a valid IP"),
    ("when-bad-remote-cidr", "AuthorizationPolicy", when("remote.ip", not_values=["1.2.3.4/40"]),
     "spec.rules[0].when[0].notValues[0]", "not a valid IP"),
    ("when-bad-destination-port", "AuthorizationPolicy", when("destination.port", not_values=["65536"]),
     "spec.rules[0].when[0].notValues[0]", "bad port"),
    ("when-header-without-name", "AuthorizationPolicy", when("request.headers[]", ["x"]),
     "spec.rules[0].when[0].key", "should have the form name[key]"),
    ("when-claims-without-brackets", "AuthorizationPolicy", when("request.auth.claims", ["x"]),
     "spec.rules[0].when[0].key", "should have the form name[key]"),
    ("when-destination-labels", "AuthorizationPolicy", when("destination.labels[app]", ["x"]),
     "spec.rules[0].when[0].key", "replaced by the workload selector"),
    ("when-destination-namespace", "AuthorizationPolicy", when("destination.namespace", ["x"]),
     "spec.rules[0].when[0].key", "replaced by the policy's metadata.namespace"),
    ("when-empty-value", "AuthorizationPolicy", when("request.auth.presenter", ["a", ""]),
     "spec.rules[0].when[0].values[1]", "empty value not allowed"),
    ("when-middle-wildcard", "AuthorizationPolicy", when("connection.sni", ["a.*.com"]),
     "spec.rules[0].when[0].values[0]", "'*' is only allowed"),
    ("when-service-account", "AuthorizationPolicy", when("source.serviceAccount", ["/sa"]),
     "spec.rules[0].when[0].values[0]", "expected format"),
    # targets
    ("target-ref-kind", "AuthorizationPolicy", {"targetRef": {"kind": "Deployment", "name": "x"}},
     "spec.targetRef", "targetRef must be to a Service"),
    ("target-refs-group", "AuthorizationPolicy",
     {"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"},
                     {"kind": "Service", "group": "networking.istio.io", "name": "x"}]},
     "spec.targetRefs[1]", "targetRef must be to a Service"),
    ("request-authn-target-ref", "RequestAuthentication",
     {"targetRef": {"kind": "Pod", "name": "x"}, "jwtRules": [{"issuer": "a"}]}, "spec.targetRef", "not /Pod"),
    # RequestAuthentication
    ("jwt-without-issuer", "RequestAuthentication", {"jwtRules": [{"audiences": ["a"]}]},
     "spec.jwtRules[0].issuer", "issuer is required"),
    ("jwks-not-json", "RequestAuthentication", {"jwtRules": [{"issuer": "a", "jwks": "not json"}]},
     "spec.jwtRules[0].jwks", "jwks parse error"),
    ("jwks-not-a-set", "RequestAuthentication", {"jwtRules": [{"issuer": "a", "jwks": "[1, 2]"}]},
     "spec.jwtRules[0].jwks", "must be a JSON object"),
    ("jwks-bad-key", "RequestAuthentication",
     {"jwtRules": [{"issuer": "a", "jwks": '{"keys": [{"kty": "NOPE"}]}'}]},
     "spec.jwtRules[0].jwks", "keys[0]"),
    ("jwks-keys-not-list", "RequestAuthentication", {"jwtRules": [{"issuer": "a", "jwks": '{"keys": {}}'}]},
     "spec.jwtRules[0].jwks", "`keys` must be a list"),
    ("from-header-name", "RequestAuthentication",
     {"jwtRules": [{"issuer": "a", "fromHeaders": [{"name": "x-jwt"}, {"name": "bad header"}]}]},
     "spec.jwtRules[0].fromHeaders[1].name", "not a valid HTTP header name"),
    ("output-payload-header", "RequestAuthentication",
     {"jwtRules": [{"issuer": "a", "outputPayloadToHeader": "x payload"}]},
     "spec.jwtRules[0].outputPayloadToHeader", "not a valid HTTP header name"),
    ("timeout-sub-ms", "RequestAuthentication", {"jwtRules": [{"issuer": "a", "timeout": "1500us"}]},
     "spec.jwtRules[0].timeout", "ms precision"),
    ("second-rule-indexed", "RequestAuthentication",
     {"jwtRules": [{"issuer": "a"}, {"issuer": "b", "jwks": "{"}]}, "spec.jwtRules[1].jwks", "not JSON"),
]

# Rules the CRD's CEL/schema also enforce: checked on the semantic validator directly.
SEMANTIC_ONLY = [
    ("pa-port-level-without-selector", "PeerAuthentication", {"portLevelMtls": {"8080": {"mode": "STRICT"}}},
     "spec.portLevelMtls", "cannot have port level mTLS"),
    ("pa-port-level-empty-selector", "PeerAuthentication",
     {"selector": {}, "portLevelMtls": {"8080": {"mode": "DISABLE"}}}, "spec.portLevelMtls", "add a selector"),
    ("pa-port-zero", "PeerAuthentication", {"selector": SEL, "portLevelMtls": {"0": {"mode": "STRICT"}}},
     "spec.portLevelMtls[0]", "between 1 and 65535"),
    ("pa-port-name", "PeerAuthentication", {"selector": SEL, "portLevelMtls": {"http": {"mode": "STRICT"}}},
     "spec.portLevelMtls[http]", "between 1 and 65535"),
    ("pa-mode", "PeerAuthentication", {"mtls": {"mode": "ON"}}, "spec.mtls.mode", "unknown mTLS mode"),
    ("pa-port-mode", "PeerAuthentication", {"selector": SEL, "portLevelMtls": {"80": {"mode": "strict"}}},
     "spec.portLevelMtls[80].mode", "unknown mTLS mode"),
    ("pa-selector-wildcard", "PeerAuthentication", {"selector": {"matchLabels": {"app": "web*"}}},
     "spec.selector.matchLabels[app]", "wildcard is not supported"),
    ("ap-selector-and-target", "AuthorizationPolicy",
     {"selector": SEL, "targetRef": {"kind": "Service", "name": "x"}}, "spec", "only one of selector"),
    ("ap-target-namespace", "AuthorizationPolicy",
     {"targetRefs": [{"kind": "Service", "name": "x", "namespace": "other"}]},
     "spec.targetRefs[0].namespace", "cross namespace"),
    ("ap-service-accounts-and-principals", "AuthorizationPolicy",
     src(serviceAccounts=["sa"], principals=["p"]), "spec.rules[0].from[0].source", "cannot set serviceAccounts"),
    ("ra-jwks-and-uri", "RequestAuthentication",
     {"jwtRules": [{"issuer": "a", "jwks": JWKS, "jwksUri": "https://x/keys"}]},
     "spec.jwtRules[0]", "only one of jwks or jwksUri"),
    ("ra-jwks-uri-scheme", "RequestAuthentication", {"jwtRules": [{"issuer": "a", "jwksUri": "ftp://x/k"}]},
     "spec.jwtRules[0].jwksUri", "scheme 'ftp' is not supported"),
    ("ra-jwks-uri-no-host", "RequestAuthentication", {"jwtRules": [{"issuer": "a", "jwksUri": "https:///k"}]},
     "spec.jwtRules[0].jwksUri", "a host is required"),
    ("ra-jwks-uri-port", "RequestAuthentication",
     {"jwtRules": [{"issuer": "a", "jwksUri": "https://x:port/k"}]}, "spec.jwtRules[0].jwksUri", "invalid jwksUri"),
    ("ra-jwks-uri-alias", "RequestAuthentication", {"jwtRules": [{"issuer": "a", "jwks_uri": "file:///k"}]},
     "spec.jwtRules[0].jwks_uri", "not supported"),
    ("ra-empty-from-header", "RequestAuthentication", {"jwtRules": [{"issuer": "a", "fromHeaders": [{"name": ""}]}]},
     "spec.jwtRules[0].fromHeaders[0].name", "must be non-empty"),
    ("ra-empty-from-param", "RequestAuthentication", {"jwtRules": [{"issuer": "a", "fromParams": [""]}]},
     "spec.jwtRules[0].fromParams[0]", "empty value"),
    ("ra-empty-audience", "RequestAuthentication", {"jwtRules": [{"issuer": "a", "audiences": ["x", ""]}]},
     "spec.jwtRules[0].audiences[1]", "non-empty string"),
    ("ra-claim-header-pattern", "RequestAuthentication",
     {"jwtRules": [{"issuer": "a", "outputClaimToHeaders": [{"header": "x.y", "claim": "sub"}]}]},
     "spec.jwtRules[0].outputClaimToHeaders[0].header", "not a valid header name"),
    ("ra-claim-missing", "RequestAuthentication",
     {"jwtRules": [{"issuer": "a", "outputClaimToHeaders": [{"header": "x-sub"}]}]},
     "spec.jwtRules[0].outputClaimToHeaders[0].claim", "non-empty"),
    ("ra-timeout-garbage", "RequestAuthentication", {"jwtRules": [{"issuer": "a", "timeout": "soon"}]},
     "spec.jwtRules[0].timeout", "invalid duration"),
]

VALID = [
    ("pa-mesh-strict", "PeerAuthentication", {"mtls": {"mode": "STRICT"}}),
    ("pa-empty", "PeerAuthentication", {}),
    ("pa-port-level", "PeerAuthentication",
     {"selector": SEL, "mtls": {"mode": "PERMISSIVE"}, "portLevelMtls": {"8080": {"mode": "DISABLE"}, "1": {}}}),
    ("ap-allow-nothing", "AuthorizationPolicy", {}),
    ("ap-allow-all", "AuthorizationPolicy", {"rules": [{}]}),
    ("ap-deny-all", "AuthorizationPolicy", {"action": "DENY", "rules": [{}]}),
    ("ap-custom", "AuthorizationPolicy",
     {"action": "CUSTOM", "provider": {"name": "ext-authz"},
      "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}),
    ("ap-audit-no-rules", "AuthorizationPolicy", {"action": "AUDIT"}),
    ("ap-istio-forms", "AuthorizationPolicy", {"selector": SEL, "rules": [{
        "from": [{"source": {"principals": ["p", "p-*", "*-p", "*"], "notNamespaces": ["n", "n-*", "*-n", "*"],
                             "ipBlocks": ["1.2.3.4", "5.6.0.0/16", "2001:db8::/32"], "notIpBlocks": ["::1"]}},
                 {"source": {"serviceAccounts": ["baz/sa", "sa"]}}],
        "to": [{"operation": {"methods": ["GET", "*-X"], "hosts": ["exact.com", "*.suffix.com", "prefix.*", "*"],
                              "ports": ["80", "0", "65535"],
                              "paths": ["/exact", "/prefix/*", "*/suffix", "*", "/path/template/{*}",
                                        "/{**}/path/template", "/{*}/x/{**}", "/a%20b/{*}"]}}],
        "when": [{"key": "request.headers[X-header]", "values": ["h", "h-*", "*-h", "*"]},
                 {"key": "source.ip", "values": ["10.10.10.10", "192.168.10.0/24"]},
                 {"key": "remote.ip", "notValues": ["90.168.10.0/24"]},
                 {"key": "request.auth.principal", "values": ["https://example.com/*"]},
                 {"key": "request.auth.claims[nested1][nested2]", "values": ["n"]},
                 {"key": "destination.ip", "values": ["10.0.0.1"]},
                 {"key": "destination.port", "values": ["91"], "notValues": ["9001"]},
                 {"key": "connection.sni", "values": ["*.suffix.com"]},
                 {"key": "source.serviceAccount", "values": ["ns/sa"]},
                 {"key": "request.experimental.inline.headers[x]", "values": ["y"]},
                 {"key": "experimental.envoy.filters.a.b[c]", "values": ["exact", "prefix-*"]}]}]}),
    ("ap-target-refs", "AuthorizationPolicy",
     {"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"},
                     {"kind": "Service", "group": "", "name": "reviews"},
                     {"kind": "ServiceEntry", "group": "networking.istio.io", "name": "se"}],
      "rules": [{}]}),
    ("ra-jwks", "RequestAuthentication", {"selector": SEL, "jwtRules": [{"issuer": "a", "jwks": JWKS}]}),
    ("ra-single-jwk", "RequestAuthentication", {"jwtRules": [{"issuer": "a", "jwks": SINGLE_JWK}]}),
    ("ra-jwks-uri-without-issuer", "RequestAuthentication", {"jwtRules": [{"jwksUri": "https://example.com:8443/k"}]}),
    ("ra-full", "RequestAuthentication", {"targetRef": {"kind": "Gateway", "group": "gateway.networking.k8s.io",
                                                        "name": "gw"}, "jwtRules": [{
        "issuer": "https://issuer.example", "jwksUri": "http://jwks.example/keys", "audiences": ["a", "b"],
        "fromHeaders": [{"name": "x-jwt-assertion", "prefix": "Bearer "}], "fromParams": ["token"],
        "fromCookies": ["session"], "outputPayloadToHeader": "x-jwt-payload", "forwardOriginalToken": True,
        "outputClaimToHeaders": [{"header": "x-sub", "claim": "sub"}], "timeout": "5s"}]}),
]


def test_table_is_large_enough() -> None:
    assert len(INVALID) + len(SEMANTIC_ONLY) + len(VALID) >= 50


@pytest.mark.parametrize(("kind", "spec", "path", "phrase"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_document(kind: str, spec: dict, path: str, phrase: str) -> None:
    errors, _ = pipeline(kind, spec)
    assert any(p == path and phrase in m for p, m in errors), errors


@pytest.mark.parametrize(("kind", "spec", "path", "phrase"), [c[1:] for c in SEMANTIC_ONLY],
                         ids=[c[0] for c in SEMANTIC_ONLY])
def test_invalid_spec_semantic_rule(kind: str, spec: dict, path: str, phrase: str) -> None:
    errors, _ = semantic(kind, spec)
    assert any(p == path and phrase in m for p, m in errors), errors


@pytest.mark.parametrize(("kind", "spec"), [c[1:] for c in VALID], ids=[c[0] for c in VALID])
def test_valid_document(kind: str, spec: dict) -> None:
    errors, _ = pipeline(kind, spec)
    assert errors == []
    assert semantic(kind, spec)[0] == []


def test_deny_with_only_http_attributes_warns() -> None:
    errors, warnings = pipeline("AuthorizationPolicy", {"action": "DENY", "rules": [
        {"to": [{"operation": {"paths": ["/admin"]}}]},
        {"to": [{"operation": {"ports": ["8080"], "paths": ["/x"]}}]},
        {"from": [{"source": {"requestPrincipals": ["*"]}}]},
        {"from": [{"source": {"namespaces": ["dev"]}}]},
    ]})
    assert errors == []
    assert [p for p, m in warnings if "deny all traffic to TCP ports" in m] == ["spec.rules[0]", "spec.rules[2]"]


def test_selector_without_labels_warns() -> None:
    errors, warnings = pipeline("PeerAuthentication", {"selector": {}, "mtls": {"mode": "STRICT"}})
    assert errors == []
    assert any(p == "spec.selector" and "without labels" in m for p, m in warnings)


def test_every_problem_reported_in_one_pass() -> None:
    errors, _ = pipeline("AuthorizationPolicy", {"rules": [{
        "from": [{"source": {"ipBlocks": ["x"], "principals": [""]}}],
        "to": [{"operation": {"ports": ["y"], "paths": ["/a*b"]}}],
        "when": [{"key": "nope", "values": ["v"]}]}]})
    assert {p for p, _ in errors} == {
        "spec.rules[0].from[0].source.ipBlocks[0]", "spec.rules[0].from[0].source.principals[0]",
        "spec.rules[0].to[0].operation.ports[0]", "spec.rules[0].to[0].operation.paths[0]",
        "spec.rules[0].when[0].key"}


def test_rendered_message_names_the_object_and_field() -> None:
    outcome = validate_document(document("AuthorizationPolicy", op(ports=["http"]), namespace="bar"))
    assert outcome.resource is None
    assert outcome.errors[0].startswith("AuthorizationPolicy bar/p: spec.rules[0].to[0].operation.ports[0]: bad port")


@pytest.mark.parametrize("kind", ["PeerAuthentication", "AuthorizationPolicy", "RequestAuthentication"])
def test_validators_ignore_specs_of_other_shapes(kind: str) -> None:
    f = Findings()
    kinds.by_kind(kind).validate(None, None, f)  # type: ignore[arg-type]
    assert f.ok


def test_corpus_security_documents_are_valid() -> None:
    folder = corpus_path("istio-validation-valid")
    paths = sorted(folder.glob("security-*.yaml"))
    assert paths
    for path in paths:
        for doc in documents.read_paths([str(path)]):
            outcome = validate_document(doc.body, source=doc.source)
            assert outcome.errors == (), (path.name, outcome.errors)
            assert outcome.resource is not None
