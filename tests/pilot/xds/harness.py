"""A DiscoveryServer over real gRPC with fake generators, and scripted ADS clients.

`World` is the mutable fake mesh a test edits; every PushContext build snapshots it
(keyed by push version) and the fake generators read that snapshot, so responses
follow pushes exactly as real translators would. Every wait is bounded.
"""
from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import json_format
from google.rpc import status_pb2

from isthmus.pilot.model.mesh import MeshConfig
from isthmus.pilot.model.push_context import ConfigSnapshot, PushContext
from isthmus.pilot.push.debounce import DebounceSettings
from isthmus.pilot.push.request import PushRequest
from isthmus.pilot.xds import typeurls as T
from isthmus.pilot.xds.discovery import DiscoveryServer
from isthmus.pilot.xds.generators import generator_table
from isthmus.pilot.xds.metrics import XdsMetrics
from isthmus.pilot.xds.server import add_ads_ports

TIMEOUT = 5.0


@dataclass
class World:
    clusters: list[str] = field(default_factory=lambda: ["outbound|9080||reviews.default.svc.cluster.local",
                                                         "outbound|9080||ratings.default.svc.cluster.local"])
    endpoints: dict[str, list[str]] = field(default_factory=lambda: {
        "outbound|9080||reviews.default.svc.cluster.local": ["127.0.0.11"],
        "outbound|9080||ratings.default.svc.cluster.local": ["127.0.0.21"],
    })
    listeners: list[str] = field(default_factory=lambda: ["0.0.0.0_9080"])
    routes: list[str] = field(default_factory=lambda: ["9080"])
    broken: set[str] = field(default_factory=set)  # cluster names whose generator output Envoy would reject


class FakeMesh:
    """Builder + generators over a `World`, recording what was generated for whom."""

    def __init__(self, world: World | None = None):
        self.world = world or World()
        self.snapshots: dict[str, World] = {}
        self.calls: list[tuple[str, str, tuple[str, ...] | None]] = []  # (type, proxy id, names)
        self.fail_build = False

    def build(self, previous: PushContext | None, request: PushRequest, version: str) -> PushContext:
        if self.fail_build:
            raise RuntimeError("injected PushContext failure")
        self.snapshots[version] = copy.deepcopy(self.world)
        return PushContext.build(version, ConfigSnapshot.build(0, []), MeshConfig())

    def initial(self) -> PushContext:
        return self.build(None, PushRequest(full=True), "v0")

    def _w(self, push: PushContext) -> World:
        return self.snapshots[push.version]

    def clusters(self, proxy, push):
        self.calls.append(("cds", proxy.id, None))
        return [cluster_pb2.Cluster(
            name=n, type=cluster_pb2.Cluster.EDS, connect_timeout={"seconds": 1},
            eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(
                eds_config=config_source_pb2.ConfigSource(ads={}, resource_api_version=config_source_pb2.V3)),
        ) for n in self._w(push).clusters]

    def endpoints(self, proxy, push, names):
        self.calls.append(("eds", proxy.id, tuple(names)))
        w = self._w(push)
        return [endpoint_pb2.ClusterLoadAssignment(cluster_name=n, endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[
                endpoint_components_pb2.LbEndpoint(endpoint=endpoint_components_pb2.Endpoint(
                    address=address_pb2.Address(socket_address=address_pb2.SocketAddress(address=ip, port_value=9080))))
                for ip in w.endpoints.get(n, [])])]) for n in names]

    def listeners(self, proxy, push):
        self.calls.append(("lds", proxy.id, None))
        return [listener_pb2.Listener(name=n) for n in self._w(push).listeners]

    def routes(self, proxy, push, names):
        self.calls.append(("rds", proxy.id, tuple(names)))
        return [route_pb2.RouteConfiguration(name=n) for n in names if n in self._w(push).routes]

    def generators(self):
        return generator_table(self.clusters, self.endpoints, self.listeners, self.routes)


def make_node(name: str = "reviews-v1", namespace: str = "default", ip: str = "127.0.0.1", kind: str = "sidecar",
              **metadata) -> base_pb2.Node:
    md = {"NAMESPACE": namespace, "LABELS": {"app": name.split("-")[0]}, "ISTIO_VERSION": "1.24.0", **metadata}
    node = base_pb2.Node(id=f"{kind}~{ip}~{name}.{namespace}~{namespace}.svc.cluster.local", cluster="Kubernetes")
    json_format.ParseDict(md, node.metadata)
    return node


class AdsClient:
    """One ADS stream, SotW or delta, driven step by step."""

    def __init__(self, channel: grpc.aio.Channel, node: base_pb2.Node, delta: bool = False):
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        self.delta = delta
        self.call = stub.DeltaAggregatedResources() if delta else stub.StreamAggregatedResources()
        self.node = node
        self._sent_node = False
        self.inbox: asyncio.Queue = asyncio.Queue()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        # Reads run in their own task: cancelling a read would cancel the whole RPC.
        try:
            while True:
                resp = await self.call.read()
                if resp is grpc.aio.EOF:
                    break
                self.inbox.put_nowait(resp)
        except grpc.aio.AioRpcError as exc:
            self.inbox.put_nowait(exc)
            return
        except asyncio.CancelledError:
            pass
        self.inbox.put_nowait(grpc.aio.EOF)

    def _with_node(self, req):
        if not self._sent_node:
            req.node.CopyFrom(self.node)
            self._sent_node = True
        return req

    async def request(self, type_url: str, names=(), version: str = "", nonce: str = "", error: str | None = None):
        req = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=list(names), version_info=version,
                                             response_nonce=nonce)
        if error is not None:
            req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        await self.call.write(self._with_node(req))

    async def ack(self, resp: discovery_pb2.DiscoveryResponse, names=None):
        names = list(names) if names is not None else []
        await self.request(resp.type_url, names, resp.version_info, resp.nonce)

    async def delta_request(self, type_url: str, subscribe=(), unsubscribe=(), nonce: str = "",
                            error: str | None = None, initial: dict | None = None):
        req = discovery_pb2.DeltaDiscoveryRequest(type_url=type_url, resource_names_subscribe=list(subscribe),
                                                  resource_names_unsubscribe=list(unsubscribe), response_nonce=nonce,
                                                  initial_resource_versions=initial or {})
        if error is not None:
            req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        await self.call.write(self._with_node(req))

    async def recv(self, timeout: float = TIMEOUT):
        resp = await asyncio.wait_for(self.inbox.get(), timeout)
        if isinstance(resp, grpc.aio.AioRpcError):
            raise resp
        if resp is grpc.aio.EOF:
            raise AssertionError("stream ended")
        return resp

    async def expect_nothing(self, within: float = 0.3) -> None:
        try:
            resp = await asyncio.wait_for(self.inbox.get(), within)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"unexpected response: {resp}")

    async def close(self) -> None:
        self.call.cancel()
        self._reader.cancel()
        self.inbox.put_nowait(grpc.aio.EOF)  # wake a pending recv


def names_of(resp) -> list[str]:
    """Resource names in a SotW or delta response."""
    out = []
    for r in resp.resources:
        any_msg = getattr(r, "resource", r)
        for cls in (cluster_pb2.Cluster, endpoint_pb2.ClusterLoadAssignment, listener_pb2.Listener,
                    route_pb2.RouteConfiguration):
            if any_msg.Is(cls.DESCRIPTOR):
                msg = cls()
                any_msg.Unpack(msg)
                out.append(T.resource_name(msg))
    return out


class Harness:
    def __init__(self, mesh: FakeMesh, discovery: DiscoveryServer, server: grpc.aio.Server, port: int):
        self.mesh, self.discovery, self.server, self.port = mesh, discovery, server, port
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.clients: list[AdsClient] = []

    @property
    def metrics(self) -> XdsMetrics:
        return self.discovery.metrics

    def client(self, node: base_pb2.Node | None = None, delta: bool = False) -> AdsClient:
        c = AdsClient(self.channel, node or make_node(), delta)
        self.clients.append(c)
        return c

    async def wait_for(self, predicate, timeout: float = TIMEOUT, what: str = "condition") -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.01)

    async def acked(self, short: str, nonce: str, proxy_index: int = 0) -> None:
        """Wait until pilot has processed the proxy's ACK of `nonce` (before pushing more)."""
        def done():
            entries = self.discovery.syncz()
            t = entries[proxy_index].type_sync(short) if len(entries) > proxy_index else None
            return t is not None and t.acked_nonce == nonce
        await self.wait_for(done, what=f"{short} ACK of {nonce}")

    async def close(self) -> None:
        for c in self.clients:
            await c.close()
        await self.channel.close()
        await self.server.stop(0)
        await self.discovery.stop()


async def start_harness(mesh: FakeMesh | None = None, debounce: DebounceSettings | None = None,
                        **kwargs) -> Harness:
    mesh = mesh or FakeMesh()
    discovery = DiscoveryServer(mesh.build, generators=mesh.generators(), initial_push=mesh.initial(),
                                debounce=debounce or DebounceSettings(quiet=0.01, max_delay=0.2), **kwargs)
    await discovery.start()
    server = grpc.aio.server()
    ports = add_ads_ports(server, discovery.ads, plaintext_address="127.0.0.1:0")
    await server.start()
    return Harness(mesh, discovery, server, ports.plaintext)
