from __future__ import annotations

import aiohttp

from isthmus.samples.bookinfo import ratings


async def test_ratings_default(serve, http: aiohttp.ClientSession) -> None:
    base = await serve(ratings.create_app())
    async with http.get(f"{base}/ratings/0") as resp:
        assert resp.status == 200
        assert await resp.json() == {"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}


async def test_post_replaces_ratings_of_one_product(serve, http: aiohttp.ClientSession) -> None:
    base = await serve(ratings.create_app())
    async with http.post(f"{base}/ratings/1", json={"Reviewer1": 1, "Reviewer2": 2}) as resp:
        assert resp.status == 200 and await resp.json() == {"id": 1, "ratings": {"Reviewer1": 1, "Reviewer2": 2}}
    async with http.get(f"{base}/ratings/1") as resp:
        assert (await resp.json())["ratings"] == {"Reviewer1": 1, "Reviewer2": 2}
    async with http.get(f"{base}/ratings/0") as resp:
        assert (await resp.json())["ratings"] == {"Reviewer1": 5, "Reviewer2": 4}


async def test_ratings_errors(serve, http: aiohttp.ClientSession) -> None:
    base = await serve(ratings.create_app())
    async with http.get(f"{base}/ratings/abc") as resp:
        assert resp.status == 400 and await resp.json() == {"error": "please provide numeric product ID"}
    async with http.post(f"{base}/ratings/0", data="{not json") as resp:
        assert resp.status == 400 and await resp.json() == {"error": "please provide valid ratings JSON"}
    async with http.get(f"{base}/health") as resp:
        assert await resp.json() == {"status": "Ratings is healthy"}
