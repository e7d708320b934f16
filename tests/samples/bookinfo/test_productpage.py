from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web

from isthmus.samples.bookinfo import productpage, ratings
from tests.samples.bookinfo.harness import closed_port_url, start_bookinfo


async def _page(http: aiohttp.ClientSession, base: str, **kwargs) -> str:
    async with http.get(f"{base}/productpage", **kwargs) as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        return await resp.text()


async def test_page_shows_details_and_reviews(serve, http) -> None:
    bi = await start_bookinfo(serve, "v2")
    page = await _page(http, bi.productpage)
    assert "<h1>The Comedy of Errors</h1>" in page
    assert "<h4>Book Details</h4>" in page and "<td>1234567890</td>" in page and "<td>PublisherA</td>" in page
    assert "<h4>Book Reviews</h4>" in page and "Reviewer1" in page and "Reviewer2" in page
    assert "An extremely entertaining play by Shakespeare." in page
    assert "Reviews served by: reviews-test" in page
    assert 'action="login"' in page  # signed out: the sign-in form


@pytest.mark.parametrize("version, stars", [
    ("v1", None),
    ("v2", 'style="color: black">★★★★★</span>'),
    ("v3", 'style="color: red">★★★★★</span>'),
])
async def test_stars_by_reviews_version(serve, http, version: str, stars: str | None) -> None:
    bi = await start_bookinfo(serve, version)
    page = await _page(http, bi.productpage)
    if stars is None:
        assert "★" not in page and "☆" not in page and bi.seen["ratings"] == []
    else:
        assert stars in page and stars.replace("★★★★★", "★★★★☆") in page  # Reviewer1: 5, Reviewer2: 4


async def test_login_sets_cookie_and_end_user_reaches_ratings(serve, http) -> None:
    bi = await start_bookinfo(serve, "v2")
    async with http.post(f"{bi.productpage}/login", data={"username": "jason", "passwd": "x"},
                         headers={"Referer": f"{bi.productpage}/productpage"}, allow_redirects=False) as resp:
        assert resp.status == 302 and resp.headers["Location"] == f"{bi.productpage}/productpage"
        assert resp.cookies["user"].value == "jason"
    page = await _page(http, bi.productpage)
    assert '<span class="user">jason</span>' in page and 'href="logout"' in page
    assert bi.seen["reviews"][-1]["end-user"] == "jason"
    assert bi.seen["ratings"][-1]["end-user"] == "jason"
    assert bi.seen["details"][-1]["end-user"] == "jason"

    async with http.get(f"{bi.productpage}/logout", allow_redirects=False) as resp:
        assert resp.status == 302 and resp.headers["Location"] == "/productpage"
        assert resp.cookies["user"].value == ""
    http.cookie_jar.clear()
    page = await _page(http, bi.productpage)
    assert 'action="login"' in page and "end-user" not in bi.seen["reviews"][-1]


async def test_caller_cannot_set_end_user(serve, http) -> None:
    bi = await start_bookinfo(serve, "v2")
    await _page(http, bi.productpage, headers={"end-user": "jason"})
    assert "end-user" not in bi.seen["reviews"][-1]


async def test_details_down(serve, http) -> None:
    bi = await start_bookinfo(serve, "v2", details_url=closed_port_url())
    page = await _page(http, bi.productpage)
    assert "Error fetching product details" in page and productpage.DETAILS_UNAVAILABLE in page
    assert "<h4>Book Reviews</h4>" in page
    async with http.get(f"{bi.productpage}/api/v1/products/0") as resp:
        assert resp.status == 500 and await resp.json() == {"error": productpage.DETAILS_UNAVAILABLE}


async def test_ratings_down(serve, http) -> None:
    bi = await start_bookinfo(serve, "v3", ratings_url=closed_port_url())
    page = await _page(http, bi.productpage)
    assert page.count('<p class="error">Ratings service is currently unavailable</p>') == 2
    assert "★" not in page and "<h4>Book Reviews</h4>" in page


def _slow_app(path: str, delay: float, hits: list[float]) -> web.Application:
    async def slow(_: web.Request) -> web.Response:
        hits.append(time.monotonic())
        await asyncio.sleep(delay)
        return web.json_response({"id": 0, "ratings": ratings.DEFAULT_RATINGS})

    app = web.Application()
    app.router.add_get(path, slow)
    return app


async def test_slow_reviews_is_tried_twice_then_reported(serve, http) -> None:
    hits: list[float] = []
    slow_reviews = await serve(_slow_app("/reviews/0", 5.0, hits))
    bi = await start_bookinfo(serve, "v1", reviews_url=slow_reviews, timeout=0.3)
    start = time.monotonic()
    page = await _page(http, bi.productpage)
    elapsed = time.monotonic() - start
    assert "Error fetching product reviews" in page and productpage.REVIEWS_UNAVAILABLE in page
    assert len(hits) == productpage.REVIEWS_ATTEMPTS == 2
    assert 0.6 <= elapsed < 2.0  # 2 attempts x 0.3 s, far from the 5 s delay
    async with http.get(f"{bi.productpage}/api/v1/products/0/reviews") as resp:
        assert resp.status == 500 and await resp.json() == {"error": productpage.REVIEWS_UNAVAILABLE}


def test_timeouts_are_istios() -> None:
    # productpage.py: requests.get(..., timeout=3.0); getProductReviews: for _ in range(2)
    assert productpage.UPSTREAM_TIMEOUT_SECONDS == 3.0 and productpage.REVIEWS_ATTEMPTS == 2
    assert productpage.ProductpageConfig().timeout == 3.0


@pytest.mark.parametrize("version, ratings_timeout, expect", [
    ("v2", 2.0, productpage.REVIEWS_UNAVAILABLE),  # 10 s > 7 s > 2 x 3 s: the bug the task uncovers
    ("v3", 0.2, "Ratings service is currently unavailable"),  # 2.5 s < 3 s: the fix
])
async def test_istio_fault_injection_task_scaled_down(serve, http, version, ratings_timeout, expect) -> None:
    """Istio's task: ratings delayed 7 s; productpage 3 s x 2; reviews→ratings v2 10 s, v3 2.5 s.
    Here 1.4 s; 0.5 s x 2; 2.0 s and 0.2 s — the same order of the four times."""
    delayed_ratings = await serve(_slow_app("/ratings/0", 1.4, []))
    bi = await start_bookinfo(serve, version, ratings_url=delayed_ratings, timeout=0.5, ratings_timeout=ratings_timeout)
    page = await _page(http, bi.productpage)
    assert expect in page


async def test_api_json_shapes(serve, http) -> None:
    bi = await start_bookinfo(serve, "v3")
    async with http.get(f"{bi.productpage}/api/v1/products") as resp:
        assert resp.status == 200 and resp.content_type == "application/json"
        products = await resp.json()
    assert [(p["id"], p["title"]) for p in products] == [(0, "The Comedy of Errors")]
    assert "descriptionHtml" in products[0]
    async with http.get(f"{bi.productpage}/api/v1/products/0") as resp:
        assert resp.status == 200 and (await resp.json())["ISBN-10"] == "1234567890"
    async with http.get(f"{bi.productpage}/api/v1/products/0/reviews") as resp:
        body = await resp.json()
        assert resp.status == 200 and body["id"] == "0" and body["reviews"][0]["rating"] == {"stars": 5, "color": "red"}
    async with http.get(f"{bi.productpage}/api/v1/products/0/ratings") as resp:
        assert resp.status == 200 and await resp.json() == {"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}
    # The upstream's status comes back with the message.
    async with http.get(f"{bi.productpage}/api/v1/products/abc") as resp:
        assert resp.status == 400 and await resp.json() == {"error": productpage.DETAILS_UNAVAILABLE}
    async with http.get(f"{bi.productpage}/api/v1/products/abc/ratings") as resp:
        assert resp.status == 400 and await resp.json() == {"error": productpage.RATINGS_UNAVAILABLE}


async def test_index_health_static(serve, http) -> None:
    bi = await start_bookinfo(serve, "v1")
    for path in ("/", "/index.html"):
        async with http.get(bi.productpage + path) as resp:
            text = await resp.text()
            assert resp.status == 200 and 'href="/productpage?u=normal"' in text and bi.details in text
    async with http.get(f"{bi.productpage}/health") as resp:
        assert await resp.text() == "Product page is healthy"
    async with http.get(f"{bi.productpage}/static/bookinfo.css") as resp:
        assert resp.status == 200 and resp.content_type == "text/css" and ".stars" in await resp.text()
