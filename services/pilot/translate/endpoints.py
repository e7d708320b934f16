"""EDS: registry endpoints → Envoy ClusterLoadAssignments, one per requested cluster name.

`build_endpoints(proxy, push, names)` answers every name (unknown or non-EDS names get
an empty assignment, so a client never stalls); `load_assignment(...)` is shared with
CDS for the inline endpoints of DNS and inbound clusters. Endpoints carry Istio's
metadata: `envoy.transport_socket_match: {tlsMode: istio}` (what auto-mTLS matches on)
and `istio: {workload: "name;namespace;canonical-name;canonical-revision;cluster"}`.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from envoy.config.core.v3 import address_pb2, base_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from google.protobuf import struct_pb2

from isthmus.pilot.model.proxy import Proxy
from isthmus.pilot.model.push_context import PushContext
from isthmus.pilot.model.service import Endpoint
from isthmus.pilot.translate.naming import ClusterName

TRANSPORT_SOCKET_MATCH_KEY = "envoy.transport_socket_match"
TLS_MODE_KEY = "tlsMode"
ISTIO_TLS_MODE = "istio"
DEFAULT_CLUSTER_ID = "Kubernetes"

ClusterLoadAssignment = endpoint_pb2.ClusterLoadAssignment


def socket_address(address: str, port: int) -> address_pb2.Address:
    """`unix:///path` → a pipe address; anything else (IP or DNS name) → a TCP socket address."""
    if address.startswith("unix://"):
        return address_pb2.Address(pipe=address_pb2.Pipe(path=address[len("unix://"):]))
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=address, port_value=port))


def parse_locality(locality: str) -> base_pb2.Locality:
    """Istio's `region/zone/subzone` label → Envoy Locality."""
    parts = (locality.split("/") + ["", "", ""])[:3] if locality else ["", "", ""]
    return base_pb2.Locality(region=parts[0], zone=parts[1], sub_zone=parts[2])


def _canonical(ep: Endpoint) -> tuple[str, str]:
    labels = ep.labels
    name = (labels.get("service.istio.io/canonical-name") or labels.get("app.kubernetes.io/name")
            or labels.get("app") or ep.workload_name)
    revision = (labels.get("service.istio.io/canonical-revision") or labels.get("app.kubernetes.io/version")
                or labels.get("version") or "latest")
    return name, revision


def endpoint_metadata(ep: Endpoint) -> base_pb2.Metadata:
    """Istio's per-endpoint filter metadata: the TLS mode (only when a sidecar terminates
    mTLS, as Istio omits `disabled`) and the workload's telemetry identity."""
    md = base_pb2.Metadata()
    if ep.tls_mode == ISTIO_TLS_MODE:
        s = struct_pb2.Struct()
        s.update({TLS_MODE_KEY: ISTIO_TLS_MODE})
        md.filter_metadata[TRANSPORT_SOCKET_MATCH_KEY].CopyFrom(s)
    if ep.workload_name or ep.namespace:
        name, revision = _canonical(ep)
        s = struct_pb2.Struct()
        s.update({"workload": ";".join((ep.workload_name, ep.namespace, name, revision, DEFAULT_CLUSTER_ID))})
        md.filter_metadata["istio"].CopyFrom(s)
    return md


def lb_endpoint(ep: Endpoint) -> endpoint_components_pb2.LbEndpoint:
    out = endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=socket_address(ep.address, ep.port)),
        health_status=health_check_pb2.HEALTHY if ep.healthy else health_check_pb2.UNHEALTHY,
        metadata=endpoint_metadata(ep),
    )
    out.load_balancing_weight.value = max(1, ep.weight)
    return out


def _sort_key(ep: Endpoint) -> tuple:
    return (ep.address, ep.port, ep.workload_name)


def load_assignment(cluster_name: str, endpoints: Iterable[Endpoint]) -> ClusterLoadAssignment:
    """Endpoints grouped by locality (sorted), each group weighted by the sum of its
    endpoints' weights, endpoints sorted by address — byte-identical for equal input."""
    by_locality: dict[str, list[Endpoint]] = {}
    for ep in endpoints:
        by_locality.setdefault(ep.locality or "", []).append(ep)
    cla = ClusterLoadAssignment(cluster_name=cluster_name)
    for locality in sorted(by_locality):
        eps = sorted(by_locality[locality], key=_sort_key)
        group = cla.endpoints.add(locality=parse_locality(locality))
        group.lb_endpoints.extend(lb_endpoint(e) for e in eps)
        group.load_balancing_weight.value = sum(max(1, e.weight) for e in eps)
    return cla


def cluster_endpoints(push: PushContext, proxy_namespace: str, name: ClusterName) -> tuple[Endpoint, ...] | None:
    """The endpoints of an outbound cluster (service port, DR subset labels); None when the
    service, port or subset does not exist."""
    svc = push.service(name.host)
    if svc is None or svc.port(name.port) is None:
        return None
    labels: dict[str, str] = {}
    if name.subset:
        dr = push.destination_rule(proxy_namespace, name.host)
        subset = next((s for s in dr.spec.subsets if s.name == name.subset), None) if dr else None
        if subset is None:
            return None
        labels = dict(subset.labels)
    return push.endpoints(name.host, name.port, labels)


def build_endpoints(proxy: Proxy, push: PushContext, names: Sequence[str]) -> list[ClusterLoadAssignment]:
    """One ClusterLoadAssignment per requested name, in sorted name order."""
    out = []
    for raw in sorted(set(names)):
        parsed = ClusterName.parse(raw)
        eps = cluster_endpoints(push, proxy.namespace, parsed) if parsed and parsed.direction == "outbound" else None
        out.append(load_assignment(raw, eps or ()))
    return out
