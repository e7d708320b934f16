"""A connected proxy as pilot sees it: identity, labels, mode, ports — frozen.

Built once per connection from the Envoy node (id + metadata) and the peer
certificate; a new `Proxy` value replaces it when the node changes.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping


class ProxyType(str, enum.Enum):
    SIDECAR = "sidecar"
    ROUTER = "router"  # ingress / egress gateway


class CaptureMode(str, enum.Enum):
    EXPLICIT = "explicit"  # HTTP_PROXY outbound, inbound on the proxy's own ports
    IPTABLES = "iptables"  # REDIRECT to 15001/15006 with SO_ORIGINAL_DST


@dataclass(frozen=True)
class WorkloadPort:
    """An application port the workload serves (inbound)."""

    port: int  # where the app listens (loopback in explicit mode)
    name: str = ""
    protocol: str = ""
    proxy_port: int = 0  # explicit mode: where the proxy accepts inbound for it (0: same as port)


@dataclass(frozen=True)
class Proxy:
    id: str  # Envoy node id: "sidecar~IP~NAME.NS~NS.svc.cluster.local"
    type: ProxyType
    ip_addresses: tuple[str, ...]
    namespace: str
    service_account: str = "default"
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    workload_name: str = ""
    workload_group: str = ""  # auto-registration: the WorkloadGroup it belongs to
    capture_mode: CaptureMode = CaptureMode.EXPLICIT
    ports: tuple[WorkloadPort, ...] = ()
    # Explicit capture: where the proxy listens for the app's outbound (HTTP_PROXY).
    outbound_port: int = 15001
    inbound_port: int = 15006
    cluster: str = "Kubernetes"
    version: str = ""
    identity: str = ""  # SPIFFE id proven by the mTLS peer certificate ("" on plaintext xDS)
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # Gateways: Gateway server port → the port its listener binds (node metadata GATEWAY_PORT_MAP,
    # what a Kubernetes Service's targetPort does for Istio: 80 → 8080 without root), and the
    # address listeners bind unless a server names its own `bind` (GATEWAY_BIND).
    gateway_port_map: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))
    gateway_bind: str = "0.0.0.0"

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))
        object.__setattr__(self, "gateway_port_map", MappingProxyType(dict(self.gateway_port_map)))

    def listen_port(self, server_port: int) -> int:
        """Where a gateway listens for a Gateway server port (the port map, else the port itself)."""
        return self.gateway_port_map.get(server_port, server_port)

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def is_gateway(self) -> bool:
        return self.type is ProxyType.ROUTER

    @property
    def name(self) -> str:
        """`reviews-v1-abc.default` (the node id's third field), as proxy-status shows."""
        parts = self.id.split("~")
        return parts[2] if len(parts) >= 3 else self.id
