"""The monitoring HTTP endpoint every control-plane service serves: /metrics, /healthz/ready.

Extra debug routes are passed in by the service (pilot's /debug/*).
"""
from __future__ import annotations

from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from isthmus.shared.service.http import App, Handler, HttpServer, Request, Response, serve


async def start_monitoring(
    host: str,
    port: int,
    registry: CollectorRegistry,
    ready: Callable[[], bool] = lambda: True,
    routes: dict[str, Handler] | None = None,
) -> HttpServer:
    async def metrics(_: Request) -> Response:
        return Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: Request) -> Response:
        ok = ready()
        return Response(status=200 if ok else 503, text="ok\n" if ok else "not ready\n")

    app = App()
    app.add_get("/metrics", metrics)
    app.add_get("/stats/prometheus", metrics)
    app.add_get("/healthz/ready", healthz)
    app.add_get("/ready", healthz)
    for path, handler in (routes or {}).items():
        app.add_get(path, handler)
    return await serve(app, host, port)
