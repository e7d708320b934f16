"""Test rig for the data plane: real sockets on 127.0.0.1, aiohttp backends, pilot's
own translators for the config, throwaway mesh certificates, a raw HTTP client."""
from __future__ import annotations

import asyncio
import datetime
import socket
from contextlib import asynccontextmanager
from typing import Callable

import httptools
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from isthmus.proxy.config import Snapshot
from isthmus.proxy.config.clusters import CLUSTER_TYPE_URL
from isthmus.proxy.config.common import DataSourceConfig
from isthmus.proxy.config.endpoints import ENDPOINT_TYPE_URL
from isthmus.proxy.config.listeners import LISTENER_TYPE_URL
from isthmus.proxy.config.routes import ROUTE_TYPE_URL
from isthmus.proxy.config.secrets import SecretConfig
from isthmus.proxy.config.tls import CertificateConfig, ValidationConfig
from isthmus.proxy.runtime import DataPlane, NodeInfo, StaticSecrets
from isthmus.proxy.stats import Stats

WAIT = 5.0  # every wait in these tests is bounded


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- certificates

class Pki:
    """A throwaway mesh CA issuing SPIFFE workload certificates."""

    def __init__(self, trust_domain: str = "cluster.local") -> None:
        self.trust_domain = trust_domain
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.root_pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def spiffe(self, sa: str, ns: str = "default") -> str:
        return f"spiffe://{self.trust_domain}/ns/{ns}/sa/{sa}"

    def issue(self, uri: str | None = None, dns: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        sans: list = [x509.UniformResourceIdentifier(uri)] if uri else []
        sans += [x509.DNSName(d) for d in dns]
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test")]))
             .issuer_name(self.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1)))
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        chain = cert.public_bytes(serialization.Encoding.PEM) + self.root_pem
        pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return chain, pem_key

    def secrets(self, sa: str, ns: str = "default") -> StaticSecrets:
        """`default` (workload cert) and `ROOTCA` (trust bundle), as the agent provides them."""
        chain, key = self.issue(self.spiffe(sa, ns))
        return StaticSecrets({
            "default": SecretConfig("default", tls_certificate=CertificateConfig(DataSourceConfig(inline=chain),
                                                                                 DataSourceConfig(inline=key))),
            "ROOTCA": SecretConfig("ROOTCA", validation_context=ValidationConfig(trusted_ca=DataSourceConfig(inline=self.root_pem))),
        })

    def client_context(self, sa: str | None = "client", ns: str = "default", alpn=("http/1.1",)):
        import os
        import ssl
        import tempfile
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(cadata=self.root_pem.decode())
        if sa is not None:
            chain, key = self.issue(self.spiffe(sa, ns))
            fd, path = tempfile.mkstemp(suffix=".pem")
            os.write(fd, chain + key)
            os.close(fd)
            ctx.load_cert_chain(path)
            os.unlink(path)
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        return ctx


# ---------------------------------------------------------------- backends

class Backend:
    """An aiohttp app recording what it got. Routes: /status/{code}, /delay/{ms}, else echo JSON."""

    def __init__(self, name: str = "backend", handler: Callable | None = None) -> None:
        self.name = name
        self.requests: list[dict] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._handler = handler

    async def _handle(self, req: web.Request) -> web.StreamResponse:
        body = await req.read()
        self.requests.append({"method": req.method, "path": req.path_qs, "headers": dict(req.headers), "body": body,
                              "host": req.host})
        if self._handler is not None:
            return await self._handler(req)
        parts = req.path.strip("/").split("/")
        if parts[0] == "status" and len(parts) > 1:
            return web.Response(status=int(parts[1]), text=f"status {parts[1]} from {self.name}")
        if parts[0] == "delay" and len(parts) > 1:
            await asyncio.sleep(int(parts[1]) / 1000)
        return web.json_response({"backend": self.name, "method": req.method, "path": req.path_qs,
                                  "headers": dict(req.headers), "body": body.decode("latin-1")})

    async def start(self) -> "Backend":
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def service_entry(name: str, port: int, service_port: int = 9080, protocol: str = "HTTP", labels: str = "",
                  extra_endpoints: tuple[int, ...] = ()) -> str:
    eps = ", ".join(f"{{address: 127.0.0.1, ports: {{p: {p}}}{', labels: ' + labels if labels else ''}}}"
                    for p in (port, *extra_endpoints))
    return f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}}}
spec:
  hosts: [{name}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {service_port}, name: p, protocol: {protocol}}}]
  endpoints: [{eps}]
"""


def build_snapshot(yaml: str, proxy=None, mutate: Callable | None = None, mesh=None) -> tuple[Snapshot, dict[str, int]]:
    """CDS → LDS (fresh ports) → RDS → EDS from pilot's translators for one sidecar."""
    from isthmus.pilot.translate import routes as routes_mod
    from isthmus.pilot.translate.clusters import build_clusters
    from isthmus.pilot.translate.endpoints import build_endpoints
    from isthmus.pilot.translate.listeners import build_listeners
    from tests.pilot.fixtures import push_from_yaml, sidecar

    push = push_from_yaml(yaml, mesh=mesh)
    proxy = proxy or sidecar()
    clusters = build_clusters(proxy, push)
    listeners = build_listeners(proxy, push)
    ports: dict[str, int] = {}
    for lis in listeners:
        if lis.HasField("bind_to_port") and not lis.bind_to_port.value:
            continue  # only reachable by original-destination hand-off: keep its port
        lis.address.socket_address.port_value = ports[lis.name] = free_port()
    if mutate is not None:
        mutate(listeners=listeners, clusters=clusters)
    snap = Snapshot().with_update(CLUSTER_TYPE_URL, {c.name: c for c in clusters}, version="1")
    snap = snap.with_update(LISTENER_TYPE_URL, {x.name: x for x in listeners}, version="1")
    refs = snap.references()
    snap = snap.with_update(ROUTE_TYPE_URL, {r.name: r for r in routes_mod.build_routes(proxy, push, list(refs.routes))}, version="1")
    snap = snap.with_update(ENDPOINT_TYPE_URL, {e.cluster_name: e for e in build_endpoints(proxy, push, list(refs.endpoints))},
                            version="1")
    return snap, ports


NODE = NodeInfo.from_workload("productpage-v1", "default", "bookinfo-productpage", {"app": "productpage", "version": "v1"})


_PKI: list[Pki] = []


def pki() -> Pki:
    """One CA for the whole test session (key generation is the slow part)."""
    if not _PKI:
        _PKI.append(Pki())
    return _PKI[0]


@asynccontextmanager
async def dataplane(snapshot: Snapshot, secrets=None, node: NodeInfo = NODE, **kw):
    dp = DataPlane(Stats(), secrets or pki().secrets("bookinfo-productpage"), node, **kw)
    errors = await dp.apply(snapshot)
    assert errors == [], errors
    try:
        yield dp
    finally:
        await dp.stop()


# ---------------------------------------------------------------- a raw HTTP/1.1 client

class Response:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.raw_headers: list[tuple[str, str]] = []
        self.body = b""
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode("latin-1")
        self.raw_headers.append((name.decode().lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done = True

    def json(self):
        import json
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.headers} {self.body[:200]!r}>"


class RawClient:
    """Keep-alive HTTP/1.1 over one socket; `request()` sends bytes and reads one response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, ssl=None, server_hostname=None) -> "RawClient":
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=ssl, server_hostname=server_hostname), WAIT)
        return cls(r, w)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_response(self, timeout: float = WAIT, head: bool = False) -> Response:
        resp = Response()
        parser = httptools.HttpResponseParser(resp)
        async def read() -> None:
            while not resp.done:
                data = await self.reader.read(65536)
                if not data:
                    break
                parser.feed_data(data)
                if head and resp.headers and not resp.body and resp.status == 0:
                    pass
        await asyncio.wait_for(read(), timeout)
        resp.status = parser.get_status_code()
        return resp

    async def request(self, method: str, url: str, headers: dict | None = None, body: bytes = b"",
                      timeout: float = WAIT) -> Response:
        host = url.split("://", 1)[-1].split("/", 1)[0]
        lines = [f"{method} {url} HTTP/1.1"]
        if not any(k.lower() == "host" for k in (headers or {})):
            lines.append(f"host: {host}")
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        if body or method in ("POST", "PUT"):
            lines.append(f"content-length: {len(body)}")
        await self.send_raw(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return await self.read_response(timeout)

    async def closed(self, timeout: float = WAIT) -> bool:
        """True once the proxy closed the connection (reads until EOF, bounded)."""
        try:
            while True:
                data = await asyncio.wait_for(self.reader.read(65536), timeout)
                if not data:
                    return True
        except ConnectionError:
            return True
        except asyncio.TimeoutError:
            return False

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def proxy_get(port: int, url: str, headers: dict | None = None, method: str = "GET", body: bytes = b"",
                    timeout: float = WAIT) -> Response:
    """One request through an explicit HTTP proxy listener (absolute-form target)."""
    c = await RawClient.connect(port)
    try:
        return await c.request(method, url, headers, body, timeout)
    finally:
        await c.close()
