"""The service registry's values: services, ports, endpoints (what Envoy clusters target).

All frozen; built by registries (ServiceEntry/WorkloadEntry now, Kubernetes later)
and read by the translators through `PushContext`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping


class Protocol(str, enum.Enum):
    HTTP = "HTTP"
    HTTP2 = "HTTP2"
    GRPC = "GRPC"
    HTTPS = "HTTPS"
    TLS = "TLS"
    TCP = "TCP"
    MONGO = "MONGO"
    REDIS = "REDIS"
    MYSQL = "MYSQL"
    UNSUPPORTED = "UNSUPPORTED"  # sniffed: HTTP if it looks like HTTP, else TCP

    @property
    def is_http(self) -> bool:
        return self in (Protocol.HTTP, Protocol.HTTP2, Protocol.GRPC)

    @property
    def is_tls(self) -> bool:
        return self in (Protocol.HTTPS, Protocol.TLS)

    @classmethod
    def parse(cls, value: str | None, port_name: str = "") -> "Protocol":
        """Istio's rule: an explicit protocol, else the port name prefix (`http-web`), else sniffed."""
        for candidate in (value or "", port_name.split("-", 1)[0] if port_name else ""):
            up = candidate.upper()
            if up == "GRPC-WEB":
                return cls.HTTP
            if up in cls.__members__:
                return cls[up]
        return cls.UNSUPPORTED


class Resolution(str, enum.Enum):
    STATIC = "STATIC"  # endpoints listed (or registered workloads): EDS
    DNS = "DNS"  # endpoints are names resolved by the proxy: STRICT_DNS
    DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"  # LOGICAL_DNS
    NONE = "NONE"  # passthrough to the original destination: ORIGINAL_DST


@dataclass(frozen=True, order=True)
class ServicePort:
    port: int
    name: str = ""
    protocol: Protocol = Protocol.UNSUPPORTED
    target_port: int = 0  # 0: same as `port`


def _frozen(m: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True)
class Service:
    hostname: str  # FQDN: reviews.default.svc.cluster.local
    namespace: str
    ports: tuple[ServicePort, ...]
    addresses: tuple[str, ...] = ()  # VIPs, if any
    resolution: Resolution = Resolution.STATIC
    mesh_external: bool = False
    export_to: frozenset[str] = frozenset({"*"})  # "*", ".", or namespaces
    selector: Mapping[str, str] = field(default_factory=lambda: _frozen(None))
    source: str = ""  # "ServiceEntry default/reviews"
    creation: str = ""  # for oldest-wins ordering

    def __post_init__(self) -> None:
        object.__setattr__(self, "selector", _frozen(self.selector))

    def __hash__(self) -> int:
        return hash((self.hostname, self.namespace))

    def port(self, number: int) -> ServicePort | None:
        return next((p for p in self.ports if p.port == number), None)

    def port_by_name(self, name: str) -> ServicePort | None:
        return next((p for p in self.ports if p.name == name), None)

    def visible_to(self, namespace: str) -> bool:
        return "*" in self.export_to or namespace in self.export_to or (
            "." in self.export_to and namespace == self.namespace
        )


@dataclass(frozen=True)
class Endpoint:
    """One workload address serving one port of one service."""

    hostname: str  # the service it belongs to
    service_port: int  # the service port this endpoint serves
    address: str  # IP, hostname (DNS resolution) or unix:// path
    port: int  # where the workload listens for that service port
    labels: Mapping[str, str] = field(default_factory=lambda: _frozen(None))
    namespace: str = ""
    service_account: str = ""  # spiffe://td/ns/NS/sa/SA when known
    workload_name: str = ""
    tls_mode: str = "disabled"  # "istio" when a sidecar terminates mTLS for it
    network: str = ""
    locality: str = ""
    weight: int = 1
    healthy: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", _frozen(self.labels))

    def __hash__(self) -> int:
        return hash((self.hostname, self.service_port, self.address, self.port))

    def matches(self, selector: Mapping[str, str]) -> bool:
        return all(self.labels.get(k) == v for k, v in selector.items())
