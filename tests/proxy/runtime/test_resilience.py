"""Retries, timeouts, faults, CORS, mirroring and outlier ejection, as traffic."""
from __future__ import annotations

import asyncio
import time

from aiohttp import web

from tests.proxy.runtime.helpers import Backend, RawClient, build_snapshot, dataplane, proxy_get, service_entry

URL = "http://backend.default.svc.cluster.local:9080"

VS = """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: backend}
spec:
  hosts: [backend.default.svc.cluster.local]
  http:
  - match: [{uri: {prefix: /retry}}]
    retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: backend.default.svc.cluster.local}}]
  - match: [{uri: {prefix: /pertry}}]
    retries: {attempts: 2, retryOn: "5xx,reset", perTryTimeout: 0.2s}
    route: [{destination: {host: backend.default.svc.cluster.local}}]
  - match: [{uri: {prefix: /timeout}}]
    timeout: 0.2s
    route: [{destination: {host: backend.default.svc.cluster.local}}]
  - match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 555, percentage: {value: 100}}}
    route: [{destination: {host: backend.default.svc.cluster.local}}]
  - match: [{uri: {prefix: /delay}}]
    fault: {delay: {fixedDelay: 0.3s, percentage: {value: 100}}}
    route: [{destination: {host: backend.default.svc.cluster.local}}]
  - match: [{uri: {prefix: /cors}}]
    corsPolicy:
      allowOrigins: [{exact: "https://good.example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom]
      exposeHeaders: [x-exposed]
      maxAge: 24h
      allowCredentials: true
    route: [{destination: {host: backend.default.svc.cluster.local}}]
  - match: [{uri: {prefix: /mirror}}]
    mirror: {host: mirror.default.svc.cluster.local}
    mirrorPercentage: {value: 100}
    route: [{destination: {host: backend.default.svc.cluster.local}}]
  - route: [{destination: {host: backend.default.svc.cluster.local}}]
"""


def flaky(fail_first: int, status: int = 503):
    count = {"n": 0}

    async def handler(req: web.Request) -> web.Response:
        count["n"] += 1
        if "/delay/" in req.path:
            await asyncio.sleep(int(req.path.rsplit("/", 1)[1]) / 1000)
        if req.path.startswith("/pertry") and count["n"] <= fail_first:
            await asyncio.sleep(1.0)
        elif count["n"] <= fail_first:
            return web.Response(status=status, text="nope")
        return web.Response(text=f"ok after {count['n']}")
    return count, handler


async def test_retries_until_success_and_exhaustion():
    count, handler = flaky(2)
    b = await Backend("flaky", handler).start()
    snap, ports = build_snapshot(service_entry("backend", b.port) + VS)
    try:
        async with dataplane(snap) as dp:
            r = await proxy_get(ports["http_proxy"], f"{URL}/retry")
            assert (r.status, r.body) == (200, b"ok after 3")
            assert count["n"] == 3
            count["n"] = -10  # now it keeps failing: 1 try + 3 retries, then the last response
            r = await proxy_get(ports["http_proxy"], f"{URL}/retry")
            assert r.status == 503 and r.body == b"nope"
            assert count["n"] == -6
            text = dp.stats.render_prometheus()
            assert 'response_code="503"' in text and 'response_flags="URX"' in text
            cluster = dp.clusters.states["outbound|9080||backend.default.svc.cluster.local"]
            assert cluster.stats.upstream_rq_retry.value == 5
    finally:
        await b.stop()


async def test_per_try_timeout_then_success_and_route_timeout():
    count, handler = flaky(1)
    b = await Backend("slow", handler).start()
    snap, ports = build_snapshot(service_entry("backend", b.port) + VS)
    try:
        async with dataplane(snap) as dp:
            t0 = time.monotonic()
            r = await proxy_get(ports["http_proxy"], f"{URL}/pertry")
            assert r.status == 200 and count["n"] == 2
            assert 0.15 < time.monotonic() - t0 < 0.9
            cluster = dp.clusters.states["outbound|9080||backend.default.svc.cluster.local"]
            assert cluster.stats.upstream_rq_per_try_timeout.value == 1
            t0 = time.monotonic()
            r = await proxy_get(ports["http_proxy"], f"{URL}/timeout/delay/1000")
            assert (r.status, r.body) == (504, b"upstream request timeout")
            assert time.monotonic() - t0 < 0.8
            assert 'response_flags="UT"' in dp.stats.render_prometheus()
    finally:
        await b.stop()


async def test_faults():
    b = await Backend("b").start()
    snap, ports = build_snapshot(service_entry("backend", b.port) + VS)
    try:
        async with dataplane(snap) as dp:
            r = await proxy_get(ports["http_proxy"], f"{URL}/abort")
            assert (r.status, r.body) == (555, b"fault filter abort")
            assert not b.requests
            t0 = time.monotonic()
            r = await proxy_get(ports["http_proxy"], f"{URL}/delay")
            assert r.status == 200 and time.monotonic() - t0 >= 0.28
            text = dp.stats.render_prometheus()
            assert 'response_flags="FI"' in text and 'response_flags="DI"' in text
            r = await proxy_get(ports["http_proxy"], f"{URL}/abort", {"content-type": "application/grpc"})
            assert r.status == 200 and r.headers["grpc-status"] == "2"  # 555 → UNKNOWN, trailers-only
    finally:
        await b.stop()


async def test_cors():
    b = await Backend("b").start()
    snap, ports = build_snapshot(service_entry("backend", b.port) + VS)
    try:
        async with dataplane(snap):
            port = ports["http_proxy"]
            pre = {"origin": "https://good.example", "access-control-request-method": "POST"}
            r = await proxy_get(port, f"{URL}/cors", pre, method="OPTIONS")
            assert r.status == 200 and not b.requests  # answered by the proxy
            assert r.headers["access-control-allow-origin"] == "https://good.example"
            assert r.headers["access-control-allow-methods"] == "GET,POST"
            assert r.headers["access-control-allow-headers"] == "x-custom"
            assert r.headers["access-control-max-age"] == "86400"
            assert r.headers["access-control-allow-credentials"] == "true"
            r = await proxy_get(port, f"{URL}/cors", {"origin": "https://good.example"})
            assert r.status == 200 and r.headers["access-control-allow-origin"] == "https://good.example"
            assert r.headers["access-control-expose-headers"] == "x-exposed"
            r = await proxy_get(port, f"{URL}/cors", {"origin": "https://evil.example"})
            assert "access-control-allow-origin" not in r.headers
            bad = {"origin": "https://evil.example", "access-control-request-method": "POST"}
            r = await proxy_get(port, f"{URL}/cors", bad, method="OPTIONS")
            assert r.status == 200 and "access-control-allow-origin" not in r.headers
    finally:
        await b.stop()


async def test_mirror_gets_shadow_host():
    main, mirror = await Backend("main").start(), await Backend("mirror").start()
    yaml = service_entry("backend", main.port) + "---" + service_entry("mirror", mirror.port) + VS
    snap, ports = build_snapshot(yaml)
    try:
        async with dataplane(snap):
            r = await proxy_get(ports["http_proxy"], f"{URL}/mirror/x", method="POST", body=b"payload")
            assert r.status == 200 and r.json()["backend"] == "main"
            for _ in range(100):
                if mirror.requests:
                    break
                await asyncio.sleep(0.02)
            seen = mirror.requests[0]
            assert seen["host"] == "backend.default.svc.cluster.local-shadow:9080"
            assert seen["body"] == b"payload" and seen["path"] == "/mirror/x"
    finally:
        await main.stop()
        await mirror.stop()


async def test_outlier_ejection_after_consecutive_5xx():
    async def broken(req):
        return web.Response(status=500, text="broken")

    bad, good = await Backend("bad", broken).start(), await Backend("good").start()
    dr = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: backend}
spec:
  host: backend.default.svc.cluster.local
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}
"""
    snap, ports = build_snapshot(service_entry("backend", bad.port, extra_endpoints=(good.port,)) + dr)
    try:
        async with dataplane(snap) as dp:
            statuses = [(await proxy_get(ports["http_proxy"], f"{URL}/")).status for _ in range(8)]
            assert statuses.count(500) == 2  # then the bad host is ejected
            assert statuses[-3:] == [200, 200, 200]
            cluster = dp.clusters.states["outbound|9080||backend.default.svc.cluster.local"]
            ejected = [h for h in cluster.host_set.hosts if h.ejected]
            assert [h.port for h in ejected] == [bad.port]
            assert "failed_outlier_check" in dp.clusters_text()
    finally:
        await bad.stop()
        await good.stop()


def test_pool_idle_timeout_caps_plaintext_upstreams_only():
    from isthmus.proxy.runtime.upstream import PLAINTEXT_IDLE_CAP, pool_idle_timeout

    # Apps' servers close idle keep-alive connections early: close ours first.
    assert pool_idle_timeout(3600.0, tls=False) == PLAINTEXT_IDLE_CAP
    assert pool_idle_timeout(None, tls=False) == PLAINTEXT_IDLE_CAP
    assert pool_idle_timeout(2.0, tls=False) == 2.0
    # mTLS to another sidecar (or TLS origination): keep the configured timeout, no re-handshakes.
    assert pool_idle_timeout(3600.0, tls=True) == 3600.0
    assert pool_idle_timeout(None, tls=True) is None
    assert pool_idle_timeout(2.0, tls=True) == 2.0


def _with_route_action(snap, **fields):
    """The snapshot with every route action's `fields` set (protobuf paths → Duration text)."""
    from google.protobuf import json_format

    from isthmus.proxy.config.routes import ROUTE_TYPE_URL

    routes = {}
    for name, rc in snap.resources.get(ROUTE_TYPE_URL, {}).items():
        rc = type(rc).FromString(rc.SerializeToString())
        for vh in rc.virtual_hosts:
            for r in vh.routes:
                if r.HasField("route"):
                    json_format.ParseDict(fields, r.route)
        routes[name] = rc
    return snap.with_update(ROUTE_TYPE_URL, routes, version="2")


async def test_route_max_stream_duration_answers_504_as_envoy_does():
    b = await Backend("b").start()
    snap, ports = build_snapshot(service_entry("backend", b.port))
    snap = _with_route_action(snap, maxStreamDuration={"maxStreamDuration": "0.3s"})
    try:
        async with dataplane(snap) as dp:
            t0 = time.monotonic()
            r = await proxy_get(ports["http_proxy"], URL + "/delay/3000")
            # Envoy 1.40 (checked by hand): 504 for a request received whole, body as here, no response flag
            assert r.status == 504 and r.body == b"downstream duration timeout"
            assert 0.25 < time.monotonic() - t0 < 2.0
            assert (await proxy_get(ports["http_proxy"], URL + "/quick")).status == 200  # under the limit: served
            # A request still arriving when the time runs out: 408 (Envoy's maybeRequestTimeoutCode).
            c = await RawClient.connect(ports["http_proxy"])
            await c.send_raw(f"POST {URL}/slow HTTP/1.1\r\nhost: backend.default.svc.cluster.local:9080\r\n"
                             "content-length: 10\r\n\r\n12".encode())
            partial = await c.read_response(timeout=3.0)
            await c.close()
            assert partial.status == 408 and partial.body == b"downstream duration timeout"
            text = dp.stats.render_text()
            reached = [line for line in text.splitlines() if line.startswith("http.downstream_rq_max_duration_reached.")]
            assert reached and any(line.endswith(": 2") for line in reached), reached
    finally:
        await b.stop()


async def test_route_idle_timeout_overrides_the_hcm_stream_idle_timeout():
    b = await Backend("b").start()
    snap, ports = build_snapshot(service_entry("backend", b.port))
    snap = _with_route_action(snap, idleTimeout="0.5s")
    try:
        async with dataplane(snap):
            t0 = time.monotonic()
            r = await proxy_get(ports["http_proxy"], URL + "/delay/4000")
            assert r.status == 504 and r.body == b"stream timeout"  # Envoy: 504 SI once the request is whole
            assert 0.4 < time.monotonic() - t0 < 3.0  # checked once a second
    finally:
        await b.stop()
