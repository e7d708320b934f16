"""Explicit-mode (HTTP_PROXY) requests routed by VirtualServices, through real sockets."""
from __future__ import annotations

import asyncio

import pytest

from tests.proxy.runtime.helpers import Backend, build_snapshot, dataplane, free_port, proxy_get, service_entry

URL = "http://backend.default.svc.cluster.local:9080"

VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: backend}
spec:
  hosts: [backend.default.svc.cluster.local]
  http:
  - match: [{uri: {prefix: /redirect}}]
    redirect: {uri: /moved, authority: elsewhere.example.com}
  - match: [{uri: {prefix: /direct}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
  - match: [{uri: {prefix: /old/}}]
    rewrite: {uri: /new/}
    route: [{destination: {host: backend.default.svc.cluster.local}}]
  - match: [{uri: {prefix: /split}}]
    route:
    - {destination: {host: backend.default.svc.cluster.local}, weight: 50}
    - {destination: {host: other.default.svc.cluster.local}, weight: 50}
  - match: [{uri: {prefix: /api}}]
    headers:
      request: {set: {x-set: "yes"}, add: {x-added: "1"}, remove: [x-drop-me]}
      response: {set: {x-resp: hello}, remove: [x-backend-secret]}
    route: [{destination: {host: backend.default.svc.cluster.local}}]
"""


@pytest.fixture
async def backends():
    a, b = await Backend("a").start(), await Backend("b").start()
    yield a, b
    await a.stop()
    await b.stop()


async def test_request_reaches_backend_with_envoy_headers(backends):
    a, _ = backends
    snap, ports = build_snapshot(service_entry("backend", a.port))
    async with dataplane(snap) as dp:
        assert dp.ready
        r = await proxy_get(ports["http_proxy"], f"{URL}/hello?q=1", {"x-request-id": "abc-123"})
        assert r.status == 200, r
        seen = r.json()
        assert seen["path"] == "/hello?q=1"
        h = {k.lower(): v for k, v in seen["headers"].items()}
        assert h["host"] == "backend.default.svc.cluster.local:9080"
        assert h["x-request-id"] == "abc-123"  # propagated, never rewritten
        assert h["x-forwarded-proto"] == "http"
        assert h["x-envoy-attempt-count"] == "1"
        assert "x-envoy-peer-metadata" not in h  # metadata exchange only with mesh (mTLS) peers
        assert "x-envoy-upstream-service-time" in r.headers
        assert r.headers["server"].startswith("Python")  # upstream's server header passes through
        r2 = await proxy_get(ports["http_proxy"], f"{URL}/again", {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"})
        h2 = {k.lower(): v for k, v in r2.json()["headers"].items()}
        assert len(h2["x-request-id"]) == 36  # generated UUID4
        assert h2["traceparent"] == "00-" + "a" * 32 + "-" + "b" * 16 + "-01"


async def test_virtual_service_features(backends):
    a, b = backends
    yaml = service_entry("backend", a.port) + "---" + service_entry("other", b.port) + "---" + VS
    snap, ports = build_snapshot(yaml)
    async with dataplane(snap):
        port = ports["http_proxy"]
        r = await proxy_get(port, f"{URL}/redirect/x?y=1")
        assert r.status == 301
        assert r.headers["location"] == "http://elsewhere.example.com/moved?y=1"
        assert r.headers["server"] == "isthmus"
        r = await proxy_get(port, f"{URL}/direct")
        assert (r.status, r.body, r.headers["content-type"]) == (418, b"short and stout", "text/plain")
        r = await proxy_get(port, f"{URL}/old/thing?z=2")
        assert r.status == 200
        seen = r.json()
        assert seen["path"] == "/new/thing?z=2"
        assert {k.lower(): v for k, v in seen["headers"].items()}["x-envoy-original-path"] == "/old/thing?z=2"
        r = await proxy_get(port, f"{URL}/api", {"x-drop-me": "1", "x-added": "0"})
        h = {k.lower(): v for k, v in r.json()["headers"].items()}
        assert h["x-set"] == "yes" and "x-drop-me" not in h
        assert r.headers["x-resp"] == "hello"
        picked = {(await proxy_get(port, f"{URL}/split")).json()["backend"] for _ in range(40)}
        assert picked == {"a", "b"}


async def test_no_route_is_404_nr(backends):
    a, _ = backends
    vs = VS.replace("  - match: [{uri: {prefix: /api}}]", "  - match: [{uri: {exact: /api}}]")
    snap, ports = build_snapshot(service_entry("backend", a.port) + "---" + service_entry("other", a.port) + "---" + vs)
    async with dataplane(snap) as dp:
        r = await proxy_get(ports["http_proxy"], f"{URL}/nowhere")
        assert r.status == 404 and r.body == b""
        assert not any(k.startswith("x-envoy") for k in r.headers)
        assert dp.stats.counter("http.no_route", (("http_conn_manager_prefix", "outbound_http_proxy"),)).value == 1
        text = dp.stats.render_prometheus()
        assert 'response_code="404"' in text and 'response_flags="NR"' in text


async def test_upstream_failures_uh_uf():
    dead = free_port()
    yaml = service_entry("backend", dead)
    snap, ports = build_snapshot(yaml)
    async with dataplane(snap) as dp:
        r = await proxy_get(ports["http_proxy"], f"{URL}/")
        assert r.status == 503
        assert r.body.startswith(b"upstream connect error or disconnect/reset before headers.")
        assert b"connection failure" in r.body
        assert 'response_flags="UF,URX"' in dp.stats.render_prometheus()
        # the mesh default retries connect failures twice: three attempts in all
        cluster = dp.clusters.states["outbound|9080||backend.default.svc.cluster.local"]
        assert cluster.stats.upstream_cx_connect_fail.value == 3
    # No endpoint at all: UH.
    yaml = service_entry("backend", dead).replace("endpoints: [{address: 127.0.0.1, ports: {p: %d}}]" % dead,
                                                  "workloadSelector: {labels: {app: nothing}}")
    snap, ports = build_snapshot(yaml)
    async with dataplane(snap) as dp:
        r = await proxy_get(ports["http_proxy"], f"{URL}/")
        assert (r.status, r.body) == (503, b"no healthy upstream")
        assert 'response_flags="UH"' in dp.stats.render_prometheus()


async def test_overflow_is_503_uo():
    release = asyncio.Event()

    async def slow(req):
        from aiohttp import web
        await asyncio.wait_for(release.wait(), 5)
        return web.Response(text="done")

    b = await Backend("slow", slow).start()
    dr = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: backend}
spec:
  host: backend.default.svc.cluster.local
  trafficPolicy: {connectionPool: {http: {http2MaxRequests: 1}}}
"""
    snap, ports = build_snapshot(service_entry("backend", b.port) + dr)
    try:
        async with dataplane(snap) as dp:
            first = asyncio.create_task(proxy_get(ports["http_proxy"], f"{URL}/slow"))
            for _ in range(100):
                if b.requests:
                    break
                await asyncio.sleep(0.02)
            r = await proxy_get(ports["http_proxy"], f"{URL}/second")
            assert r.status == 503 and b"overflow" in r.body, r
            assert 'response_flags="UO"' in dp.stats.render_prometheus()
            release.set()
            assert (await first).status == 200
    finally:
        await b.stop()


async def test_passthrough_goes_to_the_requested_authority(backends):
    a, _ = backends
    snap, ports = build_snapshot(service_entry("backend", a.port))
    async with dataplane(snap) as dp:
        r = await proxy_get(ports["http_proxy"], f"http://127.0.0.1:{a.port}/outside")
        assert r.status == 200 and r.json()["path"] == "/outside"
        r = await proxy_get(ports["http_proxy"], f"http://localhost:{a.port}/by-name")
        assert r.status == 200 and r.json()["path"] == "/by-name"
        text = dp.clusters_text()
        assert f"PassthroughCluster::127.0.0.1:{a.port}::rq_total::2" in text


async def test_istio_request_metric_labels(backends):
    a, _ = backends
    snap, ports = build_snapshot(service_entry("backend", a.port))
    async with dataplane(snap) as dp:
        await proxy_get(ports["http_proxy"], f"{URL}/x")
        [(labels, value)] = [(dict(labels), v) for name, labels, v in dp.stats.counters() if name == "istio_requests_total"]
        assert value == 1
        assert labels == {
            "reporter": "source", "source_workload": "productpage-v1", "source_canonical_service": "productpage",
            "source_canonical_revision": "v1", "source_workload_namespace": "default", "source_principal": "unknown",
            "source_app": "productpage", "source_version": "v1", "source_cluster": "Kubernetes",
            "destination_workload": "backend-0", "destination_workload_namespace": "default",
            "destination_principal": "unknown", "destination_app": "backend-0", "destination_version": "latest",
            "destination_service": "backend.default.svc.cluster.local", "destination_service_name": "backend",
            "destination_service_namespace": "default", "destination_canonical_service": "backend-0",
            "destination_canonical_revision": "latest", "destination_cluster": "Kubernetes", "request_protocol": "http",
            "response_code": "200", "grpc_response_status": "", "response_flags": "-",
            "connection_security_policy": "unknown",
        }
        cluster = (("cluster_name", "outbound|9080||backend.default.svc.cluster.local"),)
        assert dp.stats.counter("cluster.upstream_rq_2xx", cluster).value == 1
        assert dp.stats.counter("cluster.upstream_cx_total", cluster).value == 1
        assert dp.stats.counter("http.downstream_rq_total", (("http_conn_manager_prefix", "outbound_http_proxy"),)).value == 1
