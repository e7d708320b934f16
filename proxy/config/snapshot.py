"""The proxy's complete, frozen configuration: one `Snapshot` per accepted xDS update.

`Snapshot.with_update(type_url, resources, removed, version)` is pure: it compiles
every new resource and returns a new Snapshot; any `Unsupported` propagates so the xDS
client NACKs the whole update and keeps serving the old one. `references()` lists the
RDS/EDS/SDS names the listeners and clusters need (with where to fetch them);
`missing()` those not received yet (readiness, subscriptions). The raw protos are kept
for /config_dump.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Mapping

from google.protobuf import any_pb2
from google.protobuf.message import Message

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

from isthmus.proxy.config.clusters import CLUSTER_TYPE_URL, ClusterConfig, compile_cluster
from isthmus.proxy.config.common import EMPTY, ConfigSourceRef
from isthmus.proxy.config.endpoints import ENDPOINT_TYPE_URL, EndpointsConfig, compile_load_assignment
from isthmus.proxy.config.errors import Invalid, Unsupported
from isthmus.proxy.config.listeners import LISTENER_TYPE_URL, ListenerConfig, compile_listener
from isthmus.proxy.config.routes import ROUTE_TYPE_URL, RouteTable, compile_route_configuration
from isthmus.proxy.config.secrets import SECRET_TYPE_URL, SecretConfig, compile_secret


@dataclass(frozen=True)
class _Kind:
    attr: str
    message: type[Message]
    compile: Callable[[Any], Any]
    name_of: Callable[[Any], str]


KINDS: Mapping[str, _Kind] = MappingProxyType({
    LISTENER_TYPE_URL: _Kind("listeners", listener_pb2.Listener, compile_listener, lambda m: m.name),
    ROUTE_TYPE_URL: _Kind("routes", route_pb2.RouteConfiguration, compile_route_configuration, lambda m: m.name),
    CLUSTER_TYPE_URL: _Kind("clusters", cluster_pb2.Cluster, compile_cluster, lambda m: m.name),
    ENDPOINT_TYPE_URL: _Kind("endpoints", endpoint_pb2.ClusterLoadAssignment, compile_load_assignment, lambda m: m.cluster_name),
    SECRET_TYPE_URL: _Kind("secrets", secret_pb2.Secret, compile_secret, lambda m: m.name),
})


@dataclass(frozen=True)
class References:
    """Named resources a snapshot needs, each with the source to fetch it from."""

    routes: Mapping[str, ConfigSourceRef | None] = field(default_factory=dict)
    endpoints: Mapping[str, ConfigSourceRef | None] = field(default_factory=dict)
    secrets: Mapping[str, ConfigSourceRef | None] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.routes and not self.endpoints and not self.secrets


@dataclass(frozen=True, eq=False)
class Snapshot:
    listeners: Mapping[str, ListenerConfig] = field(default_factory=lambda: EMPTY)
    routes: Mapping[str, RouteTable] = field(default_factory=lambda: EMPTY)
    clusters: Mapping[str, ClusterConfig] = field(default_factory=lambda: EMPTY)
    endpoints: Mapping[str, EndpointsConfig] = field(default_factory=lambda: EMPTY)
    secrets: Mapping[str, SecretConfig] = field(default_factory=lambda: EMPTY)
    versions: Mapping[str, str] = field(default_factory=lambda: EMPTY)  # type URL → version_info
    resources: Mapping[str, Mapping[str, Message]] = field(default_factory=lambda: EMPTY)  # type URL → name → proto

    def with_update(self, type_url: str, resources: Mapping[str, Message | any_pb2.Any], removed: set[str] | frozenset[str] = frozenset(),
                    version: str = "") -> "Snapshot":
        """A new Snapshot with `resources` added or replaced and `removed` dropped.

        For state-of-the-world LDS/CDS the caller passes the names it no longer received
        in `removed`. Raises Unsupported (naming the resource and field) on the first
        resource that does not compile; nothing is applied then.
        """
        kind = KINDS.get(type_url)
        if kind is None:
            raise Unsupported(type_url, "", "", "unsupported resource type")
        compiled: dict[str, Any] = dict(getattr(self, kind.attr))
        raw: dict[str, Message] = dict(self.resources.get(type_url, {}))
        for name in removed:
            compiled.pop(name, None)
            raw.pop(name, None)
        for name in sorted(resources):
            msg = _message(type_url, name, resources[name], kind)
            if kind.name_of(msg) != name:
                raise Invalid(type_url, name, "name", f"resource is keyed {name!r} but named {kind.name_of(msg)!r}")
            compiled[name] = kind.compile(msg)
            raw[name] = msg
        return replace(
            self,
            **{kind.attr: MappingProxyType(compiled)},
            versions=MappingProxyType({**self.versions, type_url: version}),
            resources=MappingProxyType({**self.resources, type_url: MappingProxyType(raw)}),
        )

    def references(self) -> References:
        routes: dict[str, ConfigSourceRef | None] = {}
        secrets: dict[str, ConfigSourceRef | None] = {}
        endpoints: dict[str, ConfigSourceRef | None] = {}
        for listener in self.listeners.values():
            for chain in listener.all_chains():
                hcm = chain.http
                if hcm is not None and hcm.rds_name:
                    routes.setdefault(hcm.rds_name, hcm.rds_source)
                if chain.tls is not None:
                    for ref in chain.tls.common.secret_names():
                        secrets.setdefault(ref.name, ref.source)
        for cluster in self.clusters.values():
            if cluster.discovery_type == "EDS":
                endpoints.setdefault(cluster.eds_service_name, cluster.eds_source)
            for tls in (cluster.tls, *(m.tls for m in cluster.transport_socket_matches)):
                if tls is not None:
                    for ref in tls.common.secret_names():
                        secrets.setdefault(ref.name, ref.source)
        return References(routes, endpoints, secrets)

    def missing(self) -> References:
        """Referenced RDS/EDS/SDS names not received yet (empty: ready to serve)."""
        refs = self.references()
        return References(
            {n: s for n, s in refs.routes.items() if n not in self.routes},
            {n: s for n, s in refs.endpoints.items() if n not in self.endpoints},
            {n: s for n, s in refs.secrets.items() if n not in self.secrets},
        )

    def endpoints_for(self, cluster: ClusterConfig) -> EndpointsConfig | None:
        """A cluster's endpoints: from EDS, or its inline load assignment."""
        if cluster.discovery_type == "EDS":
            return self.endpoints.get(cluster.eds_service_name)
        return cluster.load_assignment

    def listener_on_port(self, port: int, ip: str | None = None, bound_only: bool = True) -> ListenerConfig | None:
        """The listener on `ip:port`: the exact address first, then a wildcard (0.0.0.0, ::);
        any address when `ip` is None. `bound_only=False` also finds bind_to_port=false ones."""
        exact = wildcard = None
        for listener in self.listeners.values():
            a = listener.address
            if a.pipe or a.port != port or (bound_only and not listener.bind_to_port):
                continue
            if ip is not None and a.host == ip:
                exact = exact or listener
            elif ip is None or a.host in ("0.0.0.0", "::"):
                wildcard = wildcard or listener
        return exact or wildcard


def _message(type_url: str, name: str, value: Message | any_pb2.Any, kind: _Kind) -> Message:
    if isinstance(value, any_pb2.Any):
        if value.type_url != type_url:
            raise Unsupported(type_url, name, "", f"resource has type {value.type_url}, expected {type_url}")
        out = kind.message()
        value.Unpack(out)
        return out
    if not isinstance(value, kind.message):
        raise Unsupported(type_url, name, "", f"expected {kind.message.DESCRIPTOR.full_name}, got {type(value).__name__}")
    return value

