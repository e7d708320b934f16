"""Generate the typed spec classes (shared/config/types.py) from crds.json.

    python tools/gen_types.py > shared/config/types.py

One frozen dataclass per distinct object schema; structurally identical objects
share a class (StringMatch, Destination, TrafficPolicy, ...). Names follow Istio's
proto message names where the table below knows them, else the field path.
"""
from __future__ import annotations

import json
import keyword
import re
import sys
from pathlib import Path

SCHEMA = Path(__file__).resolve().parent.parent / "shared/config/schema/crds.json"

# Field path (Kind.a.b[] ...) → Istio's message name. Paths use `[]` for list items
# and `{}` for map values.
NAMES = {
    "VirtualService": "VirtualServiceSpec",
    "VirtualService.http[]": "HTTPRoute",
    "VirtualService.http[].match[]": "HTTPMatchRequest",
    "VirtualService.http[].match[].uri": "StringMatch",
    "VirtualService.http[].route[]": "HTTPRouteDestination",
    "VirtualService.http[].route[].destination": "Destination",
    "VirtualService.http[].route[].destination.port": "PortSelector",
    "VirtualService.http[].route[].headers": "Headers",
    "VirtualService.http[].route[].headers.request": "HeaderOperations",
    "VirtualService.http[].redirect": "HTTPRedirect",
    "VirtualService.http[].directResponse": "HTTPDirectResponse",
    "VirtualService.http[].directResponse.body": "HTTPBody",
    "VirtualService.http[].delegate": "Delegate",
    "VirtualService.http[].rewrite": "HTTPRewrite",
    "VirtualService.http[].rewrite.uriRegexRewrite": "RegexRewrite",
    "VirtualService.http[].retries": "HTTPRetry",
    "VirtualService.http[].retries.backoff": "RetryBackoff",
    "VirtualService.http[].fault": "HTTPFaultInjection",
    "VirtualService.http[].fault.delay": "HTTPFaultInjectionDelay",
    "VirtualService.http[].fault.delay.percentage": "Percent",
    "VirtualService.http[].fault.abort": "HTTPFaultInjectionAbort",
    "VirtualService.http[].mirror": "MirrorDestination",
    "VirtualService.http[].mirrors[]": "HTTPMirrorPolicy",
    "VirtualService.http[].corsPolicy": "CorsPolicy",
    "VirtualService.http[].headers": "Headers",
    "VirtualService.tls[]": "TLSRoute",
    "VirtualService.tls[].match[]": "TLSMatchAttributes",
    "VirtualService.tls[].route[]": "RouteDestination",
    "VirtualService.tcp[]": "TCPRoute",
    "VirtualService.tcp[].match[]": "L4MatchAttributes",
    "DestinationRule": "DestinationRuleSpec",
    "DestinationRule.trafficPolicy": "TrafficPolicy",
    "DestinationRule.trafficPolicy.loadBalancer": "LoadBalancerSettings",
    "DestinationRule.trafficPolicy.loadBalancer.consistentHash": "ConsistentHashLB",
    "DestinationRule.trafficPolicy.loadBalancer.consistentHash.httpCookie": "HTTPCookie",
    "DestinationRule.trafficPolicy.loadBalancer.consistentHash.ringHash": "RingHash",
    "DestinationRule.trafficPolicy.loadBalancer.consistentHash.maglev": "MagLev",
    "DestinationRule.trafficPolicy.loadBalancer.localityLbSetting": "LocalityLoadBalancerSetting",
    "DestinationRule.trafficPolicy.connectionPool": "ConnectionPoolSettings",
    "DestinationRule.trafficPolicy.connectionPool.tcp": "TCPSettings",
    "DestinationRule.trafficPolicy.connectionPool.tcp.tcpKeepalive": "TcpKeepalive",
    "DestinationRule.trafficPolicy.connectionPool.http": "HTTPSettings",
    "DestinationRule.trafficPolicy.outlierDetection": "OutlierDetection",
    "DestinationRule.trafficPolicy.tls": "ClientTLSSettings",
    "DestinationRule.trafficPolicy.portLevelSettings[]": "PortTrafficPolicy",
    "DestinationRule.trafficPolicy.tunnel": "TunnelSettings",
    "DestinationRule.trafficPolicy.proxyProtocol": "ProxyProtocol",
    "DestinationRule.subsets[]": "Subset",
    "DestinationRule.subsets[].trafficPolicy": "SubsetTrafficPolicy",
    "DestinationRule.workloadSelector": "WorkloadSelector",
    "Gateway": "GatewaySpec",
    "Gateway.servers[]": "Server",
    "Gateway.servers[].port": "Port",
    "Gateway.servers[].tls": "ServerTLSSettings",
    "ServiceEntry": "ServiceEntrySpec",
    "ServiceEntry.ports[]": "ServicePort",
    "ServiceEntry.endpoints[]": "WorkloadEntrySpec",
    "ServiceEntry.workloadSelector": "WorkloadSelector",
    "Sidecar": "SidecarSpec",
    "Sidecar.ingress[]": "IstioIngressListener",
    "Sidecar.ingress[].port": "SidecarPort",
    "Sidecar.egress[]": "IstioEgressListener",
    "Sidecar.outboundTrafficPolicy": "OutboundTrafficPolicy",
    "Sidecar.inboundConnectionPool": "ConnectionPoolSettings",
    "WorkloadEntry": "WorkloadEntrySpec",
    "WorkloadGroup": "WorkloadGroupSpec",
    "WorkloadGroup.metadata": "ObjectMeta",
    "WorkloadGroup.template": "WorkloadEntrySpec",
    "WorkloadGroup.probe": "ReadinessProbe",
    "PeerAuthentication": "PeerAuthenticationSpec",
    "PeerAuthentication.selector": "WorkloadSelector",
    "PeerAuthentication.mtls": "MutualTLS",
    "PeerAuthentication.portLevelMtls{}": "MutualTLS",
    "AuthorizationPolicy": "AuthorizationPolicySpec",
    "AuthorizationPolicy.selector": "WorkloadSelector",
    "AuthorizationPolicy.targetRef": "PolicyTargetReference",
    "AuthorizationPolicy.rules[]": "Rule",
    "AuthorizationPolicy.rules[].from[]": "RuleFrom",
    "AuthorizationPolicy.rules[].from[].source": "Source",
    "AuthorizationPolicy.rules[].to[]": "RuleTo",
    "AuthorizationPolicy.rules[].to[].operation": "Operation",
    "AuthorizationPolicy.rules[].when[]": "Condition",
    "AuthorizationPolicy.provider": "ExtensionProvider",
    "RequestAuthentication": "RequestAuthenticationSpec",
    "RequestAuthentication.selector": "WorkloadSelector",
    "RequestAuthentication.jwtRules[]": "JWTRule",
    "RequestAuthentication.jwtRules[].fromHeaders[]": "JWTHeader",
    "RequestAuthentication.jwtRules[].outputClaimToHeaders[]": "ClaimToHeader",
    "Telemetry": "TelemetrySpec",
    "Telemetry.selector": "WorkloadSelector",
    "Telemetry.tracing[]": "Tracing",
    "Telemetry.metrics[]": "Metrics",
    "Telemetry.accessLogging[]": "AccessLogging",
    "Telemetry.tracing[].providers[]": "ProviderRef",
}


def attr_name(json_name: str) -> str:
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", json_name)
    name = re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", name).lower()
    name = re.sub(r"[^a-z0-9_]", "_", name)
    return name + "_" if keyword.iskeyword(name) else name


def camel(path_part: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]", path_part) if p)


def shape_key(node: dict) -> str:
    return json.dumps({"p": node.get("properties"), "r": node.get("required")}, sort_keys=True)


def resolve(schema: dict, path: str) -> dict | None:
    kind, *parts = path.split(".")
    node = schema[kind]["spec"]
    for part in parts:
        name = part.rstrip("[]{}")
        node = node.get("properties", {}).get(name)
        if node is None:
            return None
        for suffix in re.findall(r"\[\]|\{\}", part):
            node = node.get("items" if suffix == "[]" else "additionalProperties")
            if not isinstance(node, dict):
                return None
    return node


class Gen:
    def __init__(self, schema: dict) -> None:
        self.by_shape: dict[str, str] = {}  # schema json → class name
        self.preferred: dict[str, str] = {}  # schema json → Istio's name (table order wins)
        for path, name in NAMES.items():
            node = resolve(schema, path)
            if node is not None:
                self.preferred.setdefault(shape_key(node), name)
        self.classes: list[str] = []  # source, dependency order
        self.taken: set[str] = set()

    def shape(self, node: dict, path: str) -> tuple[str, str | None]:
        """(shape code, element class or None) for one property schema."""
        t = node.get("type")
        if t == "object" and "properties" in node:
            return "o", self.klass(node, path)
        if t == "object" and isinstance(node.get("additionalProperties"), dict):
            value = node["additionalProperties"]
            sub = self.shape(value, path + "{}")
            return "m", sub[1] if sub[0] == "o" else None
        if t == "array":
            sub = self.shape(node.get("items", {}), path + "[]")
            return "l", sub[1] if sub[0] == "o" else None
        if t in ("string", "integer", "boolean", "number"):
            return "s", None
        return "a", None

    def klass(self, node: dict, path: str) -> str:
        key = shape_key(node)
        if key in self.by_shape:
            return self.by_shape[key]
        name = self.preferred.get(key) or "".join(camel(p) for p in path.replace("[]", "").replace("{}", "Value").split("."))
        base, n = name, 2
        while name in self.taken:
            name, n = f"{base}{n}", n + 1
        self.taken.add(name)
        self.by_shape[key] = name
        fields = []
        used: set[str] = set()
        for json_name in sorted(node["properties"]):
            sub = node["properties"][json_name]
            code, elem = self.shape(sub, f"{path}.{json_name}")
            attr = attr_name(json_name)
            if attr in used:
                attr += "_alias"
            used.add(attr)
            fields.append((json_name, attr, code, elem, sub))
        lines = ["", "", "@dataclass(frozen=True, slots=True)", f"class {name}(Spec):"]
        for json_name, attr, code, elem, sub in fields:
            lines.append(f"    {attr}: {self.annotation(code, elem, sub)} = {self.default(code)}")
        if not fields:
            lines.append("    pass")
        table = ", ".join(f"({j!r}, {a!r}, {c!r}, {e or 'None'})" for j, a, c, e, _ in fields)
        lines.append("")
        lines.append(f"{name}._FIELDS = ({table}{',' if len(fields) == 1 else ''})")
        self.classes.append("\n".join(lines))
        return name

    @staticmethod
    def scalar(sub: dict) -> str:
        if sub.get("x-kubernetes-int-or-string"):
            return "int | str"
        return {"string": "str", "integer": "int", "boolean": "bool", "number": "float"}.get(sub.get("type", ""), "Any")

    def annotation(self, code: str, elem: str | None, sub: dict) -> str:
        if code == "o":
            return f'"{elem} | None"'
        if code == "l":
            inner = elem or self.scalar(sub.get("items", {}))
            return f'"tuple[{inner}, ...]"'
        if code == "m":
            inner = elem or self.scalar(sub.get("additionalProperties", {}))
            return f'"Mapping[str, {inner}]"'
        if code == "a":
            return "Any"
        return f"{self.scalar(sub)} | None"

    @staticmethod
    def default(code: str) -> str:
        return {"l": "()", "m": "field(default_factory=empty_map)"}.get(code, "None")


def main() -> None:
    schema = json.loads(SCHEMA.read_text())
    gen = Gen(schema)
    roots = {kind: gen.klass(info["spec"], kind) for kind, info in schema.items()}
    out = [
        '"""Typed spec classes for every kind we serve. GENERATED by tools/gen_types.py',
        "from shared/config/schema/crds.json (Istio's CRD schemas); do not edit.",
        "",
        "Attributes are the snake_case of the JSON field names; unset fields are None,",
        'unset lists are (), unset maps are empty."""',
        "# fmt: off",
        "from __future__ import annotations",
        "",
        "from dataclasses import dataclass, field",
        "from typing import Any, Mapping",
        "",
        "from isthmus.shared.config.spec import Spec, empty_map",
    ]
    out.extend(gen.classes)
    out.append("")
    out.append("")
    out.append("SPEC_CLASSES: dict[str, type[Spec]] = {")
    for kind, cls in sorted(roots.items()):
        out.append(f"    {kind!r}: {cls},")
    out.append("}")
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
