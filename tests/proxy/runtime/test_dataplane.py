"""DataPlane lifecycle: snapshot swaps, state carried over, bind errors, status, access
logs, drain, DNS clusters, original-destination hand-off."""
from __future__ import annotations

import asyncio
import json
import socket

from aiohttp import web

from isthmus.proxy.config.endpoints import ENDPOINT_TYPE_URL
from isthmus.proxy.runtime import DataPlane
from isthmus.proxy.stats import Stats
from tests.proxy.runtime.helpers import (NODE, Backend, RawClient, build_snapshot, dataplane, pki, proxy_get,
                                         service_entry)

URL = "http://backend.default.svc.cluster.local:9080"
DIRECT = """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: backend}
spec:
  hosts: [backend.default.svc.cluster.local]
  http: [{directResponse: {status: 299, body: {string: "new config"}}}]
"""


async def test_swap_in_flight_request_finishes_new_requests_see_new_routes():
    release = asyncio.Event()

    async def slow(req):
        if req.path == "/slow":
            await asyncio.wait_for(release.wait(), 5)
        return web.Response(text="old config")

    b = await Backend("b", slow).start()
    snap, ports = build_snapshot(service_entry("backend", b.port))
    try:
        async with dataplane(snap) as dp:
            port = ports["http_proxy"]
            keep = await RawClient.connect(port)
            assert (await keep.request("GET", f"{URL}/first")).status == 200
            state = dp.clusters.states["outbound|9080||backend.default.svc.cluster.local"]
            in_flight = asyncio.create_task(proxy_get(port, f"{URL}/slow"))
            for _ in range(100):
                if any(r["path"] == "/slow" for r in b.requests):
                    break
                await asyncio.sleep(0.02)
            new_snap, _ = build_snapshot(service_entry("backend", b.port) + DIRECT)
            new_snap = new_snap.with_update(  # same listener address as before
                "type.googleapis.com/envoy.config.listener.v3.Listener", dict(snap.resources[
                    "type.googleapis.com/envoy.config.listener.v3.Listener"]))
            assert await dp.apply(new_snap) == []
            r = await proxy_get(port, f"{URL}/after")
            assert (r.status, r.body) == (299, b"new config")
            # As in Envoy, new requests on an existing connection see the new routes (RDS).
            assert (await keep.request("GET", f"{URL}/old-conn")).body == b"new config"
            # A listener change drains that listener's connections (this one is idle: closed).
            changed = dict(new_snap.resources["type.googleapis.com/envoy.config.listener.v3.Listener"])
            lis = type(changed["http_proxy"]).FromString(changed["http_proxy"].SerializeToString())
            lis.listener_filters_timeout.seconds = 7
            changed["http_proxy"] = lis
            assert await dp.apply(new_snap.with_update("type.googleapis.com/envoy.config.listener.v3.Listener", changed)) == []
            assert await keep.closed(2.0)
            await keep.close()
            release.set()
            r = await in_flight
            assert (r.status, r.body) == (200, b"old config")
            assert dp.clusters.states["outbound|9080||backend.default.svc.cluster.local"] is state  # unchanged: kept
    finally:
        await b.stop()


async def test_eds_update_keeps_host_state():
    a, b = await Backend("a").start(), await Backend("b").start()
    snap, ports = build_snapshot(service_entry("backend", a.port))
    try:
        async with dataplane(snap) as dp:
            await proxy_get(ports["http_proxy"], f"{URL}/x")
            state = dp.clusters.states["outbound|9080||backend.default.svc.cluster.local"]
            host_a = state.host_set.hosts[0]
            snap2, _ = build_snapshot(service_entry("backend", a.port, extra_endpoints=(b.port,)))
            eds = snap2.resources[ENDPOINT_TYPE_URL]
            assert await dp.apply(snap.with_update(ENDPOINT_TYPE_URL, dict(eds))) == []
            assert dp.clusters.states["outbound|9080||backend.default.svc.cluster.local"] is state
            assert state.host_set.get(host_a.address, host_a.port) is host_a and len(state.host_set.hosts) == 2
            assert state.info[host_a].rq_total == 1
            seen = {(await proxy_get(ports["http_proxy"], f"{URL}/y")).json()["backend"] for _ in range(20)}
            assert seen == {"a", "b"}
            assert f"127.0.0.1:{b.port}::rq_total::" in dp.clusters_text()
    finally:
        await a.stop()
        await b.stop()


async def test_bind_error_is_reported_and_not_ready():
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]

    def clash(listeners, clusters):
        for lis in listeners:
            if lis.name == "http_proxy":
                lis.address.socket_address.port_value = port

    snap, _ = build_snapshot(service_entry("backend", 1), mutate=clash)
    dp = DataPlane(Stats(), pki().secrets("bookinfo-productpage"), NODE)
    try:
        errors = await dp.apply(snap)
        assert len(errors) == 1 and "'http_proxy'" in errors[0] and f"127.0.0.1:{port}" in errors[0]
        assert not dp.ready
        status = {s["name"]: s for s in dp.listeners_status()}
        assert not status["http_proxy"]["bound"] and status["http_proxy"]["error"]
        assert any(s["bound"] for s in status.values())
    finally:
        await dp.stop()
        taken.close()


async def test_access_log_json_line(tmp_path):
    path = tmp_path / "access.log"

    def log_to_file(listeners, clusters):
        from envoy.extensions.access_loggers.file.v3 import file_pb2
        from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
        for lis in listeners:
            for chain in lis.filter_chains:
                hcm = hcm_pb2.HttpConnectionManager()
                chain.filters[0].typed_config.Unpack(hcm)
                del hcm.access_log[:]
                fl = file_pb2.FileAccessLog(path=str(path))
                fl.log_format.json_format.update({"code": "%RESPONSE_CODE%", "flags": "%RESPONSE_FLAGS%",
                                                  "cluster": "%UPSTREAM_CLUSTER%", "path": "%REQ(:PATH)%",
                                                  "host": "%UPSTREAM_HOST%", "duration": "%DURATION%"})
                hcm.access_log.add(name="envoy.access_loggers.file").typed_config.Pack(fl)
                chain.filters[0].typed_config.Pack(hcm)

    b = await Backend("b").start()
    snap, ports = build_snapshot(service_entry("backend", b.port) + DIRECT.replace("299", "404").replace(
        "http: [{directResponse", "http: [{match: [{uri: {prefix: /nothing}}], directResponse"), mutate=log_to_file)
    try:
        async with dataplane(snap) as dp:
            await proxy_get(ports["http_proxy"], f"{URL}/nothing")
            await proxy_get(ports["http_proxy"], f"{URL}/nowhere")
            dp.sinks.flush()
            lines = [json.loads(x) for x in path.read_text().splitlines()]
            assert lines[0]["code"] == 404 and lines[0]["flags"] == "-" and lines[0]["host"] is None
            assert lines[1]["code"] == 404 and lines[1]["flags"] == "NR" and lines[1]["path"] == "/nowhere"
            assert isinstance(lines[1]["duration"], int)
    finally:
        await b.stop()


async def test_drain_finishes_in_flight_and_closes_idle():
    release = asyncio.Event()

    async def slow(req):
        await asyncio.wait_for(release.wait(), 5)
        return web.Response(text="done")

    b = await Backend("b", slow).start()
    snap, ports = build_snapshot(service_entry("backend", b.port))
    try:
        async with dataplane(snap) as dp:
            port = ports["http_proxy"]
            idle = await RawClient.connect(port)
            busy = asyncio.create_task(proxy_get(port, f"{URL}/slow"))
            await asyncio.sleep(0.2)
            drained = asyncio.create_task(dp.drain(3.0))
            assert await idle.closed(2.0)
            await idle.close()
            release.set()
            r = await busy
            assert r.status == 200 and r.headers.get("connection") == "close"
            await asyncio.wait_for(drained, 5)
            assert not dp.rt.connections
    finally:
        await b.stop()


async def test_strict_dns_cluster():
    b = await Backend("dns").start()
    yaml = service_entry("backend", b.port).replace("resolution: STATIC", "resolution: DNS").replace(
        "address: 127.0.0.1", "address: localhost")
    snap, ports = build_snapshot(yaml)
    try:
        async with dataplane(snap) as dp:
            for _ in range(50):
                if dp.clusters.states["outbound|9080||backend.default.svc.cluster.local"].host_set.hosts:
                    break
                await asyncio.sleep(0.05)
            r = await proxy_get(ports["http_proxy"], f"{URL}/dns")
            assert r.status == 200 and r.json()["backend"] == "dns"
    finally:
        await b.stop()


async def test_original_dst_hand_off(monkeypatch):
    """A connection redirected to the virtual outbound listener is handed to the
    listener of its original destination (SO_ORIGINAL_DST faked: it needs iptables)."""
    from isthmus.pilot.model.proxy import CaptureMode
    from isthmus.proxy.runtime import connection
    from tests.pilot.fixtures import sidecar

    b = await Backend("odst").start()
    proxy = sidecar(capture=CaptureMode.IPTABLES)
    snap, ports = build_snapshot(service_entry("backend", b.port), proxy=proxy)
    virtual = next(lr for lr in snap.listeners.values() if lr.use_original_dst)
    target = next(lr for lr in snap.listeners.values() if not lr.bind_to_port and lr.address.port == 9080)
    monkeypatch.setattr(connection, "original_destination", lambda t: (target.address.host if target.address.host not in
                                                                        ("0.0.0.0", "") else "10.9.8.7", 9080))
    try:
        async with dataplane(snap) as dp:
            c = await RawClient.connect(ports[virtual.name])
            r = await c.request("GET", "/odst", {"host": "backend.default.svc.cluster.local:9080"})
            await c.close()
            assert r.status == 200 and r.json()["path"] == "/odst"
            assert dp.stats.counter("listener.downstream_cx_total", (("listener_address", str(virtual.address)),)).value >= 1
    finally:
        await b.stop()


async def test_removed_listener_stops_accepting():
    b = await Backend("b").start()
    snap, ports = build_snapshot(service_entry("backend", b.port))
    try:
        async with dataplane(snap) as dp:
            listeners = "type.googleapis.com/envoy.config.listener.v3.Listener"
            inbound = [n for n in snap.listeners if n != "http_proxy"]
            assert await dp.apply(snap.with_update(listeners, {}, removed=set(inbound))) == []
            import pytest
            with pytest.raises(OSError):
                await RawClient.connect(ports[inbound[0]])
            assert (await proxy_get(ports["http_proxy"], f"{URL}/still")).status == 200
            assert [s["name"] for s in dp.listeners_status()] == ["http_proxy"]
    finally:
        await b.stop()
