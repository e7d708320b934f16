"""ratings v1: per-reviewer star counts, held in memory, as Istio's ratings.js (v1) does.

`GET /ratings/<id>` → {id, ratings: {Reviewer1: 5, Reviewer2: 4}} unless a POST
replaced them; `POST /ratings/<id>` with a JSON object stores it as that product's
ratings and returns the same shape. A non-numeric id → 400 {"error": "please provide
numeric product ID"}; a POST body that is not JSON → 400 {"error": "please provide
valid ratings JSON"}. `GET /health` → {"status": "Ratings is healthy"}.
"""
from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from isthmus.samples.bookinfo.common import new_app

DEFAULT_RATINGS: dict[str, int] = {"Reviewer1": 5, "Reviewer2": 4}
RATINGS: web.AppKey[dict[int, Any]] = web.AppKey("ratings", dict)
_LEADING_INTEGER = re.compile(r"\s*([+-]?\d+)")


def _product_id(request: web.Request) -> int | None:
    # ratings.js: parseInt(req.url.split('/').pop()) — leading digits count, NaN is an error.
    match = _LEADING_INTEGER.match(request.path.split("/")[-1])
    return int(match.group(1)) if match else None


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def get_ratings(request: web.Request) -> web.Response:
    product_id = _product_id(request)
    if product_id is None:
        return _bad_request("please provide numeric product ID")
    stored = request.app[RATINGS].get(product_id, DEFAULT_RATINGS)
    return web.json_response({"id": product_id, "ratings": stored})


async def post_ratings(request: web.Request) -> web.Response:
    product_id = _product_id(request)
    if product_id is None:
        return _bad_request("please provide numeric product ID")
    try:
        ratings = json.loads(await request.text())
    except ValueError:
        return _bad_request("please provide valid ratings JSON")
    request.app[RATINGS][product_id] = ratings
    return web.json_response({"id": product_id, "ratings": ratings})


def create_app() -> web.Application:
    app = new_app(lambda: web.json_response({"status": "Ratings is healthy"}))
    app[RATINGS] = {}
    app.router.add_get("/ratings/{tail:.*}", get_ratings)
    app.router.add_post("/ratings/{tail:.*}", post_ratings)
    return app
