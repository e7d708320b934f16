"""What the four Bookinfo apps share: header propagation, the outbound HTTP client,
the access log, `/health`, and the server runner.

Outbound calls go to `http://<service>:9080` and honour `HTTP_PROXY`/`NO_PROXY`
(the sidecar is the HTTP proxy in local mode); short names are never resolved locally
when a proxy applies. A failed, timed-out or non-200 call is a value, never an exception.
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Awaitable, Callable

import aiohttp
from aiohttp import web

from isthmus.shared.logging import get_logger

log = get_logger("bookinfo")

# Istio's list (reviews' LibertyRestEndpoint.headers_to_propagate, productpage's
# getForwardHeaders), plus the single-header `b3` form. Keep in sync across apps.
FORWARD_HEADERS: tuple[str, ...] = (
    "x-request-id",  # access logs, consistent sampling
    "x-ot-span-context",  # Lightstep
    "x-datadog-trace-id", "x-datadog-parent-id", "x-datadog-sampling-priority",
    "traceparent", "tracestate",  # W3C Trace Context
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "b3",  # Zipkin
    "sw8",  # SkyWalking
    "end-user", "user-agent",  # application-specific: Istio's VirtualServices match end-user
    "cookie", "authorization", "jwt",  # session
)

SERVICE_PORT = 9080
CLIENT: web.AppKey[aiohttp.ClientSession] = web.AppKey("client", aiohttp.ClientSession)


def forward_headers(request: web.Request) -> dict[str, str]:
    """The inbound headers to repeat on every outbound call made for `request`."""
    return {name: request.headers[name] for name in FORWARD_HEADERS if name in request.headers}


def service_url(name: str) -> str:
    """Default base URL of a Bookinfo service, as Istio's apps build it:
    `http://<NAME_HOSTNAME or name><.SERVICES_DOMAIN>:9080`."""
    host = os.environ.get(f"{name.upper()}_HOSTNAME") or name
    domain = os.environ.get("SERVICES_DOMAIN")
    return f"http://{host}{'.' + domain if domain else ''}:{SERVICE_PORT}"


async def get_json(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], timeout: float
) -> tuple[int, Any | None]:
    """GET `url` → (status, JSON body); body is None unless status is 200.

    `timeout` bounds the TCP connect and each read separately, as Python requests'
    `timeout=` and the JAX-RS client's connection/receive timeouts do. A call that
    fails or times out is (500, None), as Istio's productpage reports it.
    """
    client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
    try:
        async with session.get(url, headers=headers, timeout=client_timeout) as resp:
            if resp.status != 200:
                return resp.status, None
            return 200, await resp.json(content_type=None)
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        log.info("upstream call failed", url=url, error=f"{type(exc).__name__}: {exc}")
        return 500, None


async def _client_session(app: web.Application):
    # trust_env: HTTP_PROXY/http_proxy and NO_PROXY from the environment, read per call.
    # DummyCookieJar: cookies set by one upstream response must not leak into other users' calls.
    async with aiohttp.ClientSession(trust_env=True, cookie_jar=aiohttp.DummyCookieJar()) as session:
        app[CLIENT] = session
        yield


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One log line per request: method, path, status, duration, x-request-id."""
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = 499  # client went away (nginx's convention)
        raise
    finally:
        log.info(
            "request", method=request.method, path=request.path_qs, status=status,
            duration_ms=round((time.perf_counter() - start) * 1000, 1),
            request_id=request.headers.get("x-request-id"),
        )


def new_app(health: Callable[[], web.Response], *, client: bool = False) -> web.Application:
    """An app with the access log and `GET /health`; `client=True` adds the outbound session."""
    app = web.Application(middlewares=[access_log])

    async def health_handler(_: web.Request) -> web.Response:
        return health()

    app.router.add_get("/health", health_handler)
    if client:
        app.cleanup_ctx.append(_client_session)
    return app


def serve(app: web.Application, host: str, port: int) -> None:
    """Run until SIGINT/SIGTERM. aiohttp's own access log is off: `access_log` logs."""
    log.info("listening", host=host, port=port)
    web.run_app(app, host=host, port=port, access_log=None, print=None)
