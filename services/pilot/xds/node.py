"""Envoy `Node` → `Proxy`, and the identity check for mTLS connections. Pure.

node.id is Istio's `TYPE~IP~NAME.NS~NS.svc.cluster.local` (TYPE: sidecar | router);
node.metadata carries Istio's keys (NAMESPACE, SERVICE_ACCOUNT, LABELS, WORKLOAD_NAME,
ISTIO_VERSION, INTERCEPTION_MODE, CLUSTER_ID, INSTANCE_IPS) plus ours (WORKLOAD_GROUP,
PORTS, OUTBOUND_PORT, INBOUND_PORT; gateways: GATEWAY_PORT_MAP `"80=8080,443=8443"`,
GATEWAY_BIND). `NodeInvalid` names the field and the fix;
`IdentityMismatch` names the proven identity and the claimed one.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import replace
from typing import Any, Mapping

from envoy.config.core.v3 import base_pb2
from google.protobuf import json_format

from isthmus.pilot.model.proxy import CaptureMode, Proxy, ProxyType, WorkloadPort

EXAMPLE_ID = "sidecar~10.0.0.1~reviews-v1-abc.default~default.svc.cluster.local"
_SPIFFE = re.compile(r"^spiffe://([^/]+)/ns/([^/]+)/sa/([^/]+)$")
_INTERCEPTION = {
    "REDIRECT": CaptureMode.IPTABLES,
    "IPTABLES": CaptureMode.IPTABLES,
    "NONE": CaptureMode.EXPLICIT,
    "EXPLICIT": CaptureMode.EXPLICIT,
}


class NodeInvalid(ValueError):
    """The node cannot be understood (gRPC INVALID_ARGUMENT)."""


class IdentityMismatch(PermissionError):
    """The node claims another identity than its certificate proves (PERMISSION_DENIED)."""


def _str(md: Mapping[str, Any], key: str, default: str = "") -> str:
    value = md.get(key, default)
    if value is None:
        return default
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise NodeInvalid(f"node.metadata.{key}: must be a string (got {type(value).__name__})")
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _port(value: Any, where: str, default: int = 0) -> int:
    if value in (None, ""):
        return default
    try:
        port = int(float(value)) if not isinstance(value, bool) else -1
    except (TypeError, ValueError):
        port = -1
    if not 0 <= port <= 65535:
        raise NodeInvalid(f"{where}: must be a port number 0-65535 (got {value!r})")
    return port


def _labels(md: Mapping[str, Any]) -> dict[str, str]:
    labels = md.get("LABELS") or {}
    if not isinstance(labels, Mapping):
        raise NodeInvalid("node.metadata.LABELS: must be a map of strings")
    return {str(k): str(v) for k, v in labels.items()}


def _ports(md: Mapping[str, Any]) -> tuple[WorkloadPort, ...]:
    raw = md.get("PORTS") or []
    if not isinstance(raw, list):
        raise NodeInvalid("node.metadata.PORTS: must be a list of {port, name, protocol, proxyPort}")
    out = []
    for i, p in enumerate(raw):
        where = f"node.metadata.PORTS[{i}]"
        if not isinstance(p, Mapping) or "port" not in p:
            raise NodeInvalid(f"{where}: must be an object with at least `port`")
        out.append(WorkloadPort(
            port=_port(p["port"], f"{where}.port"),
            name=str(p.get("name", "")),
            protocol=str(p.get("protocol", "")),
            proxy_port=_port(p.get("proxyPort"), f"{where}.proxyPort"),
        ))
    return tuple(out)


def _port_map(md: Mapping[str, Any]) -> dict[int, int]:
    """GATEWAY_PORT_MAP: `"80=8080,443=8443"` (or a map) → {80: 8080, 443: 8443}."""
    raw = md.get("GATEWAY_PORT_MAP") or {}
    if isinstance(raw, str):
        pairs = [item.partition("=") for item in raw.split(",") if item.strip()]
        if any(not sep for _, sep, _ in pairs):
            raise NodeInvalid(f"node.metadata.GATEWAY_PORT_MAP {raw!r}: must be SERVER_PORT=LISTEN_PORT[,...]")
        raw = {k.strip(): v.strip() for k, _, v in pairs}
    if not isinstance(raw, Mapping):
        raise NodeInvalid("node.metadata.GATEWAY_PORT_MAP: must be SERVER_PORT=LISTEN_PORT[,...] or a map")
    where = "node.metadata.GATEWAY_PORT_MAP"
    return {_port(k, f"{where}[{k}]"): _port(v, f"{where}[{k}]") for k, v in raw.items()}


def _split_id(node_id: str) -> tuple[ProxyType, str, str, str]:
    parts = node_id.split("~")
    if len(parts) != 4 or not all(parts):
        raise NodeInvalid(f"node.id {node_id!r}: must be TYPE~IP~NAME.NAMESPACE~NAMESPACE.svc.cluster.local "
                          f"(e.g. {EXAMPLE_ID})")
    kind, ip, name, domain = parts
    try:
        proxy_type = ProxyType(kind)
    except ValueError:
        raise NodeInvalid(f"node.id {node_id!r}: type {kind!r} must be sidecar or router") from None
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise NodeInvalid(f"node.id {node_id!r}: {ip!r} is not an IP address") from None
    return proxy_type, ip, name, domain


def metadata_dict(node: base_pb2.Node) -> dict[str, Any]:
    return json_format.MessageToDict(node.metadata) if node.HasField("metadata") else {}


def proxy_from_node(node: base_pb2.Node) -> Proxy:
    """Parse the node a proxy sent on its first request (no identity bound yet)."""
    if not node.id:
        raise NodeInvalid("node.id is empty: the first request on a stream must carry the node "
                          f"(e.g. id {EXAMPLE_ID})")
    proxy_type, ip, name, domain = _split_id(node.id)
    md = metadata_dict(node)
    id_namespace = domain.split(".", 1)[0]
    namespace = _str(md, "NAMESPACE") or id_namespace
    if namespace != id_namespace:
        raise NodeInvalid(f"node.metadata.NAMESPACE {namespace!r} disagrees with node.id {node.id!r} "
                          f"(namespace {id_namespace!r})")
    mode_raw = _str(md, "INTERCEPTION_MODE", "NONE").upper()
    if mode_raw not in _INTERCEPTION:
        raise NodeInvalid(f"node.metadata.INTERCEPTION_MODE {mode_raw!r}: must be REDIRECT (iptables) "
                          "or NONE (explicit)")
    ips = [ip] + [a.strip() for a in _str(md, "INSTANCE_IPS").split(",") if a.strip() and a.strip() != ip]
    return Proxy(
        id=node.id,
        type=proxy_type,
        ip_addresses=tuple(ips),
        namespace=namespace,
        service_account=_str(md, "SERVICE_ACCOUNT"),
        labels=_labels(md),
        workload_name=_str(md, "WORKLOAD_NAME") or name.rsplit(".", 1)[0],
        workload_group=_str(md, "WORKLOAD_GROUP"),
        capture_mode=_INTERCEPTION[mode_raw],
        ports=_ports(md),
        outbound_port=_port(md.get("OUTBOUND_PORT"), "node.metadata.OUTBOUND_PORT", 15001),
        inbound_port=_port(md.get("INBOUND_PORT"), "node.metadata.INBOUND_PORT", 15006),
        cluster=_str(md, "CLUSTER_ID") or node.cluster or "Kubernetes",
        version=_str(md, "ISTIO_VERSION"),
        metadata=md,
        gateway_port_map=_port_map(md),
        gateway_bind=_gateway_bind(md),
    )


def _gateway_bind(md: Mapping[str, Any]) -> str:
    bind = _str(md, "GATEWAY_BIND", "0.0.0.0") or "0.0.0.0"
    try:
        ipaddress.ip_address(bind)
    except ValueError:
        raise NodeInvalid(f"node.metadata.GATEWAY_BIND {bind!r}: must be an IP address (e.g. 0.0.0.0)") from None
    return bind


def bind_identity(proxy: Proxy, spiffe_uri: str | None, trust_domain: str) -> Proxy:
    """Bind the proven SPIFFE identity (None on plaintext) to the proxy, or refuse it.

    With a certificate, the node may only claim the namespace and service account the
    certificate names (an unclaimed service account is taken from it)."""
    if spiffe_uri is None:
        return replace(proxy, service_account=proxy.service_account or "default")
    m = _SPIFFE.match(spiffe_uri)
    if m is None:
        raise IdentityMismatch(f"client certificate identity {spiffe_uri!r} is not a SPIFFE workload id "
                               "(spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)")
    td, ns, sa = m.groups()
    claimed_sa = proxy.service_account or sa
    claimed = f"spiffe://{trust_domain}/ns/{proxy.namespace}/sa/{claimed_sa}"
    if td != trust_domain or ns != proxy.namespace or sa != claimed_sa:
        raise IdentityMismatch(f"proxy {proxy.id} proved identity {spiffe_uri} but its node claims {claimed}: "
                               "a proxy only receives the configuration of the identity its certificate names")
    return replace(proxy, service_account=sa, identity=spiffe_uri)
