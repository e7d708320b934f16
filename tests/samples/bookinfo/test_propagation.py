"""Trace and user headers travel productpage → reviews → ratings; outbound calls honour HTTP_PROXY."""
from __future__ import annotations

import pytest
from aiohttp import web

from isthmus.samples.bookinfo import details, productpage
from isthmus.samples.bookinfo.common import FORWARD_HEADERS
from tests.samples.bookinfo.harness import record_headers, start_bookinfo

TRACE = {
    "x-request-id": "5f1c7e2a-0d4e-4c6a-9a55-3b1f9a1d2e77",
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "congo=t61rcWkgMzE",
    "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7",
    "x-b3-spanid": "e457b5a2e4d86bd1",
    "x-b3-parentspanid": "05e3ac9a4f6e3b90",
    "x-b3-sampled": "1",
    "x-b3-flags": "0",
    "b3": "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
    "x-ot-span-context": "ctx",
    "x-cloud-trace-context": "105445aa7843bc8bf206b12000100000/1;o=1",
    "grpc-trace-bin": "AAARf5Vw",
    "user-agent": "bookinfo-test/1.0",
}


async def test_trace_headers_reach_every_hop(serve, http) -> None:
    bi = await start_bookinfo(serve, "v2")
    http.cookie_jar.update_cookies({"user": "jason"})
    async with http.get(f"{bi.productpage}/productpage", headers={**TRACE, "x-not-forwarded": "1"}) as resp:
        assert resp.status == 200
    for service in ("details", "reviews", "ratings"):
        [got] = bi.seen[service]
        assert {k: got.get(k) for k in TRACE} == TRACE, service
        assert got["end-user"] == "jason" and "user=jason" in got["cookie"], service
        assert "x-not-forwarded" not in got, service


def test_forward_list_covers_istios() -> None:
    istio = {  # reviews' headers_to_propagate (productpage's list is the same plus b3 via its tracer)
        "x-request-id", "x-ot-span-context", "x-datadog-trace-id", "x-datadog-parent-id",
        "x-datadog-sampling-priority", "traceparent", "tracestate", "x-cloud-trace-context", "grpc-trace-bin",
        "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "sw8",
        "end-user", "user-agent", "cookie", "authorization", "jwt",
    }
    assert istio <= set(FORWARD_HEADERS) and "b3" in FORWARD_HEADERS


def _fake_proxy(seen: list[tuple[str, dict[str, str]]]) -> web.Application:
    """An HTTP proxy stand-in: records the absolute-form target and answers as details would."""
    async def proxy(request: web.Request) -> web.Response:
        seen.append((str(request.url), {k.lower(): v for k, v in request.headers.items()}))
        return web.json_response(details.book_details(0) | {"publisher": "via-proxy"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy"])
async def test_short_service_names_go_to_the_proxy(serve, http, monkeypatch, variable: str) -> None:
    seen: list[tuple[str, dict[str, str]]] = []
    proxy = await serve(_fake_proxy(seen))
    page = await serve(productpage.create_app())  # default upstreams: http://details:9080, ...
    monkeypatch.setenv(variable, proxy)
    async with http.get(f"{page}/api/v1/products/0", headers={"x-request-id": "r1"}) as resp:
        assert resp.status == 200 and (await resp.json())["publisher"] == "via-proxy"
    [(target, headers)] = seen
    assert target == "http://details:9080/details/0"  # no local DNS: the proxy resolves `details`
    assert headers["host"] == "details:9080" and headers["x-request-id"] == "r1"


async def test_no_proxy_is_respected(serve, http, monkeypatch) -> None:
    seen: list[tuple[str, dict[str, str]]] = []
    proxy = await serve(_fake_proxy(seen))
    details_app = details.create_app()
    direct = record_headers(details_app)
    details_url = await serve(details_app)
    page = await serve(productpage.create_app(productpage.ProductpageConfig(details_url=details_url)))
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    async with http.get(f"{page}/api/v1/products/0") as resp:
        assert resp.status == 200 and (await resp.json())["publisher"] == "PublisherA"
    assert seen == [] and len(direct) == 1
