"""Bodies through the proxy: large downloads/uploads with backpressure, body replay on
retry, HTTP/2 clients to HTTP/1.1 backends."""
from __future__ import annotations

import asyncio
import hashlib

from aiohttp import web

from tests.proxy.runtime.h2util import H2Client
from tests.proxy.runtime.helpers import Backend, RawClient, build_snapshot, dataplane, proxy_get, service_entry

URL = "http://backend.default.svc.cluster.local:9080"
HOST = "backend.default.svc.cluster.local:9080"
BIG = 8 * 1024 * 1024


async def _big_handler(req: web.Request) -> web.StreamResponse:
    if req.method == "POST":
        body = await req.read()  # (the Backend already read it)
        return web.json_response({"size": len(body), "sha": hashlib.sha256(body).hexdigest()})
    resp = web.StreamResponse()
    resp.content_length = BIG
    await resp.prepare(req)
    chunk = b"z" * 65536
    for _ in range(BIG // len(chunk)):
        await resp.write(chunk)
    return resp


async def test_large_download_with_slow_reader_and_large_upload():
    b = await Backend("big", _big_handler).start()
    snap, ports = build_snapshot(service_entry("backend", b.port))
    try:
        async with dataplane(snap):
            c = await RawClient.connect(ports["http_proxy"])
            await c.send_raw(f"GET {URL}/big HTTP/1.1\r\nhost: {HOST}\r\n\r\n".encode())
            head = await asyncio.wait_for(c.reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200") and f"content-length: {BIG}".encode() in head.lower()
            got = 0
            while got < BIG:
                data = await asyncio.wait_for(c.reader.read(1 << 20), 10)
                assert data
                got += len(data)
                if got < BIG // 2:
                    await asyncio.sleep(0.01)  # a slow reader: the proxy must hold back, not buffer 8 MiB
            await c.close()
            payload = bytes(range(256)) * (4 * 1024 * 4)  # 4 MiB
            r = await proxy_get(ports["http_proxy"], f"{URL}/up", method="POST", body=payload, timeout=15)
            assert r.status == 200 and r.json() == {"size": len(payload), "sha": hashlib.sha256(payload).hexdigest()}
    finally:
        await b.stop()


async def test_post_body_replayed_on_retry():
    calls = []

    async def flaky(req: web.Request) -> web.Response:
        body = await req.read()
        calls.append(body)
        if len(calls) == 1:
            return web.Response(status=503, text="try again")
        return web.Response(text=f"got {len(body)}")

    b = await Backend("flaky", flaky).start()
    snap, ports = build_snapshot(service_entry("backend", b.port))  # mesh default retries 503 (retriable-status-codes)
    try:
        async with dataplane(snap):
            r = await proxy_get(ports["http_proxy"], f"{URL}/post", method="POST", body=b"x" * 5000)
            assert (r.status, r.body) == (200, b"got 5000")
            assert calls == [b"x" * 5000, b"x" * 5000]
    finally:
        await b.stop()


async def test_http2_client_to_http1_backend_with_body():
    b = await Backend("h1").start()
    snap, ports = build_snapshot(service_entry("backend", b.port))
    try:
        async with dataplane(snap):
            client = await H2Client.connect(ports["http_proxy"])
            results = await asyncio.gather(*(client.request("POST", HOST, f"/h2/{i}", [("content-type", "text/plain")],
                                                            b"payload-%d" % i * 1000) for i in range(5)))
            await client.close()
            for i, (head, body, _) in enumerate(results):
                assert head[":status"] == "200"
                import json
                seen = json.loads(body)
                assert seen["path"] == f"/h2/{i}" and seen["body"] == ("payload-%d" % i) * 1000
    finally:
        await b.stop()
