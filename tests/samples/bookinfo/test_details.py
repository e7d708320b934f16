from __future__ import annotations

import aiohttp

from isthmus.samples.bookinfo import details


async def test_details_json_shape(serve, http: aiohttp.ClientSession) -> None:
    base = await serve(details.create_app())
    async with http.get(f"{base}/details/0") as resp:
        assert resp.status == 200 and resp.content_type == "application/json"
        body = await resp.json()
    assert list(body) == ["id", "author", "year", "type", "pages", "publisher", "language", "ISBN-10", "ISBN-13"]
    assert body["id"] == 0 and body["author"] == "William Shakespeare" and body["ISBN-13"] == "123-1234567890"
    async with http.get(f"{base}/details/7") as resp:
        assert (await resp.json())["id"] == 7


async def test_details_rejects_non_numeric_id(serve, http: aiohttp.ClientSession) -> None:
    base = await serve(details.create_app())
    for path in ("/details/abc", "/details"):
        async with http.get(base + path) as resp:
            assert resp.status == 400
            assert await resp.json() == {"error": "please provide numeric product id"}


async def test_details_health(serve, http: aiohttp.ClientSession) -> None:
    base = await serve(details.create_app())
    async with http.get(f"{base}/health") as resp:
        assert resp.status == 200 and await resp.json() == {"status": "Details is healthy"}
