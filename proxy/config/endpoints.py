"""EDS: ClusterLoadAssignment → `EndpointsConfig` (also a cluster's inline load_assignment).

Per locality (region/zone/sub_zone, priority, weight): endpoints with address, weight,
health and metadata. Istio's metadata is pre-extracted: `transport_socket_match`
(`envoy.transport_socket_match`, what a cluster's transport_socket_matches select on)
and `workload` (`istio.workload`, "name;namespace;canonical-name;revision;cluster").
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from envoy.config.core.v3 import base_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2 as ec
from envoy.config.endpoint.v3 import endpoint_pb2

from isthmus.proxy.config.common import EMPTY, Address, address, enum, metadata, wrapped
from isthmus.proxy.config.errors import Fields, Where

ENDPOINT_TYPE_URL = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
TRANSPORT_SOCKET_MATCH = "envoy.transport_socket_match"

CLA = Fields(endpoint_pb2.ClusterLoadAssignment, {"cluster_name", "endpoints", "policy"})
POLICY = Fields(endpoint_pb2.ClusterLoadAssignment.Policy, {"overprovisioning_factor", "weighted_priority_health"})
LOCALITY_ENDPOINTS = Fields(ec.LocalityLbEndpoints, {"locality", "lb_endpoints", "load_balancing_weight", "priority"},
                            {"metadata": "not consulted by any isthmus filter", "proximity": "not used by Envoy's load balancers either"})
LOCALITY = Fields(base_pb2.Locality, {"region", "zone", "sub_zone"})
LB_ENDPOINT = Fields(ec.LbEndpoint, {"endpoint", "health_status", "metadata", "load_balancing_weight"})
ENDPOINT = Fields(ec.Endpoint, {"address", "hostname"},
                  {"health_check_config": "no active health checking in the isthmus proxy"})
HEALTH = {health_check_pb2.UNKNOWN: "unknown", health_check_pb2.HEALTHY: "healthy", health_check_pb2.UNHEALTHY: "unhealthy",
          health_check_pb2.DRAINING: "draining", health_check_pb2.TIMEOUT: "timeout", health_check_pb2.DEGRADED: "degraded"}


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    address: Address
    weight: int = 1
    health: str = "unknown"  # unknown | healthy | unhealthy | draining | timeout | degraded
    hostname: str = ""
    # Metadata is left out of eq/hash so endpoints can key per-host state (outlier, LB).
    metadata: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: EMPTY, compare=False)
    transport_socket_match: Mapping[str, Any] = field(default_factory=lambda: EMPTY, compare=False)
    workload: str = ""

    @property
    def healthy(self) -> bool:
        """Envoy treats UNKNOWN as healthy; DEGRADED is used only when nothing healthy is left."""
        return self.health in ("unknown", "healthy")


@dataclass(frozen=True, slots=True)
class LocalityEndpoints:
    region: str = ""
    zone: str = ""
    sub_zone: str = ""
    priority: int = 0
    weight: int | None = None  # locality weight (locality-weighted LB)
    endpoints: tuple[EndpointConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class EndpointsConfig:
    cluster_name: str
    localities: tuple[LocalityEndpoints, ...] = ()
    overprovisioning_factor: int = 140
    weighted_priority_health: bool = False
    endpoints: tuple[EndpointConfig, ...] = ()  # every locality's, flattened in order

    def healthy(self) -> tuple[EndpointConfig, ...]:
        return tuple(e for e in self.endpoints if e.healthy)


def _lb_endpoint(msg: ec.LbEndpoint, where: Where) -> EndpointConfig:
    LB_ENDPOINT.check(msg, where)
    if not msg.HasField("endpoint"):
        raise where.at("endpoint").unsupported("only inline endpoints are supported (no LEDS endpoint_name)")
    ep, w = msg.endpoint, where.at("endpoint")
    ENDPOINT.check(ep, w)
    if not ep.HasField("address"):
        raise w.at("address").invalid("an endpoint needs an address")
    weight = wrapped(msg, "load_balancing_weight", 1)
    if weight < 1:
        raise where.at("load_balancing_weight").invalid("endpoint weight must be at least 1")
    md = metadata(msg.metadata, where.at("metadata")) if msg.HasField("metadata") else EMPTY
    istio = md.get("istio", EMPTY)
    return EndpointConfig(
        address=address(ep.address, w.at("address")),
        weight=weight,
        health=enum(HEALTH, msg, "health_status", where),
        hostname=ep.hostname,
        metadata=md,
        transport_socket_match=md.get(TRANSPORT_SOCKET_MATCH, EMPTY),
        workload=str(istio.get("workload", "")),
    )


def load_assignment(msg: endpoint_pb2.ClusterLoadAssignment, where: Where) -> EndpointsConfig:
    CLA.check(msg, where)
    overprovisioning, weighted_health = 140, False
    if msg.HasField("policy"):
        POLICY.check(msg.policy, where.at("policy"))
        overprovisioning = wrapped(msg.policy, "overprovisioning_factor", 140)
        weighted_health = msg.policy.weighted_priority_health
    localities = []
    for i, group in enumerate(msg.endpoints):
        w = where.at("endpoints").idx(i)
        LOCALITY_ENDPOINTS.check(group, w)
        LOCALITY.check(group.locality, w.at("locality"))
        weight = wrapped(group, "load_balancing_weight", None)
        if weight is not None and weight < 1:
            raise w.at("load_balancing_weight").invalid("locality weight must be at least 1")
        localities.append(LocalityEndpoints(
            group.locality.region, group.locality.zone, group.locality.sub_zone, group.priority, weight,
            tuple(_lb_endpoint(e, w.at("lb_endpoints").idx(j)) for j, e in enumerate(group.lb_endpoints)),
        ))
    flat = tuple(e for loc in localities for e in loc.endpoints)
    return EndpointsConfig(msg.cluster_name, tuple(localities), overprovisioning, weighted_health, flat)


def compile_load_assignment(msg: endpoint_pb2.ClusterLoadAssignment) -> EndpointsConfig:
    return load_assignment(msg, Where(ENDPOINT_TYPE_URL, msg.cluster_name))
