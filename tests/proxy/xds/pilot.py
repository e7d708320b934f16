"""Pilot's real DiscoveryServer and translators, in process, for the proxy's xDS tests.

`PilotUnderTest` serves BOOKINFO_SERVICES (editable `yaml`) over plaintext or mTLS on an
ephemeral port that survives `restart()`; `extra_listeners` are appended to what the
real LDS generator builds (to inject resources the proxy must refuse) and `withheld`
RDS/EDS names are dropped from what it answers. Waits are bounded.
"""
from __future__ import annotations

import asyncio

import grpc

from isthmus.pilot.push.debounce import DebounceSettings
from isthmus.pilot.push.request import PushRequest
from isthmus.pilot.xds import typeurls as T
from isthmus.pilot.xds.discovery import DiscoveryServer
from isthmus.pilot.xds.generators import Generator, default_generators
from isthmus.pilot.xds.server import add_ads_ports
from isthmus.pilot.xds.status import TypeSync
from isthmus.proxy.bootstrap import WorkloadIdentity
from tests.pilot.fixtures import BOOKINFO_SERVICES, push_from_yaml

PRODUCTPAGE = WorkloadIdentity(name="productpage-v1", namespace="default", service_account="bookinfo-productpage",
                               labels={"app": "productpage", "version": "v1"},
                               ports=({"port": 9080, "name": "http", "protocol": "HTTP"},))
TIMEOUT = 10.0

EXTRA_SERVICE = """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: extra}
spec:
  hosts: [extra.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 7070, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.71}]
"""


async def until(predicate, timeout: float = TIMEOUT, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


class PilotUnderTest:
    def __init__(self, yaml: str = BOOKINFO_SERVICES, cert_source=None):
        self.yaml = yaml
        self.cert_source = cert_source  # () -> (chain, key, roots): serve mTLS instead of plaintext
        self.extra_listeners: list = []
        self.withheld: set[str] = set()  # RDS/EDS names pilot pretends not to have
        self.secrets: dict = {}  # name → Secret: served over ADS (as for credentialName)
        self.port = 0
        self.discovery: DiscoveryServer | None = None
        self.server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def build(self, previous, request, version):
        return push_from_yaml(self.yaml, version=version)

    def generators(self):
        table = dict(default_generators())
        lds = table[T.LISTENER]
        table[T.LISTENER] = Generator(T.LISTENER, lambda proxy, push, names: [
            *lds.generate(proxy, push, names), *self.extra_listeners])
        for type_url in (T.ROUTE, T.ENDPOINT):
            table[type_url] = Generator(type_url, self._withholding(table[type_url]))
        table[T.SECRET] = Generator(T.SECRET, lambda proxy, push, names: [
            s for n, s in sorted(self.secrets.items()) if names is None or n in names])
        return table

    def _withholding(self, gen: Generator):
        return lambda proxy, push, names: [r for r in gen.generate(proxy, push, names)
                                           if T.resource_name(r) not in self.withheld]

    async def start(self) -> None:
        self.discovery = DiscoveryServer(self.build, generators=self.generators(),
                                         initial_push=self.build(None, PushRequest(full=True), "v1"),
                                         debounce=DebounceSettings(quiet=0.01, max_delay=0.1))
        await self.discovery.start()
        self.server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        address = f"127.0.0.1:{self.port}"
        if self.cert_source is None:
            ports = add_ads_ports(self.server, self.discovery.ads, plaintext_address=address)
            self.port = ports.plaintext
        else:
            ports = add_ads_ports(self.server, self.discovery.ads, mtls_address=address, cert_source=self.cert_source)
            self.port = ports.mtls
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0)
            self.server = None
        if self.discovery is not None:
            await self.discovery.stop()
            self.discovery = None

    async def restart(self) -> None:
        """A new pilot (new state, nothing known about proxies) on the same port."""
        await self.stop()
        await self.start()

    async def push(self) -> None:
        await self.discovery.push(PushRequest(full=True))

    def sync(self, short: str) -> TypeSync | None:
        entries = self.discovery.syncz() if self.discovery else []
        return entries[-1].type_sync(short) if entries else None

    def synced(self, *shorts: str) -> bool:
        return all((s := self.sync(x)) is not None and s.state == "SYNCED" for x in shorts)
