"""Semantic (webhook) validation of the networking kinds, through `validate_document`.

Each case is a structurally valid document: either it must pass without errors, or
it must produce an error (or warning) at an exact field path with a key phrase.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from isthmus.shared.config.documents import read_paths
from isthmus.shared.config.validation import common, validate_document
from isthmus.shared.config.validation.report import Findings
from tests.conftest import corpus_path

API = "networking.istio.io/v1"


@dataclass
class Case:
    id: str
    kind: str
    spec: dict[str, Any]
    path: str | None = None  # None: the document must be valid (no errors)
    phrase: str = ""
    warn: bool = False  # the finding is a warning (and the document has no errors)
    name: str = "r"
    annotations: dict[str, str] = field(default_factory=dict)


def route(host: str = "r", **extra: Any) -> dict[str, Any]:
    return {"route": [{"destination": {"host": host}}], **extra}


def vs(**spec: Any) -> dict[str, Any]:
    return {"hosts": ["r"], **spec}


def http(**extra: Any) -> dict[str, Any]:
    """A VirtualService spec with one HTTP route carrying `extra`."""
    return vs(http=[route(**extra)])


def match(**m: Any) -> dict[str, Any]:
    return http(match=[m])


def dr(**tp: Any) -> dict[str, Any]:
    return {"host": "r", "trafficPolicy": tp}


def server(protocol: str = "HTTP", number: int = 80, name: str = "http", hosts: tuple = ("*",), **extra: Any):
    return {"port": {"number": number, "protocol": protocol, "name": name}, "hosts": list(hosts), **extra}


def gw(*servers: dict[str, Any]) -> dict[str, Any]:
    return {"selector": {"istio": "ingressgateway"}, "servers": list(servers)}


def https(**tls: Any) -> dict[str, Any]:
    return gw(server("HTTPS", 443, "https", tls=tls))


def se(**spec: Any) -> dict[str, Any]:
    return {"hosts": ["api.example.com"], "ports": [{"number": 443, "name": "https", "protocol": "TLS"}],
            "resolution": "DNS", **spec}


def egress(*hosts: str, **extra: Any) -> dict[str, Any]:
    return {"egress": [{"hosts": list(hosts), **extra}]}


def ingress(**listener: Any) -> dict[str, Any]:
    base = {"port": {"number": 9080, "protocol": "HTTP", "name": "http"}, "defaultEndpoint": "127.0.0.1:8080"}
    return {"ingress": [{**base, **listener}]}


def wg(**spec: Any) -> dict[str, Any]:
    return {"template": {"ports": {"http": 8080}, "serviceAccount": "reviews"}, **spec}


BIG = "x" * (1024 * 1024 + 10)
MID = "x" * (200 * 1024)

VALID = [
    # VirtualService
    Case("vs-simple", "VirtualService", http()),
    Case("vs-weights", "VirtualService", vs(http=[{"route": [
        {"destination": {"host": "r", "subset": "v1"}, "weight": 75},
        {"destination": {"host": "r", "subset": "v2"}, "weight": 25}]}])),
    Case("vs-delegate-no-hosts", "VirtualService", {"http": [route()]}),
    Case("vs-gateway-star-host", "VirtualService", {"hosts": ["*"], "gateways": ["istio-system/gw"], "http": [route()]}),
    Case("vs-ip-host", "VirtualService", {"hosts": ["10.0.0.1"], "http": [route()]}),
    Case("vs-tls-sni", "VirtualService", {"hosts": ["*.example.com"], "gateways": ["gw"], "tls": [
        {"match": [{"sniHosts": ["a.example.com"], "port": 443}], "route": [{"destination": {"host": "a.example.com"}}]}]}),
    Case("vs-tcp", "VirtualService", vs(tcp=[{"match": [{"port": 3306, "destinationSubnets": ["10.0.0.0/8"]}],
                                              "route": [{"destination": {"host": "db", "port": {"number": 3306}}}]}])),
    Case("vs-redirect", "VirtualService", vs(http=[{"redirect": {"uri": "/v2", "redirectCode": 308}}])),
    Case("vs-direct-response", "VirtualService", vs(http=[{"directResponse": {"status": 503, "body": {"string": "down"}}}])),
    Case("vs-header-presence", "VirtualService", match(headers={"x-user": {}}, uri={"prefix": ""})),
    Case("vs-without-headers-star", "VirtualService", match(withoutHeaders={"x-debug": {"regex": "*"}})),
    Case("vs-pseudo-header-match", "VirtualService", match(headers={":authority": {"exact": "a.example.com"}})),
    Case("vs-retries", "VirtualService", http(retries={"attempts": 3, "perTryTimeout": "2s",
                                                      "retryOn": "5xx,503,connect-failure"})),
    Case("vs-jwt-claim-on-gateway", "VirtualService", {"hosts": ["a.example.com"], "gateways": ["gw"], "http": [
        route(match=[{"headers": {"@request.auth.claims.sub": {"exact": "alice"}}}])]}),
    Case("vs-full-features", "VirtualService", http(
        timeout="10s", fault={"delay": {"fixedDelay": "5s", "percentage": {"value": 0.5}}},
        corsPolicy={"allowOrigins": [{"prefix": "https://"}], "allowMethods": ["GET", "POST"], "maxAge": "24h"},
        headers={"request": {"set": {"x-env": "%HOSTNAME%", "host": "internal"}}, "response": {"remove": ["server"]}},
        mirrors=[{"destination": {"host": "shadow"}, "percentage": {"value": 10}}],
        rewrite={"uriRegexRewrite": {"match": "^/api(/.*)", "rewrite": "\\1"}})),
    # DestinationRule
    Case("dr-subsets", "DestinationRule", {"host": "r", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}),
    Case("dr-policy", "DestinationRule", dr(
        connectionPool={"tcp": {"maxConnections": 100, "connectTimeout": "30ms", "idleTimeout": "0s"},
                        "http": {"http1MaxPendingRequests": 10, "maxRetries": 3, "idleTimeout": "1h"}},
        outlierDetection={"consecutive5xxErrors": 5, "interval": "5m", "baseEjectionTime": "15m",
                          "maxEjectionPercent": 100},
        loadBalancer={"consistentHash": {"httpCookie": {"name": "user", "ttl": "0s"}}})),
    Case("dr-tls-credential", "DestinationRule", dr(tls={"mode": "MUTUAL", "credentialName": "client-cert"})),
    Case("dr-configmap-same-namespace", "DestinationRule", dr(tls={"mode": "SIMPLE",
                                                                   "credentialName": "configmap://default/ca"})),
    Case("dr-maglev-prime", "DestinationRule", dr(loadBalancer={"consistentHash": {
        "useSourceIp": True, "maglev": {"tableSize": 65537}}})),
    Case("dr-selector-local-export", "DestinationRule", {"host": "r", "exportTo": ["."], "trafficPolicy": {
        "tls": {"mode": "ISTIO_MUTUAL"}}, "workloadSelector": {"matchLabels": {"app": "r"}}}),
    Case("dr-locality", "DestinationRule", dr(outlierDetection={"consecutive5xxErrors": 1}, loadBalancer={
        "localityLbSetting": {"distribute": [{"from": "us-west/zone1/*", "to": {"us-west/zone1/*": 80,
                                                                               "us-west/zone2/*": 20}}]}})),
    # Gateway
    Case("gw-http", "Gateway", gw(server())),
    Case("gw-https-credential", "Gateway", https(mode="SIMPLE", credentialName="cert")),
    Case("gw-http-redirect", "Gateway", gw(server(tls={"httpsRedirect": True}))),
    Case("gw-passthrough", "Gateway", gw(server("TLS", 443, "tls", hosts=("ns/*.example.com",), tls={"mode": "PASSTHROUGH"}))),
    Case("gw-mutual-files", "Gateway", https(mode="MUTUAL", serverCertificate="/c.pem", privateKey="/k.pem",
                                              caCertificates="/ca.pem")),
    Case("gw-ip-host", "Gateway", gw(server(hosts=("./10.0.0.1",)))),
    # ServiceEntry
    Case("se-dns", "ServiceEntry", se()),
    Case("se-static", "ServiceEntry", se(resolution="STATIC", addresses=["10.1.0.0/16"], endpoints=[
        {"address": "10.1.2.3", "ports": {"https": 8443}}])),
    Case("se-dns-endpoint-hostname", "ServiceEntry", se(hosts=["*.example.com"], endpoints=[{"address": "lb.example.com"}])),
    Case("se-none-wildcard", "ServiceEntry", se(hosts=["*.example.com"], resolution="NONE")),
    Case("se-export-none", "ServiceEntry", se(exportTo=["~"])),
    Case("se-static-unix", "ServiceEntry", se(resolution="STATIC", endpoints=[{"address": "unix:///var/run/a.sock"}])),
    # Sidecar
    Case("sidecar-egress", "Sidecar", egress("./*", "istio-system/*")),
    Case("sidecar-ingress", "Sidecar", ingress()),
    Case("sidecar-uds-egress", "Sidecar", {"egress": [
        {"port": {"number": 0, "protocol": "HTTP", "name": "uds"}, "bind": "unix:///var/run/a.sock", "hosts": ["*/*"]}]}),
    Case("sidecar-egress-proxy", "Sidecar", {"outboundTrafficPolicy": {"mode": "ALLOW_ANY", "egressProxy": {
        "host": "egress.istio-system.svc.cluster.local", "port": {"number": 80}}}}),
    # WorkloadEntry
    Case("we-ip", "WorkloadEntry", {"address": "10.0.0.5", "ports": {"http": 8080}, "labels": {"app": "r"},
                                    "serviceAccount": "reviews"}),
    Case("we-hostname", "WorkloadEntry", {"address": "vm1.example.com"}),
    Case("we-unix", "WorkloadEntry", {"address": "unix:///var/run/app.sock"}),
    # WorkloadGroup
    Case("wg-simple", "WorkloadGroup", wg(metadata={"labels": {"app": "r"}})),
    Case("wg-probe-http", "WorkloadGroup", wg(probe={"httpGet": {"port": 8080, "path": "/ready",
                                                                 "httpHeaders": [{"name": "x-probe", "value": "1"}]},
                                                     "periodSeconds": 5})),
]

INVALID = [
    # ---- VirtualService: hosts, gateways, shape
    Case("vs-no-routes", "VirtualService", vs(), "spec", "http, tcp or tls must be provided"),
    Case("vs-mesh-star", "VirtualService", {"hosts": ["*"], "http": [route()]}, "spec.hosts[0]",
         "wildcard host * is not allowed"),
    Case("vs-mesh-gateway-star", "VirtualService", {"hosts": ["*"], "gateways": ["mesh", "gw"], "http": [route()]},
         "spec.hosts[0]", "bound to the mesh gateway"),
    Case("vs-bad-wildcard-host", "VirtualService", {"hosts": ["foo.*.com"], "http": [route()]}, "spec.hosts[0]",
         "label '*' invalid"),
    Case("vs-numeric-tld", "VirtualService", {"hosts": ["foo.123"], "http": [route()]}, "spec.hosts[0]",
         "cannot be all-numeric"),
    Case("vs-duplicate-hosts", "VirtualService", {"hosts": ["*.example.com", "a.example.com"], "http": [route()]},
         "spec.hosts[0]", "duplicate hosts in virtual service"),
    Case("vs-delegate-gateways", "VirtualService", {"gateways": ["gw"], "http": [route()]}, "spec.gateways",
         "delegate virtual service"),
    Case("vs-delegate-tcp", "VirtualService", {"tcp": [{"route": [{"destination": {"host": "r"}}]}]}, "spec.tcp",
         "must have no tcp route"),
    Case("vs-gateway-bad-name", "VirtualService", vs(gateways=["ns/Bad_Name"], http=[route()]), "spec.gateways[0]",
         "invalid value for gateway name"),
    Case("vs-gateway-empty-ns", "VirtualService", vs(gateways=["/gw"], http=[route()]), "spec.gateways[0]",
         "cannot be empty"),
    Case("vs-gateway-legacy", "VirtualService", vs(gateways=["gw.istio-system"], http=[route()]), "spec.gateways[0]",
         "legacy gatewayName format", warn=True),
    Case("vs-export-dup", "VirtualService", vs(http=[route()], exportTo=[".", "default"]), "spec.exportTo[1]",
         "duplicate entries in exportTo"),
    Case("vs-export-none", "VirtualService", vs(http=[route()], exportTo=["~"]), "spec.exportTo[0]",
         "exportTo ~ (none) is not allowed"),
    Case("vs-export-public-and-ns", "VirtualService", vs(http=[route()], exportTo=["*", "ns1"]), "spec.exportTo",
         "both public (*) and non-public"),
    Case("vs-export-bad-ns", "VirtualService", vs(http=[route()], exportTo=["bad_ns"]), "spec.exportTo[0]",
         "only '.', '*' or a valid DNS 1123 label"),
    # ---- destinations and weights
    Case("vs-negative-weight", "VirtualService", vs(http=[{"route": [
        {"destination": {"host": "r"}, "weight": 100}, {"destination": {"host": "s"}, "weight": -5}]}]),
         "spec.http[0].route[1].weight", "must be non-negative (got -5)"),
    Case("vs-zero-total-weight", "VirtualService", vs(http=[{"route": [
        {"destination": {"host": "r"}, "weight": 0}, {"destination": {"host": "s"}, "weight": 0}]}]),
         "spec.http[0].route", "total destination weight = 0"),
    Case("vs-destination-star", "VirtualService", vs(http=[route("*")]), "spec.http[0].route[0].destination.host",
         "invalid destination host"),
    Case("vs-destination-bad-subset", "VirtualService", vs(http=[{"route": [{"destination": {"host": "r", "subset": "v1_beta"}}]}]),
         "spec.http[0].route[0].destination.subset", "DNS-1123 label"),
    Case("vs-destination-port", "VirtualService", vs(http=[{"route": [{"destination": {"host": "r", "port": {"number": 70000}}}]}]),
         "spec.http[0].route[0].destination.port.number", "between 1 and 65535 (got 70000)"),
    Case("vs-route-headers-pseudo", "VirtualService", vs(http=[{"route": [{"destination": {"host": "r"}, "headers": {
        "response": {"set": {":status": "200"}}}}]}]),
         "spec.http[0].route[0].headers.response.set[:status]", 'cannot have ":" prefix'),
    # ---- route actions
    Case("vs-redirect-and-route", "VirtualService", http(redirect={"uri": "/x"}), "spec.http[0].route",
         "both route and redirect"),
    Case("vs-direct-and-fault", "VirtualService", vs(http=[{"directResponse": {"status": 200},
                                                          "fault": {"abort": {"httpStatus": 500}}}]),
         "spec.http[0].fault", "both fault and directResponse"),
    Case("vs-redirect-and-direct", "VirtualService", vs(http=[{"redirect": {"uri": "/x"}, "directResponse": {"status": 200}}]),
         "spec.http[0].directResponse", "both redirect and directResponse"),
    Case("vs-no-action", "VirtualService", vs(http=[{"timeout": "5s"}]), "spec.http[0]",
         "HTTP route, redirect or directResponse is required"),
    Case("vs-root-with-route", "VirtualService", http(delegate={"name": "child", "namespace": "ns"}),
         "spec.http[0].route", "root HTTP route"),
    Case("vs-delegate-nested", "VirtualService", {"http": [route(delegate={"name": "x"})]}, "spec.http[0].delegate",
         "delegate HTTP route cannot contain delegate"),
    Case("vs-mirror-and-mirrors", "VirtualService", http(mirror={"host": "a"}, mirrors=[{"destination": {"host": "b"}}]),
         "spec.http[0].mirrors", "both mirror and mirrors"),
    Case("vs-mirror-percentage", "VirtualService", http(mirror={"host": "a"}, mirrorPercentage={"value": 120}),
         "spec.http[0].mirrorPercentage.value", "must be between 0 and 100 (got 120)"),
    Case("vs-mirrors-percentage", "VirtualService", http(mirrors=[{"destination": {"host": "b"}, "percentage": {"value": 150}}]),
         "spec.http[0].mirrors[0].percentage.value", "between 0 and 100"),
    Case("vs-mirror-host-star", "VirtualService", http(mirror={"host": "*"}), "spec.http[0].mirror.host",
         "invalid destination host"),
    Case("vs-mirror-percent-deprecated", "VirtualService", http(mirror={"host": "a"}, mirrorPercent=50),
         "spec.http[0].mirrorPercent", "deprecated", warn=True),
    Case("vs-mirror-percent-too-big", "VirtualService", http(mirror={"host": "a"}, mirrorPercent=150),
         "spec.http[0].mirrorPercent", "max value of 100"),
    Case("vs-timeout-precision", "VirtualService", http(timeout="1.0005s"), "spec.http[0].timeout",
         "ms precision"),
    # ---- match
    Case("vs-uri-bad-regex", "VirtualService", match(uri={"regex": "(unclosed"}), "spec.http[0].match[0].uri.regex",
         "invalid regex"),
    Case("vs-uri-lookahead", "VirtualService", match(uri={"regex": "/a(?=b)"}), "spec.http[0].match[0].uri.regex",
         "RE2"),
    Case("vs-uri-empty-regex", "VirtualService", match(uri={"regex": ""}), "spec.http[0].match[0].uri.regex",
         "should not be empty"),
    Case("vs-regex-too-long", "VirtualService", match(uri={"regex": "a" * 1100}), "spec.http[0].match[0].uri.regex",
         "max length allowed is 1024"),
    Case("vs-method-empty-prefix", "VirtualService", match(method={"prefix": ""}), "spec.http[0].match[0].method.prefix",
         "prefix string match should not be empty"),
    Case("vs-authority-bad-regex", "VirtualService", match(authority={"regex": "["}),
         "spec.http[0].match[0].authority.regex", "invalid regex"),
    Case("vs-header-bad-name", "VirtualService", match(headers={"x user": {"exact": "a"}}),
         "spec.http[0].match[0].headers[x user]", "not a valid header name"),
    Case("vs-header-bad-regex", "VirtualService", match(headers={"x-user": {"regex": "a(b"}}),
         "spec.http[0].match[0].headers[x-user].regex", "invalid regex"),
    Case("vs-query-bad-regex", "VirtualService", match(queryParams={"q": {"regex": "*a"}}),
         "spec.http[0].match[0].queryParams[q].regex", "invalid regex"),
    Case("vs-without-headers-bad-regex", "VirtualService", match(withoutHeaders={"x-a": {"regex": "[a"}}),
         "spec.http[0].match[0].withoutHeaders[x-a].regex", "invalid regex"),
    Case("vs-match-port", "VirtualService", match(port=70000), "spec.http[0].match[0].port",
         "between 1 and 65535"),
    Case("vs-source-labels", "VirtualService", match(sourceLabels={"bad key": "v"}),
         "spec.http[0].match[0].sourceLabels[bad key]", "invalid label key"),
    Case("vs-source-namespace", "VirtualService", match(sourceNamespace="bad_ns"),
         "spec.http[0].match[0].sourceNamespace", "DNS-1123 label"),
    Case("vs-match-gateway", "VirtualService", match(gateways=["ns/"]), "spec.http[0].match[0].gateways[0]",
         "cannot be empty"),
    Case("vs-jwt-claim-mesh", "VirtualService", match(headers={"@request.auth.claims.sub": {"exact": "a"}}),
         "spec.http[0].match[0].headers[@request.auth.claims.sub]", "only supported for gateways"),
    # ---- header operations
    Case("vs-set-pseudo-header", "VirtualService", http(headers={"request": {"set": {":path": "/x"}}}),
         "spec.http[0].headers.request.set[:path]", 'cannot have ":" prefix'),
    Case("vs-remove-host", "VirtualService", http(headers={"request": {"remove": ["Host"]}}),
         "spec.http[0].headers.request.remove[0]", "cannot set Host header"),
    Case("vs-response-set-host", "VirtualService", http(headers={"response": {"add": {"host": "x"}}}),
         "spec.http[0].headers.response.add[host]", "cannot set Host header"),
    Case("vs-header-value-percent", "VirtualService", http(headers={"request": {"add": {"x-a": "100%"}}}),
         "spec.http[0].headers.request.add[x-a]", "un-escaped '%'"),
    Case("vs-header-value-unterminated", "VirtualService", http(headers={"request": {"set": {"x-a": "%START_TIME"}}}),
         "spec.http[0].headers.request.set[x-a]", "un-terminated variable"),
    Case("vs-authority-twice", "VirtualService", http(rewrite={"authority": "a"}, headers={"request": {"set": {"host": "b"}}}),
         "spec.http[0].headers.request.set[host]", "authority header cannot be set multiple times"),
    # ---- cors
    Case("vs-cors-empty-origin", "VirtualService", http(corsPolicy={"allowOrigins": [{"exact": ""}]}),
         "spec.http[0].corsPolicy.allowOrigins[0]", "not a valid match type for CORS"),
    Case("vs-cors-bad-origin-regex", "VirtualService", http(corsPolicy={"allowOrigins": [{"regex": "("}]}),
         "spec.http[0].corsPolicy.allowOrigins[0].regex", "invalid regex"),
    Case("vs-cors-method", "VirtualService", http(corsPolicy={"allowMethods": ["FETCH"]}),
         "spec.http[0].corsPolicy.allowMethods[0]", "not a supported HTTP method"),
    Case("vs-cors-header", "VirtualService", http(corsPolicy={"allowHeaders": ["x y"]}),
         "spec.http[0].corsPolicy.allowHeaders[0]", "not a valid header name"),
    Case("vs-cors-max-age-seconds", "VirtualService", http(corsPolicy={"maxAge": "1500ms"}),
         "spec.http[0].corsPolicy.maxAge", "seconds precision"),
    Case("vs-cors-allow-origin-deprecated", "VirtualService", http(corsPolicy={"allowOrigin": ["https://a.com"]}),
         "spec.http[0].corsPolicy.allowOrigin", "deprecated", warn=True),
    # ---- fault
    Case("vs-fault-empty", "VirtualService", http(fault={}), "spec.http[0].fault", "must have an abort and/or a delay"),
    Case("vs-fault-abort-status", "VirtualService", http(fault={"abort": {"httpStatus": 700}}),
         "spec.http[0].fault.abort.httpStatus", "between 200 and 599 (got 700)"),
    Case("vs-fault-abort-grpc", "VirtualService", http(fault={"abort": {"grpcStatus": "NOPE"}}),
         "spec.http[0].fault.abort.grpcStatus", "is not supported"),
    Case("vs-fault-abort-http2", "VirtualService", http(fault={"abort": {"http2Error": "CANCEL"}}),
         "spec.http[0].fault.abort.http2Error", "not supported yet"),
    Case("vs-fault-abort-tiny-percentage", "VirtualService",
         http(fault={"abort": {"httpStatus": 500, "percentage": {"value": 0.00001}}}),
         "spec.http[0].fault.abort.percentage.value", "0.0001"),
    Case("vs-fault-abort-big-percentage", "VirtualService",
         http(fault={"abort": {"httpStatus": 500, "percentage": {"value": 101}}}),
         "spec.http[0].fault.abort.percentage.value", "got 101"),
    Case("vs-fault-abort-no-type", "VirtualService", http(fault={"abort": {"percentage": {"value": 10}}}),
         "spec.http[0].fault.abort", "error type not set", warn=True),
    Case("vs-fault-delay-missing", "VirtualService", http(fault={"delay": {"percentage": {"value": 10}}}),
         "spec.http[0].fault.delay.fixedDelay", "required"),
    Case("vs-fault-delay-precision", "VirtualService", http(fault={"delay": {"fixedDelay": "1.0001s"}}),
         "spec.http[0].fault.delay.fixedDelay", "ms precision"),
    Case("vs-fault-delay-exponential", "VirtualService", http(fault={"delay": {"exponentialDelay": "1s"}}),
         "spec.http[0].fault.delay.exponentialDelay", "not supported yet"),
    Case("vs-fault-delay-percent", "VirtualService", http(fault={"delay": {"fixedDelay": "1s", "percent": 150}}),
         "spec.http[0].fault.delay.percent", "between 0 and 100 (got 150)"),
    Case("vs-fault-delay-percent-deprecated", "VirtualService", http(fault={"delay": {"fixedDelay": "1s", "percent": 50}}),
         "spec.http[0].fault.delay.percent", "deprecated", warn=True),
    # ---- redirect, direct response
    Case("vs-redirect-empty", "VirtualService", vs(http=[{"redirect": {"redirectCode": 302}}]), "spec.http[0].redirect",
         "must specify uri, authority, scheme, or port"),
    Case("vs-redirect-code", "VirtualService", vs(http=[{"redirect": {"uri": "/x", "redirectCode": 200}}]),
         "spec.http[0].redirect.redirectCode", "must be 3xx"),
    Case("vs-redirect-scheme", "VirtualService", vs(http=[{"redirect": {"scheme": "ftp"}}]),
         "spec.http[0].redirect.scheme", 'must be "http" or "https"'),
    Case("vs-redirect-port", "VirtualService", vs(http=[{"redirect": {"port": 70000}}]),
         "spec.http[0].redirect.port", "between 1 and 65535"),
    Case("vs-direct-status", "VirtualService", vs(http=[{"directResponse": {"status": 700}}]),
         "spec.http[0].directResponse.status", "between 200 and 599"),
    Case("vs-direct-body-too-big", "VirtualService", vs(http=[{"directResponse": {"status": 200, "body": {"string": BIG}}}]),
         "spec.http[0].directResponse.body", "must be less than 1MB"),
    Case("vs-direct-body-large", "VirtualService", vs(http=[{"directResponse": {"status": 200, "body": {"string": MID}}}]),
         "spec.http[0].directResponse.body", "may impact control plane performance", warn=True),
    # ---- retries, rewrite
    Case("vs-retries-negative", "VirtualService", http(retries={"attempts": -1}), "spec.http[0].retries.attempts",
         "cannot be negative"),
    Case("vs-retries-zero-attempts", "VirtualService", http(retries={"attempts": 0, "retryOn": "5xx"}),
         "spec.http[0].retries.attempts", "attempts are set to 0"),
    Case("vs-retry-on-unknown", "VirtualService", http(retries={"attempts": 2, "retryOn": "5xx,bogus"}),
         "spec.http[0].retries.retryOn", "'bogus' is not a valid retryOn policy"),
    Case("vs-retry-on-bad-code", "VirtualService", http(retries={"attempts": 2, "retryOn": "599"}),
         "spec.http[0].retries.retryOn", "'599' is not a valid retryOn policy"),
    Case("vs-per-try-precision", "VirtualService", http(retries={"attempts": 2, "perTryTimeout": "2.0001s"}),
         "spec.http[0].retries.perTryTimeout", "ms precision"),
    Case("vs-rewrite-both", "VirtualService", http(rewrite={"uri": "/a", "uriRegexRewrite": {"match": "a", "rewrite": "b"}}),
         "spec.http[0].rewrite", "only contain one of uri or uriRegexRewrite"),
    Case("vs-rewrite-empty", "VirtualService", http(rewrite={}), "spec.http[0].rewrite",
         "must specify at least one of"),
    Case("vs-regex-rewrite-half", "VirtualService", http(rewrite={"uriRegexRewrite": {"match": "^/a"}}),
         "spec.http[0].rewrite.uriRegexRewrite", "requires both rewrite and match"),
    Case("vs-regex-rewrite-bad", "VirtualService", http(rewrite={"uriRegexRewrite": {"match": "(", "rewrite": "/"}}),
         "spec.http[0].rewrite.uriRegexRewrite.match", "invalid regex"),
    # ---- tls / tcp routes
    Case("vs-tls-no-match", "VirtualService", {"hosts": ["a.example.com"], "tls": [
        {"match": [], "route": [{"destination": {"host": "a"}}]}]}, "spec.tls[0].match", "at least one match"),
    Case("vs-tls-no-sni", "VirtualService", {"hosts": ["a.example.com"], "tls": [
        {"match": [{"sniHosts": [], "port": 443}], "route": [{"destination": {"host": "a"}}]}]},
         "spec.tls[0].match[0].sniHosts", "at least one SNI host"),
    Case("vs-tls-sni-not-subset", "VirtualService", {"hosts": ["a.example.com"], "tls": [
        {"match": [{"sniHosts": ["b.example.com"]}], "route": [{"destination": {"host": "a"}}]}]},
         "spec.tls[0].match[0].sniHosts[0]", "not a compatible subset"),
    Case("vs-tls-sni-ip", "VirtualService", {"hosts": ["a.example.com"], "tls": [
        {"match": [{"sniHosts": ["a.example.com", "10.0.0.1"]}], "route": [{"destination": {"host": "a"}}]}]},
         "spec.tls[0].match[0].sniHosts[1]", "goes against SNI spec", warn=True),
    Case("vs-tls-no-route", "VirtualService", {"hosts": ["a.example.com"], "tls": [
        {"match": [{"sniHosts": ["a.example.com"]}]}]}, "spec.tls[0].route", "TLS route is required"),
    Case("vs-tcp-no-route", "VirtualService", vs(tcp=[{"match": [{"port": 1}]}]), "spec.tcp[0].route",
         "TCP route is required"),
    Case("vs-tcp-bad-subnet", "VirtualService", vs(tcp=[{"match": [{"destinationSubnets": ["10.0.0.0/33"]}],
                                                        "route": [{"destination": {"host": "r"}}]}]),
         "spec.tcp[0].match[0].destinationSubnets[0]", "not a valid IP address or CIDR"),
    # ---- unreachable rules
    Case("vs-catch-all-not-last", "VirtualService", vs(http=[route(), route(match=[{"uri": {"prefix": "/a"}}])]),
         "spec.http[1]", "not used (route without matches defined before)", warn=True),
    Case("vs-duplicate-match", "VirtualService", vs(http=[route(match=[{"uri": {"exact": "/a"}}]),
                                                       route(match=[{"uri": {"exact": "/a"}, "name": "again"}])]),
         "spec.http[1].match[0]", "duplicate/overlapping match", warn=True),
    # ---- DestinationRule
    Case("dr-bad-host", "DestinationRule", {"host": "foo.*.com"}, "spec.host", "invalid (label"),
    Case("dr-duplicate-subsets", "DestinationRule", {"host": "r", "subsets": [{"name": "v1"}, {"name": "v1"}]},
         "spec.subsets[1].name", "duplicate subset names"),
    Case("dr-subset-name", "DestinationRule", {"host": "r", "subsets": [{"name": "V_1"}]}, "spec.subsets[0].name",
         "DNS-1123 label"),
    Case("dr-subset-label", "DestinationRule", {"host": "r", "subsets": [{"name": "v1", "labels": {"version": "-v1"}}]},
         "spec.subsets[0].labels[version]", "invalid label value"),
    Case("dr-empty-policy", "DestinationRule", dr(), "spec.trafficPolicy", "at least one field"),
    Case("dr-empty-pool", "DestinationRule", dr(connectionPool={}), "spec.trafficPolicy.connectionPool",
         "at least one field"),
    Case("dr-pending-negative", "DestinationRule", dr(connectionPool={"http": {"http1MaxPendingRequests": -1}}),
         "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests", "non-negative"),
    Case("dr-max-connections-negative", "DestinationRule", dr(connectionPool={"tcp": {"maxConnections": -3}}),
         "spec.trafficPolicy.connectionPool.tcp.maxConnections", "non-negative (got -3)"),
    Case("dr-connect-timeout-precision", "DestinationRule", dr(connectionPool={"tcp": {"connectTimeout": "1.0005s"}}),
         "spec.trafficPolicy.connectionPool.tcp.connectTimeout", "ms precision"),
    Case("dr-h2-upgrade-client-protocol", "DestinationRule", dr(connectionPool={"http": {
        "h2UpgradePolicy": "UPGRADE", "useClientProtocol": True}}),
         "spec.trafficPolicy.connectionPool.http.useClientProtocol", "must not be true"),
    Case("dr-max-ejection", "DestinationRule", dr(outlierDetection={"maxEjectionPercent": 120}),
         "spec.trafficPolicy.outlierDetection.maxEjectionPercent", "must be between 0 and 100 (got 120)"),
    Case("dr-min-health", "DestinationRule", dr(outlierDetection={"minHealthPercent": -1}),
         "spec.trafficPolicy.outlierDetection.minHealthPercent", "between 0 and 100"),
    Case("dr-local-origin", "DestinationRule", dr(outlierDetection={"consecutiveLocalOriginFailures": 3}),
         "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures", "splitExternalLocalOriginErrors"),
    Case("dr-consecutive-errors-deprecated", "DestinationRule", dr(outlierDetection={"consecutiveErrors": 5}),
         "spec.trafficPolicy.outlierDetection.consecutiveErrors", "deprecated", warn=True),
    Case("dr-interval-precision", "DestinationRule", dr(outlierDetection={"interval": "10.5005s"}),
         "spec.trafficPolicy.outlierDetection.interval", "ms precision"),
    Case("dr-cookie-name", "DestinationRule", dr(loadBalancer={"consistentHash": {"httpCookie": {"name": ""}}}),
         "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name", "name required"),
    Case("dr-cookie-ttl", "DestinationRule", dr(loadBalancer={"consistentHash": {"httpCookie": {"name": "u", "ttl": "soon"}}}),
         "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.ttl", "invalid duration"),
    Case("dr-maglev-not-prime", "DestinationRule", dr(loadBalancer={"consistentHash": {"useSourceIp": True,
                                                                                       "maglev": {"tableSize": 1000}}}),
         "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize", "prime number"),
    Case("dr-ring-size-deprecated", "DestinationRule", dr(loadBalancer={"consistentHash": {"useSourceIp": True,
                                                                                           "minimumRingSize": 1024}}),
         "spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize", "deprecated", warn=True),
    Case("dr-no-hash-key", "DestinationRule", dr(loadBalancer={"consistentHash": {"ringHash": {"minimumRingSize": 1024}}}),
         "spec.trafficPolicy.loadBalancer.consistentHash", "no hash key", warn=True),
    Case("dr-distribute-and-failover", "DestinationRule", dr(outlierDetection={"consecutive5xxErrors": 1}, loadBalancer={
        "localityLbSetting": {"distribute": [{"from": "a", "to": {"b": 100}}], "failover": [{"from": "a", "to": "b"}]}}),
         "spec.trafficPolicy.loadBalancer.localityLbSetting", "simultaneously specify 'distribute' and 'failover'"),
    Case("dr-distribute-sum", "DestinationRule", dr(loadBalancer={"localityLbSetting": {"distribute": [
        {"from": "us-west/*", "to": {"us-west/*": 50, "us-east/*": 40}}]}}),
         "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to", "total locality weight 90 != 100"),
    Case("dr-distribute-overlap", "DestinationRule", dr(loadBalancer={"localityLbSetting": {"distribute": [
        {"from": "us-west/*", "to": {"us-west/*": 100}}, {"from": "us-west/zone1", "to": {"us-east/*": 100}}]}}),
         "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute", "overlap with previous"),
    Case("dr-failover-same", "DestinationRule", dr(outlierDetection={"consecutive5xxErrors": 1}, loadBalancer={
        "localityLbSetting": {"failover": [{"from": "us-east", "to": "us-east"}]}}),
         "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]", "different regions"),
    Case("dr-failover-no-outlier", "DestinationRule", dr(loadBalancer={
        "localityLbSetting": {"failover": [{"from": "us-east", "to": "us-west"}]}}),
         "spec.trafficPolicy.loadBalancer.localityLbSetting", "outlier detection policy must be provided", warn=True),
    Case("dr-warmup-aggression", "DestinationRule", dr(loadBalancer={"simple": "ROUND_ROBIN", "warmup": {
        "duration": "10s", "aggression": 0.5}}),
         "spec.trafficPolicy.loadBalancer.warmup.aggression", "greater than or equal to 1"),
    Case("dr-mutual-no-cert", "DestinationRule", dr(tls={"mode": "MUTUAL", "privateKey": "/k.pem"}),
         "spec.trafficPolicy.tls.clientCertificate", "client certificate required"),
    Case("dr-credential-and-cert", "DestinationRule", dr(tls={"mode": "SIMPLE", "credentialName": "c",
                                                              "caCertificates": "/ca.pem"}),
         "spec.trafficPolicy.tls.caCertificates", "if credentialName is set"),
    Case("dr-insecure-with-ca", "DestinationRule", dr(tls={"mode": "SIMPLE", "insecureSkipVerify": True,
                                                           "caCertificates": "/ca.pem"}),
         "spec.trafficPolicy.tls", "insecureSkipVerify"),
    Case("dr-configmap-other-namespace", "DestinationRule", dr(tls={"mode": "SIMPLE",
                                                                    "credentialName": "configmap://other/ca"}),
         "spec.trafficPolicy.tls.credentialName", "namespace must match the configuration namespace"),
    Case("dr-istio-mutual-certs", "DestinationRule", dr(tls={"mode": "ISTIO_MUTUAL", "clientCertificate": "/c.pem"}),
         "spec.trafficPolicy.tls.clientCertificate", "ignored", warn=True),
    Case("dr-port-level-no-port", "DestinationRule", dr(portLevelSettings=[{"tls": {"mode": "DISABLE"}}]),
         "spec.trafficPolicy.portLevelSettings[0].port", "must have valid port"),
    Case("dr-port-level-empty", "DestinationRule", dr(portLevelSettings=[{"port": {"number": 80}}]),
         "spec.trafficPolicy.portLevelSettings[0]", "at least one field"),
    Case("dr-port-level-duplicate", "DestinationRule", dr(portLevelSettings=[
        {"port": {"number": 80}, "tls": {"mode": "DISABLE"}}, {"port": {"number": 80}, "tls": {"mode": "SIMPLE"}}]),
         "spec.trafficPolicy.portLevelSettings[1].port.number", "duplicate port 80"),
    Case("dr-port-level-nested", "DestinationRule", dr(portLevelSettings=[
        {"port": {"number": 80}, "outlierDetection": {"maxEjectionPercent": 200}}]),
         "spec.trafficPolicy.portLevelSettings[0].outlierDetection.maxEjectionPercent", "got 200"),
    Case("dr-tunnel-protocol", "DestinationRule", dr(tunnel={"protocol": "GET", "targetHost": "a.example.com",
                                                             "targetPort": 443}),
         "spec.trafficPolicy.tunnel.protocol", '"CONNECT" or "POST"'),
    Case("dr-tunnel-host", "DestinationRule", dr(tunnel={"targetHost": "bad_host", "targetPort": 443}),
         "spec.trafficPolicy.tunnel.targetHost", "valid FQDN or IP"),
    Case("dr-tunnel-and-proxy-protocol", "DestinationRule", dr(tunnel={"targetHost": "a.b", "targetPort": 1},
                                                              proxyProtocol={"version": "V1"}),
         "spec.trafficPolicy", "must not be set together"),
    Case("dr-selector-export", "DestinationRule", {"host": "r", "exportTo": ["*"], "workloadSelector": {
        "matchLabels": {"app": "r"}}}, "spec.exportTo", "cannot have exportTo beyond current namespace"),
    Case("dr-selector-no-labels", "DestinationRule", {"host": "r", "workloadSelector": {}}, "spec.workloadSelector",
         "without labels", warn=True),
    Case("dr-subset-policy", "DestinationRule", {"host": "r", "subsets": [{"name": "v1", "trafficPolicy": {
        "connectionPool": {"http": {"maxRetries": -1}}}}]},
         "spec.subsets[0].trafficPolicy.connectionPool.http.maxRetries", "non-negative"),
    # ---- Gateway
    Case("gw-no-servers", "Gateway", {"servers": []}, "spec.servers", "at least one server"),
    Case("gw-dotted-name", "Gateway", gw(server()), "metadata.name", "invalid gateway name", name="my.gw"),
    Case("gw-no-hosts", "Gateway", gw(server(hosts=())), "spec.servers[0].hosts", "at least one host"),
    Case("gw-short-host", "Gateway", gw(server(hosts=("ns/foo",))), "spec.servers[0].hosts[0]", "short names"),
    Case("gw-partial-wildcard", "Gateway", gw(server(hosts=("*foo.example.com",))), "spec.servers[0].hosts[0]",
         "partial wildcard"),
    Case("gw-bad-namespace", "Gateway", gw(server(hosts=("bad_ns/*",))), "spec.servers[0].hosts[0]",
         "invalid namespace value 'bad_ns' in gateway"),
    Case("gw-tilde-namespace", "Gateway", gw(server(hosts=("~/*.example.com",))), "spec.servers[0].hosts[0]",
         "invalid namespace value '~'"),
    Case("gw-bad-protocol", "Gateway", gw(server("FOO")), "spec.servers[0].port.protocol", "invalid protocol"),
    Case("gw-port-name", "Gateway", gw(server(name="")), "spec.servers[0].port.name", "port name must be set"),
    Case("gw-port-number", "Gateway", gw(server(number=70000)), "spec.servers[0].port.number", "between 1 and 65535"),
    Case("gw-target-port", "Gateway", gw({"port": {"number": 80, "protocol": "HTTP", "name": "h", "targetPort": 8080},
                                          "hosts": ["*"]}), "spec.servers[0].port.targetPort", "no impact on Gateways"),
    Case("gw-https-no-tls", "Gateway", gw(server("HTTPS", 443, "https")), "spec.servers[0].tls",
         "must have TLS settings"),
    Case("gw-tcp-with-tls", "Gateway", gw(server("TCP", 31400, "tcp", tls={"mode": "SIMPLE", "credentialName": "c"})),
         "spec.servers[0].tls", "non HTTPS/TLS ports"),
    Case("gw-http-with-simple-tls", "Gateway", gw(server(tls={"mode": "SIMPLE", "credentialName": "c"})),
         "spec.servers[0].tls", "plain text HTTP ports"),
    Case("gw-simple-no-cert", "Gateway", https(mode="SIMPLE", privateKey="/k.pem"),
         "spec.servers[0].tls.serverCertificate", "requires a server certificate"),
    Case("gw-mutual-no-ca", "Gateway", https(mode="MUTUAL", serverCertificate="/c.pem", privateKey="/k.pem"),
         "spec.servers[0].tls.caCertificates", "requires a client CA bundle"),
    Case("gw-istio-mutual-credential", "Gateway", https(mode="ISTIO_MUTUAL", credentialName="c"),
         "spec.servers[0].tls.credentialName", "ISTIO_MUTUAL TLS cannot have"),
    Case("gw-two-cert-sources", "Gateway", https(mode="SIMPLE", credentialName="c", serverCertificate="/c.pem",
                                                  privateKey="/k.pem"),
         "spec.servers[0].tls", "only one of credentialName"),
    Case("gw-crl-simple", "Gateway", https(mode="SIMPLE", serverCertificate="/c.pem", privateKey="/k.pem",
                                            caCrl="/crl.pem"), "spec.servers[0].tls.caCrl", "not supported with SIMPLE"),
    Case("gw-passthrough-certs", "Gateway", gw(server("TLS", 443, "tls", tls={"mode": "PASSTHROUGH",
                                                                              "credentialName": "c"})),
         "spec.servers[0].tls", "does not use certificates", warn=True),
    Case("gw-bad-cipher", "Gateway", https(mode="SIMPLE", credentialName="c", cipherSuites=["NOT-A-CIPHER"]),
         "spec.servers[0].tls.cipherSuites", "invalid cipher suites", warn=True),
    Case("gw-duplicate-port-names", "Gateway", gw(server(), server(number=8080, hosts=("a.example.com",))),
         "spec.servers[1].port.name", "port names in servers must be unique"),
    Case("gw-https-redirect-on-https", "Gateway", https(mode="SIMPLE", credentialName="c", httpsRedirect=True),
         "spec.servers[0].tls.httpsRedirect", "only be used with http servers", warn=True),
    Case("gw-bind-ip", "Gateway", gw(server(bind="not-an-ip")), "spec.servers[0].bind", "not a valid IP"),
    Case("gw-unix-bind-port", "Gateway", gw(server(bind="unix:///var/run/gw.sock")), "spec.servers[0].port.number",
         "must be 0 for unix domain socket"),
    Case("gw-selector-label", "Gateway", {"selector": {"bad key": "x"}, "servers": [server()]},
         "spec.selector[bad key]", "invalid label key"),
    # ---- ServiceEntry
    Case("se-bad-host", "ServiceEntry", se(hosts=["foo.*.com"]), "spec.hosts[0]", "invalid (label"),
    Case("se-partial-wildcard", "ServiceEntry", se(hosts=["*foo.example.com"], resolution="NONE"),
         "spec.hosts[0]", "partial wildcard", warn=True),
    Case("se-bad-address", "ServiceEntry", se(addresses=["300.1.1.1"]), "spec.addresses[0]",
         "not a valid IP address or CIDR"),
    Case("se-selector-wildcard-key", "ServiceEntry", se(resolution="STATIC", workloadSelector={"labels": {"app*": "vm"}}),
         "spec.workloadSelector.labels[app*]", "wildcard is not supported in selector"),
    Case("se-port-name", "ServiceEntry", se(ports=[{"number": 80, "name": "http_1", "protocol": "HTTP"}]),
         "spec.ports[0].name", "invalid port name"),
    Case("se-protocol", "ServiceEntry", se(ports=[{"number": 80, "name": "http", "protocol": "HTTP3"}]),
         "spec.ports[0].protocol", "unsupported protocol"),
    Case("se-static-hostname", "ServiceEntry", se(resolution="STATIC", endpoints=[{"address": "vm.example.com"}]),
         "spec.endpoints[0].address", "not a valid IP address"),
    Case("se-static-undeclared-port", "ServiceEntry", se(resolution="STATIC", endpoints=[
        {"address": "10.0.0.1", "ports": {"grpc": 9000}}]), "spec.endpoints[0].ports[grpc]",
         "not defined by the service entry"),
    Case("se-static-unix-two-ports", "ServiceEntry", se(resolution="STATIC", ports=[
        {"number": 80, "name": "http", "protocol": "HTTP"}, {"number": 81, "name": "http2", "protocol": "HTTP"}],
        endpoints=[{"address": "unix:///var/run/a.sock"}]), "spec.endpoints[0]", "exactly 1 service port"),
    Case("se-dns-wildcard-no-endpoints", "ServiceEntry", se(hosts=["*.example.com"]), "spec.hosts[0]",
         "hosts must be FQDN if no endpoints"),
    Case("se-dns-bad-endpoint", "ServiceEntry", se(endpoints=[{"address": "bad_host"}]), "spec.endpoints[0].address",
         "not a valid FQDN or an IP address"),
    Case("se-dns-endpoint-labels", "ServiceEntry", se(endpoints=[{"address": "lb.example.com", "labels": {"a": "b c"}}]),
         "spec.endpoints[0].labels[a]", "invalid label value"),
    Case("se-multi-host-tcp", "ServiceEntry", se(hosts=["a.example.com", "b.example.com"],
                                                  ports=[{"number": 3306, "name": "tcp", "protocol": "TCP"}]),
         "spec.ports[0].protocol", "multiple hosts provided with non-HTTP, non-TLS ports"),
    Case("se-none-selector", "ServiceEntry", se(resolution="NONE", workloadSelector={"labels": {"app": "vm"}}),
         "spec.workloadSelector", "should not be set when resolution mode is NONE", warn=True),
    Case("se-export-none-and-some", "ServiceEntry", se(exportTo=["~", "."]), "spec.exportTo",
         "no one (~) and someone"),
    # ---- Sidecar
    Case("sidecar-empty", "Sidecar", {"workloadSelector": {"labels": {"app": "r"}}}, "spec",
         "empty configuration provided"),
    Case("sidecar-host-no-namespace", "Sidecar", egress("reviews.default.svc.cluster.local"), "spec.egress[0].hosts[0]",
         "namespace/dnsName"),
    Case("sidecar-short-host", "Sidecar", egress("./reviews"), "spec.egress[0].hosts[0]", "short names"),
    Case("sidecar-bad-namespace", "Sidecar", egress("bad_ns/*"), "spec.egress[0].hosts[0]",
         "invalid namespace value 'bad_ns' in sidecar"),
    Case("sidecar-no-hosts", "Sidecar", egress(), "spec.egress[0].hosts", "at least one host"),
    Case("sidecar-two-catch-all", "Sidecar", {"egress": [{"hosts": ["./*"]}, {"hosts": ["istio-system/*"]}]},
         "spec.egress[0]", "empty port should be the last listener"),
    Case("sidecar-duplicate-egress-port", "Sidecar", {"egress": [
        {"port": {"number": 80, "protocol": "HTTP", "name": "a"}, "hosts": ["./*"]},
        {"port": {"number": 80, "protocol": "HTTP", "name": "b"}, "hosts": ["./*"]}]},
         "spec.egress[1].port.number", "must be unique"),
    Case("sidecar-port-zero-no-uds", "Sidecar", {"egress": [{"port": {"number": 0, "protocol": "HTTP", "name": "a"},
                                                              "hosts": ["./*"]}]},
         "spec.egress[0].bind", "unix domain socket bind address"),
    Case("sidecar-uds-capture", "Sidecar", {"egress": [{"port": {"number": 0, "protocol": "HTTP", "name": "a"},
                                                         "bind": "unix:///a.sock", "captureMode": "IPTABLES",
                                                         "hosts": ["./*"]}]},
         "spec.egress[0].captureMode", "DEFAULT/NONE"),
    Case("sidecar-duplicate-host", "Sidecar", egress("./*", "./reviews.default.svc.cluster.local"),
         "spec.egress[0].hosts[1]", "duplicated egress host", warn=True),
    Case("sidecar-star-star-and-more", "Sidecar", egress("*/*", "istio-system/*"), "spec.egress[0].hosts",
         "`*/*` host selects all resources", warn=True),
    Case("sidecar-default-endpoint-host", "Sidecar", ingress(defaultEndpoint="10.0.0.1:8080"),
         "spec.ingress[0].defaultEndpoint", "defaultEndpoint must be of form"),
    Case("sidecar-default-endpoint-port", "Sidecar", ingress(defaultEndpoint="127.0.0.1:http"),
         "spec.ingress[0].defaultEndpoint", "is not a number"),
    Case("sidecar-duplicate-ingress-port", "Sidecar", {"ingress": [
        {"port": {"number": 9080, "protocol": "HTTP", "name": "a"}},
        {"port": {"number": 9080, "protocol": "HTTP", "name": "b"}}]},
         "spec.ingress[1].port.number", "must be unique"),
    Case("sidecar-ingress-target-port", "Sidecar", ingress(port={"number": 9080, "protocol": "HTTP", "name": "h",
                                                                 "targetPort": 8080}),
         "spec.ingress[0].port.targetPort", "no impact on Sidecars"),
    Case("sidecar-ingress-bind", "Sidecar", ingress(bind="localhost"), "spec.ingress[0].bind", "not a valid IP"),
    Case("sidecar-ingress-tls-http", "Sidecar", ingress(tls={"mode": "SIMPLE", "serverCertificate": "/c.pem",
                                                             "privateKey": "/k.pem"}),
         "spec.ingress[0].tls", "non HTTPS/TLS ports"),
    Case("sidecar-ingress-tls-istio-mutual", "Sidecar", ingress(
        port={"number": 9443, "protocol": "HTTPS", "name": "https"}, tls={"mode": "ISTIO_MUTUAL"}),
         "spec.ingress[0].tls.mode", "cannot set mode to ISTIO_MUTUAL"),
    Case("sidecar-ingress-tls-credential", "Sidecar", ingress(
        port={"number": 9443, "protocol": "HTTPS", "name": "https"}, tls={"mode": "SIMPLE", "credentialName": "c"}),
         "spec.ingress[0].tls.credentialName", "not supported in sidecar ingress tls"),
    Case("sidecar-ingress-http-pool-on-tcp", "Sidecar", ingress(
        port={"number": 9000, "protocol": "TCP", "name": "tcp"}, connectionPool={"http": {"maxRetries": 1}}),
         "spec.ingress[0].connectionPool.http", "only TCP settings will apply", warn=True),
    Case("sidecar-egress-proxy-mode", "Sidecar", {"outboundTrafficPolicy": {"mode": "REGISTRY_ONLY", "egressProxy": {
        "host": "egress.example.com", "port": {"number": 80}}}}, "spec.outboundTrafficPolicy.egressProxy",
         "only with ALLOW_ANY"),
    Case("sidecar-egress-proxy-port", "Sidecar", {"outboundTrafficPolicy": {"mode": "ALLOW_ANY", "egressProxy": {
        "host": "egress.example.com"}}}, "spec.outboundTrafficPolicy.egressProxy.port", "port must be set"),
    Case("sidecar-selector-no-labels", "Sidecar", {"workloadSelector": {}, **egress("./*")}, "spec.workloadSelector",
         "without labels", warn=True),
    # ---- WorkloadEntry
    Case("we-bad-address", "WorkloadEntry", {"address": "bad_host!"}, "spec.address",
         "not a valid FQDN or an IP address"),
    Case("we-network-only", "WorkloadEntry", {"network": "vm-net"}, "spec.address", "address is unset with network",
         warn=True),
    Case("we-labels", "WorkloadEntry", {"address": "10.0.0.1", "labels": {"app": "a b"}}, "spec.labels[app]",
         "invalid label value"),
    Case("we-service-account", "WorkloadEntry", {"address": "10.0.0.1", "serviceAccount": "Bad_SA"},
         "spec.serviceAccount", "invalid service account name"),
    # ---- WorkloadGroup
    Case("wg-metadata-labels", "WorkloadGroup", wg(metadata={"labels": {"app": "-bad"}}), "spec.metadata.labels[app]",
         "invalid label value"),
    Case("wg-metadata-annotation", "WorkloadGroup", wg(metadata={"annotations": {"bad key": "v"}}),
         "spec.metadata.annotations[bad key]", "invalid annotation key"),
    Case("wg-probe-no-method", "WorkloadGroup", wg(probe={"periodSeconds": 5}), "spec.probe",
         "one health check method"),
    Case("wg-probe-header", "WorkloadGroup", wg(probe={"httpGet": {"port": 8080, "httpHeaders": [{"name": "x_probe"}]}}),
         "spec.probe.httpGet.httpHeaders[0].name", "not a valid header name"),
    Case("wg-probe-exec-empty", "WorkloadGroup", wg(probe={"exec": {"command": []}}), "spec.probe.exec.command",
         "exec.command is required"),
    Case("wg-template-address", "WorkloadGroup", {"template": {"address": "10.0.0.1"}}, "spec.template.address",
         "replaced by each registering workload", warn=True),
    Case("wg-template-service-account", "WorkloadGroup", {"template": {"serviceAccount": "Bad_SA"}},
         "spec.template.serviceAccount", "invalid service account name"),
]


def _document(case: Case) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": case.name, "namespace": "default"}
    if case.annotations:
        metadata["annotations"] = case.annotations
    return {"apiVersion": API, "kind": case.kind, "metadata": metadata, "spec": case.spec}


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.id)
def test_valid(case: Case) -> None:
    outcome = validate_document(_document(case))
    assert outcome.errors == ()


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.id)
def test_invalid(case: Case) -> None:
    outcome = validate_document(_document(case))
    findings = outcome.warnings if case.warn else outcome.errors
    if case.warn:
        assert outcome.errors == (), "a warning case must be an otherwise valid document"
    needle = f": {case.path}: "
    hits = [m for m in findings if needle in m and case.phrase in m]
    assert hits, f"no finding at {case.path!r} containing {case.phrase!r}; got {findings or outcome.errors}"


def test_rendered_message_names_kind_object_and_path() -> None:
    doc = _document(Case("x", "DestinationRule", dr(outlierDetection={"maxEjectionPercent": 120})))
    assert validate_document(doc).errors == (
        "DestinationRule default/r: spec.trafficPolicy.outlierDetection.maxEjectionPercent: "
        "must be between 0 and 100 (got 120)",
    )


def test_every_error_is_reported_in_one_pass() -> None:
    spec = vs(http=[{"route": [{"destination": {"host": "*"}, "weight": -1}], "timeout": "1.0001s"}])
    errors = validate_document(_document(Case("x", "VirtualService", spec))).errors
    assert len(errors) == 3


def test_gateway_semantics_annotation_allows_dotted_name() -> None:
    case = Case("x", "Gateway", gw(server()), name="a.b", annotations={"internal.istio.io/gateway-semantics": "gateway"})
    assert validate_document(_document(case)).errors == ()


# ---------------------------------------------------------------- the reference corpus

def _corpus_docs(*parts: str) -> list[Any]:
    root = corpus_path(*parts)
    files = [p for p in sorted(root.iterdir()) if p.suffix in (".yaml", ".yml")]
    return [d for p in files for d in read_paths([str(p)])]


def test_bookinfo_networking_samples_are_valid() -> None:
    docs = _corpus_docs("istio-samples", "bookinfo", "networking")
    assert docs
    errors = [e for d in docs for e in validate_document(d.body, source=d.source).errors]
    assert errors == []


def test_istio_valid_networking_corpus_is_valid() -> None:
    root = corpus_path("istio-validation-valid")
    docs = [d for p in sorted(root.glob("networking-*.yaml")) for d in read_paths([str(p)])]
    assert len(docs) >= 21
    errors = [e for d in docs for e in validate_document(d.body, source=d.source).errors]
    assert errors == []


# ---------------------------------------------------------------- common helpers

@pytest.mark.parametrize("text, seconds", [
    ("1.5s", 1.5), ("300ms", 0.3), ("1h30m", 5400.0), ("0", 0.0), ("-2s", -2.0), ("10us", 1e-5),
    ("5", None), ("", None), ("1x", None), ("s", None), (None, None),
])
def test_parse_duration(text: Any, seconds: float | None) -> None:
    assert common.parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize("host, ok", [
    ("*", True), ("*.example.com", True), ("*-foo.example.com", True), ("reviews", True), ("istio.io.", True),
    ("foo.*.com", False), ("a..b", False), ("foo.123", False), ("", False), ("a" * 64 + ".com", False),
])
def test_wildcard_domain(host: str, ok: bool) -> None:
    assert (common.wildcard_domain_error(host) is None) is ok


@pytest.mark.parametrize("a, b, matches, subset", [
    ("*.example.com", "a.example.com", True, False), ("a.example.com", "*.example.com", True, True),
    ("*.a.example.com", "*.example.com", True, True), ("a.com", "b.com", False, False), ("*", "x.y", True, False),
])
def test_host_relations(a: str, b: str, matches: bool, subset: bool) -> None:
    assert common.host_matches(a, b) is matches
    assert common.host_subset_of(a, b) is subset


def test_helpers_record_instead_of_raising() -> None:
    f = Findings()
    common.check_port("80", "p", f)
    common.check_percentage(120, "q", f)
    common.check_regex("(?P<x", "r", f)
    common.check_ip_or_cidr("10.0.0.0/40", "s", f)
    common.check_namespaced_host("foo", "t", f)
    assert [e.path for e in f.errors] == ["p", "q", "r", "s", "t"]
    assert f.errors[1].message == "must be between 0 and 100 (got 120)"
