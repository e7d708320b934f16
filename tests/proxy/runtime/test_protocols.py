"""HTTP/2 with gRPC trailers end to end, gRPC local replies, and WebSocket upgrades."""
from __future__ import annotations

import asyncio
import base64
import os
import struct

from aiohttp import web

from tests.proxy.runtime.h2util import GrpcServer, H2Client
from tests.proxy.runtime.helpers import Backend, RawClient, build_snapshot, dataplane, free_port, service_entry

GRPC_HOST = "greeter.default.svc.cluster.local:9080"


async def test_http2_grpc_trailers_end_to_end():
    server = await GrpcServer().start()
    snap, ports = build_snapshot(service_entry("greeter", server.port, protocol="GRPC"))
    try:
        async with dataplane(snap) as dp:
            cluster = dp.clusters.states["outbound|9080||greeter.default.svc.cluster.local"]
            assert cluster.config.http.protocol == "http2"
            client = await H2Client.connect(ports["http_proxy"])
            message = b"\x00\x00\x00\x00\x05hello"
            for status in ("0", "7"):
                head, body, trailers = await client.request(
                    "POST", GRPC_HOST, "/greet.Greeter/Hello",
                    [("content-type", "application/grpc"), ("te", "trailers"), ("x-status", status)], message)
                assert head[":status"] == "200" and body == message
                assert trailers["grpc-status"] == status and trailers["grpc-message"] == "fine"
            await client.close()
            seen = server.requests[0]["headers"]
            assert seen[":authority"] == GRPC_HOST and seen["te"] == "trailers"
            text = dp.stats.render_prometheus()
            assert 'request_protocol="grpc"' in text and 'grpc_response_status="7"' in text
    finally:
        await server.stop()


async def test_grpc_local_reply_is_trailers_only():
    snap, ports = build_snapshot(service_entry("greeter", free_port(), protocol="GRPC"))
    async with dataplane(snap):
        client = await H2Client.connect(ports["http_proxy"])
        head, body, trailers = await client.request("POST", GRPC_HOST, "/greet.Greeter/Hello",
                                                    [("content-type", "application/grpc")], b"\x00\x00\x00\x00\x00")
        await client.close()
        assert head[":status"] == "200" and head["grpc-status"] == "14" and body == b""  # UNAVAILABLE
        assert "upstream connect error" in head["grpc-message"]


async def test_http1_client_to_http2_upstream():
    server = await GrpcServer().start()
    snap, ports = build_snapshot(service_entry("greeter", server.port, protocol="GRPC"))
    try:
        async with dataplane(snap):
            c = await RawClient.connect(ports["http_proxy"])
            r = await c.request("POST", f"http://{GRPC_HOST}/x", {"content-type": "application/grpc"}, b"\x00\x00\x00\x00\x00")
            await c.close()
            assert r.status == 200 and r.body == b"\x00\x00\x00\x00\x00"
    finally:
        await server.stop()


def _ws_frame(payload: bytes, opcode: int = 1) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


async def _read_ws_frame(reader: asyncio.StreamReader) -> bytes:
    b0, b1 = await asyncio.wait_for(reader.readexactly(2), 5)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    return await reader.readexactly(n)


def _set_websocket(listeners, enabled: bool) -> None:
    from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
    for lis in listeners:
        for chain in lis.filter_chains:
            for f in chain.filters:
                if f.typed_config.type_url.endswith("HttpConnectionManager"):
                    hcm = hcm_pb2.HttpConnectionManager()
                    f.typed_config.Unpack(hcm)
                    del hcm.upgrade_configs[:]
                    if enabled:
                        hcm.upgrade_configs.add(upgrade_type="websocket")
                    f.typed_config.Pack(hcm)


def _enable_websocket(listeners, clusters) -> None:
    _set_websocket(listeners, True)


def _disable_websocket(listeners, clusters) -> None:
    _set_websocket(listeners, False)


async def test_websocket_upgrade_echo():
    async def ws(req: web.Request):
        sock = web.WebSocketResponse()
        await sock.prepare(req)
        async for msg in sock:
            await sock.send_str("echo: " + msg.data)
        return sock

    b = await Backend("ws", ws).start()
    snap, ports = build_snapshot(service_entry("backend", b.port), mutate=_enable_websocket)
    try:
        async with dataplane(snap):
            c = await RawClient.connect(ports["http_proxy"])
            key = base64.b64encode(os.urandom(16)).decode()
            await c.send_raw((f"GET http://backend.default.svc.cluster.local:9080/ws HTTP/1.1\r\n"
                              f"host: backend.default.svc.cluster.local:9080\r\nupgrade: websocket\r\n"
                              f"connection: Upgrade\r\nsec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n\r\n").encode())
            head = await asyncio.wait_for(c.reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 101"), head
            assert b"sec-websocket-accept" in head.lower()
            for text in ("hello", "again"):
                c.writer.write(_ws_frame(text.encode()))
                assert await _read_ws_frame(c.reader) == f"echo: {text}".encode()
            await c.close()
    finally:
        await b.stop()


async def test_websocket_refused_without_upgrade_config():
    b = await Backend("plain").start()
    snap, ports = build_snapshot(service_entry("backend", b.port), mutate=_disable_websocket)
    try:
        async with dataplane(snap):
            c = await RawClient.connect(ports["http_proxy"])
            await c.send_raw(b"GET http://backend.default.svc.cluster.local:9080/ws HTTP/1.1\r\n"
                             b"host: backend.default.svc.cluster.local:9080\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n")
            r = await c.read_response()
            await c.close()
            assert r.status == 403 and not b.requests
    finally:
        await b.stop()
