from __future__ import annotations

import aiohttp
import pytest

from isthmus.samples.bookinfo import ratings, reviews
from tests.samples.bookinfo.harness import closed_port_url


async def _reviews(serve, http: aiohttp.ClientSession, version: str, ratings_url: str | None = None) -> dict:
    if ratings_url is None:
        ratings_url = await serve(ratings.create_app())
    base = await serve(reviews.create_app(reviews.ReviewsConfig(version=version, ratings_url=ratings_url, podname="reviews-x")))
    async with http.get(f"{base}/reviews/0") as resp:
        assert resp.status == 200 and resp.content_type == "application/json"
        return await resp.json()


async def test_v1_has_no_ratings_and_calls_nothing(serve, http) -> None:
    body = await _reviews(serve, http, "v1", ratings_url=closed_port_url())
    assert body["id"] == "0" and body["podname"] == "reviews-x" and body["clustername"] == "null"
    assert [r["reviewer"] for r in body["reviews"]] == ["Reviewer1", "Reviewer2"]
    assert all(set(r) == {"reviewer", "text"} for r in body["reviews"])


@pytest.mark.parametrize("version, color", [("v2", "black"), ("v3", "red")])
async def test_v2_v3_rate_with_their_colour(serve, http, version: str, color: str) -> None:
    body = await _reviews(serve, http, version)
    assert [r["rating"] for r in body["reviews"]] == [{"stars": 5, "color": color}, {"stars": 4, "color": color}]


async def test_ratings_down_means_rating_error(serve, http) -> None:
    body = await _reviews(serve, http, "v2", ratings_url=closed_port_url())
    assert [r["rating"] for r in body["reviews"]] == [{"error": "Ratings service is currently unavailable"}] * 2


async def test_missing_reviewer_rating_is_an_error(serve, http) -> None:
    app = ratings.create_app()
    app[ratings.RATINGS][0] = {"Reviewer1": 3}
    body = await _reviews(serve, http, "v3", ratings_url=await serve(app))
    assert [r["rating"] for r in body["reviews"]] == [
        {"stars": 3, "color": "red"}, {"error": "Ratings service is currently unavailable"}]


def test_ratings_timeouts_are_istios() -> None:
    # LibertyRestEndpoint.java: star_color.equals("black") ? 10000 : 2500 (ms)
    assert reviews.ReviewsConfig(version="v2").timeout == 10.0
    assert reviews.ReviewsConfig(version="v3").timeout == 2.5
    assert not reviews.ReviewsConfig(version="v1").ratings_enabled
    with pytest.raises(ValueError, match="unknown version 'v4'"):
        reviews.ReviewsConfig(version="v4")


async def test_non_integer_id_and_health(serve, http) -> None:
    base = await serve(reviews.create_app(reviews.ReviewsConfig(version="v1")))
    async with http.get(f"{base}/reviews/abc") as resp:
        assert resp.status == 404
    async with http.get(f"{base}/health") as resp:
        assert await resp.json() == {"status": "Reviews is healthy"}
