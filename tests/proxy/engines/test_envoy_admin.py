"""The envoy engine's admin client (asyncio, no aiohttp) against a stand-in admin server."""
from __future__ import annotations

import asyncio

import pytest

from isthmus.proxy.engines.envoy import admin_status
from isthmus.shared.service.http import App, Request, Response, serve


async def test_ready_and_drain_requests_reach_the_admin():
    seen: list[tuple[str, str, dict]] = []

    async def ready(request: Request) -> Response:
        seen.append((request.method, request.path, dict(request.query)))
        return Response(status=503, text="PRE_INITIALIZING\n")

    async def drain(request: Request) -> Response:
        seen.append((request.method, request.path, dict(request.query)))
        return Response(text="OK\n")

    async def hang(_: Request) -> Response:
        await asyncio.sleep(5)
        return Response(text="late\n")

    app = App()
    app.add_get("/ready", ready)
    app.add_post("/drain_listeners", drain)
    app.add_get("/hang", hang)
    server = await serve(app, "127.0.0.1", 0)
    try:
        assert await admin_status(server.port, "GET", "/ready", timeout=2) == 503
        assert await admin_status(server.port, "POST", "/drain_listeners?graceful&inboundonly", timeout=2) == 200
        assert seen == [("GET", "/ready", {}), ("POST", "/drain_listeners", {"graceful": "", "inboundonly": ""})]
        with pytest.raises(asyncio.TimeoutError):
            await admin_status(server.port, "GET", "/hang", timeout=0.1)
    finally:
        await server.close(timeout=0.1)
    with pytest.raises(OSError):
        await admin_status(server.port, "GET", "/ready", timeout=2)
