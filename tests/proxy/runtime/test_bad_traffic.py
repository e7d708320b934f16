"""Malformed, oversized, slow and smuggling requests get Envoy's answers — and nobody
else on the proxy notices."""
from __future__ import annotations

import asyncio

import pytest

from tests.proxy.runtime.helpers import Backend, RawClient, build_snapshot, dataplane, proxy_get, service_entry

URL = "http://backend.default.svc.cluster.local:9080"
HOST = "host: backend.default.svc.cluster.local:9080\r\n"


@pytest.fixture
async def proxy():
    b = await Backend("b").start()
    snap, ports = build_snapshot(service_entry("backend", b.port))
    async with dataplane(snap, request_headers_timeout=0.5) as dp:
        yield dp, ports["http_proxy"], b
    await b.stop()


async def _raw(port: int, data: bytes):
    c = await RawClient.connect(port)
    await c.send_raw(data)
    r = await c.read_response()
    closed = await c.closed(2.0)
    await c.close()
    return r, closed


async def test_malformed_is_400_and_closes(proxy):
    dp, port, b = proxy
    r, closed = await _raw(port, b"GET /\x01 nonsense\r\n\r\n")
    assert r.status == 400 and closed
    r, closed = await _raw(port, b"BLAH\r\n\r\n")
    assert r.status == 400 and closed
    assert not b.requests


async def test_huge_headers_are_431(proxy):
    dp, port, b = proxy
    big = "x-big: " + "a" * (70 * 1024) + "\r\n"
    r, closed = await _raw(port, f"GET {URL}/ HTTP/1.1\r\n{HOST}{big}\r\n".encode())
    assert r.status == 431 and closed
    assert not b.requests


async def test_smuggling_is_400(proxy):
    dp, port, b = proxy
    req = (f"POST {URL}/ HTTP/1.1\r\n{HOST}content-length: 4\r\ntransfer-encoding: chunked\r\n\r\n"
           "0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n").encode()
    r, closed = await _raw(port, req)
    assert r.status == 400 and closed
    assert not b.requests


async def test_slow_headers_408_while_others_are_served(proxy):
    dp, port, b = proxy
    slow = await RawClient.connect(port)
    await slow.send_raw(f"GET {URL}/ HTTP/1.1\r\n{HOST}x-partial: yes".encode())
    # Meanwhile another connection is served as usual.
    r = await proxy_get(port, f"{URL}/fine")
    assert r.status == 200
    r = await slow.read_response(timeout=3.0)
    assert r.status == 408 and r.body == b"request header timeout"
    assert await slow.closed(2.0)
    await slow.close()
    assert [x["path"] for x in b.requests] == ["/fine"]


async def test_pipelined_requests_answered_in_order(proxy):
    dp, port, b = proxy
    c = await RawClient.connect(port)
    await c.send_raw(b"".join(f"GET {URL}/p{i} HTTP/1.1\r\n{HOST}\r\n".encode() for i in range(3)))
    paths = [(await c.read_response()).json()["path"] for _ in range(3)]
    await c.close()
    assert paths == ["/p0", "/p1", "/p2"]


async def test_client_going_away_mid_request_is_dc(proxy):
    dp, port, b = proxy
    c = await RawClient.connect(port)
    await c.send_raw(f"POST {URL}/upload HTTP/1.1\r\n{HOST}content-length: 100\r\n\r\nonly part".encode())
    await asyncio.sleep(0.2)
    await c.close()
    for _ in range(50):
        if 'response_flags="DC"' in dp.stats.render_prometheus():
            break
        await asyncio.sleep(0.05)
    assert 'response_flags="DC"' in dp.stats.render_prometheus()
