"""Names of generated Envoy resources, as Istio spells them.

Clusters: `outbound|9080|v1|reviews.default.svc.cluster.local`, `inbound|9080||`,
`PassthroughCluster`, `BlackHoleCluster`. Routes: the port number (`9080`) for
iptables capture, `http_proxy` for the explicit (HTTP_PROXY) listener. Secrets: SDS
`default` (workload cert) and `ROOTCA` (trust bundle).
"""
from __future__ import annotations

from dataclasses import dataclass

PASSTHROUGH_CLUSTER = "PassthroughCluster"
BLACKHOLE_CLUSTER = "BlackHoleCluster"
INBOUND_PASSTHROUGH_CLUSTER = "InboundPassthroughClusterIpv4"
SDS_DEFAULT = "default"
SDS_ROOTCA = "ROOTCA"
SDS_CLUSTER = "sds-grpc"  # bootstrap cluster of the agent's SDS socket
XDS_CLUSTER = "xds-grpc"  # bootstrap cluster of pilot's ADS
VIRTUAL_OUTBOUND = "virtualOutbound"
VIRTUAL_INBOUND = "virtualInbound"
HTTP_PROXY_LISTENER = "http_proxy"  # explicit capture: the app's HTTP_PROXY target
HTTP_PROXY_ROUTE = "http_proxy"


@dataclass(frozen=True)
class ClusterName:
    direction: str  # outbound | inbound
    port: int
    subset: str
    host: str

    def __str__(self) -> str:
        return f"{self.direction}|{self.port}|{self.subset}|{self.host}"

    @classmethod
    def parse(cls, name: str) -> "ClusterName | None":
        parts = name.split("|")
        if len(parts) != 4 or parts[0] not in ("outbound", "inbound") or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2], parts[3])


def outbound_cluster(host: str, port: int, subset: str = "") -> str:
    return f"outbound|{port}|{subset}|{host}"


def inbound_cluster(port: int) -> str:
    return f"inbound|{port}||"


def outbound_route(port: int) -> str:
    return str(port)


def inbound_listener(port: int) -> str:
    return f"inbound|{port}"


def outbound_listener(address: str, port: int) -> str:
    return f"{address}_{port}"
