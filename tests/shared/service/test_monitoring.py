"""The services' monitoring port over a real socket: /metrics, readiness, extra debug routes."""
from __future__ import annotations

import asyncio
import http.client

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter

from isthmus.shared.service.http import Request, Response
from isthmus.shared.service.monitoring import start_monitoring


def fetch(port: int, path: str, method: str = "GET") -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type", ""), r.read().decode()
    finally:
        conn.close()


async def test_metrics_readiness_and_debug_routes():
    registry = CollectorRegistry()
    Counter("pushes", "pushes sent", registry=registry).inc(3)
    ready = {"ok": False}

    async def syncz(request: Request) -> Response:
        return Response(text=f"syncz {request.query.get('proxyID', '-')}\n")

    server = await start_monitoring("127.0.0.1", 0, registry, ready=lambda: ready["ok"],
                                    routes={"/debug/syncz": syncz})
    try:
        get = lambda path, method="GET": asyncio.to_thread(fetch, server.port, path, method)  # noqa: E731
        status, ctype, body = await get("/metrics")
        assert status == 200 and ctype == CONTENT_TYPE_LATEST and "pushes_total 3.0" in body
        assert (await get("/stats/prometheus"))[2] == body
        assert (await get("/healthz/ready"))[::2] == (503, "not ready\n")
        ready["ok"] = True
        assert (await get("/ready"))[::2] == (200, "ok\n")
        assert (await get("/healthz/ready", "HEAD"))[::2] == (200, "")
        assert (await get("/debug/syncz?proxyID=a.b"))[2] == "syncz a.b\n"
        assert (await get("/metrics", "POST"))[0] == 405
    finally:
        await server.cleanup()
