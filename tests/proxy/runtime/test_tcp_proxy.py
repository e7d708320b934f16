"""tcp_proxy as traffic: plain piping, TLS passthrough chosen by SNI, inbound mesh TCP."""
from __future__ import annotations

import asyncio
import ssl

import pytest

from isthmus.pilot.model.proxy import WorkloadPort
from isthmus.proxy.config import Snapshot
from isthmus.proxy.config.clusters import CLUSTER_TYPE_URL
from isthmus.proxy.config.listeners import LISTENER_TYPE_URL
from tests.pilot.fixtures import sidecar
from tests.proxy.config.helpers import chain, cluster, listener, tcp
from tests.proxy.runtime.helpers import WAIT, build_snapshot, dataplane, free_port, pki
from tests.proxy.runtime.test_tls import REVIEWS, STRICT


class Echo:
    """TCP (optionally TLS) server answering each read with `prefix + data`."""

    def __init__(self, prefix: bytes = b"", ssl_ctx=None) -> None:
        self.prefix = prefix
        self.ssl = ssl_ctx
        self.port = 0
        self.server = None

    async def start(self) -> "Echo":
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while data := await r.read(65536):
                w.write(self.prefix + data)
                await w.drain()
            w.close()
        self.server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=self.ssl)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.server.close()


def static_cluster(name: str, port: int):
    return cluster({"name": name, "type": "STATIC", "load_assignment": {"cluster_name": name, "endpoints": [
        {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}})


def snapshot(listener_msg, clusters) -> Snapshot:
    snap = Snapshot().with_update(CLUSTER_TYPE_URL, {c.name: c for c in clusters})
    return snap.with_update(LISTENER_TYPE_URL, {listener_msg.name: listener_msg})


async def talk(port: int, payload: bytes, ssl_ctx=None, sni=None) -> tuple[bytes, object]:
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=ssl_ctx, server_hostname=sni), WAIT)
    w.write(payload)
    data = await asyncio.wait_for(r.read(65536), WAIT)
    peer = w.get_extra_info("peercert") if ssl_ctx else None
    w.close()
    return data, peer


async def test_tcp_proxy_pipes_bytes_and_records_metrics():
    echo = await Echo(b"echo:").start()
    port = free_port()
    lis = listener([chain("tcp", filter_config=tcp("backend"))],
                   address={"socket_address": {"address": "127.0.0.1", "port_value": port}})
    try:
        async with dataplane(snapshot(lis, [static_cluster("backend", echo.port)])) as dp:
            data, _ = await talk(port, b"hello")
            assert data == b"echo:hello"
            big = b"x" * 300_000  # more than one socket buffer, both ways
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(big)
            got = b""
            while len(got) < len(big) + 5:
                got += await asyncio.wait_for(r.read(1 << 20), WAIT)
            w.close()
            assert got.replace(b"echo:", b"") == big
            for _ in range(50):
                if "istio_tcp_connections_closed_total" in dp.stats.render_prometheus():
                    break
                await asyncio.sleep(0.05)
            text = dp.stats.render_prometheus()
            assert "istio_tcp_connections_opened_total" in text and "istio_tcp_received_bytes_total" in text
    finally:
        await echo.stop()


def _tls_server(name: str) -> ssl.SSLContext:
    import os
    import tempfile
    chain_pem, key = pki().issue(dns=(name,))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    fd, path = tempfile.mkstemp()
    os.write(fd, chain_pem + key)
    os.close(fd)
    ctx.load_cert_chain(path)
    os.unlink(path)
    return ctx


async def test_tls_passthrough_by_sni():
    a = await Echo(b"A:", _tls_server("a.example")).start()
    b = await Echo(b"B:", _tls_server("b.example")).start()
    port = free_port()
    lis = listener(
        [chain("a", {"server_names": ["a.example"]}, tcp("a")), chain("b", {"server_names": ["b.example"]}, tcp("b"))],
        address={"socket_address": {"address": "127.0.0.1", "port_value": port}},
        listener_filters=[{"name": "envoy.filters.listener.tls_inspector", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}])
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cadata=pki().root_pem.decode())
    try:
        async with dataplane(snapshot(lis, [static_cluster("a", a.port), static_cluster("b", b.port)])):
            data, cert = await talk(port, b"hi", client, "a.example")
            assert data == b"A:hi" and ("DNS", "a.example") in cert["subjectAltName"]
            data, cert = await talk(port, b"hi", client, "b.example")
            assert data == b"B:hi" and ("DNS", "b.example") in cert["subjectAltName"]
            with pytest.raises((ConnectionError, ssl.SSLError)):  # no chain for that name: closed
                await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="c.example"), WAIT)
    finally:
        await a.stop()
        await b.stop()


async def test_inbound_tcp_with_strict_mtls():
    echo = await Echo(b"db:").start()
    proxy = sidecar(name="reviews-v1", service_account="reviews", labels={"app": "reviews", "version": "v1"},
                    ports=(WorkloadPort(port=echo.port, name="tcp", protocol="TCP", proxy_port=15080),))
    snap, ports = build_snapshot(STRICT, proxy=proxy)
    try:
        async with dataplane(snap, secrets=pki().secrets("reviews"), node=REVIEWS) as dp:
            port = next(p for n, p in ports.items() if n.endswith("_15080"))
            data, _ = await talk(port, b"select 1", pki().client_context("productpage", alpn=()), "reviews")
            assert data == b"db:select 1"
            for _ in range(50):
                if "istio_tcp_connections_closed_total" in dp.stats.render_prometheus():
                    break
                await asyncio.sleep(0.05)
            text = dp.stats.render_prometheus()
            assert 'connection_security_policy="mutual_tls"' in text and 'reporter="destination"' in text
    finally:
        await echo.stop()
