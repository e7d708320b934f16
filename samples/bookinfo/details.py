"""details v1: the book's bibliographic details, as Istio's details.rb serves them.

`GET /details/<id>` → {id, author, year, type, pages, publisher, language, ISBN-10,
ISBN-13} (200), or {"error": "please provide numeric product id"} (400) when the last
path segment is not an integer. `GET /health` → {"status": "Details is healthy"}.
Makes no outbound calls (Istio's optional Google Books lookup is not carried over).
"""
from __future__ import annotations

import re

from aiohttp import web

from isthmus.samples.bookinfo.common import new_app

_INTEGER = re.compile(r"-?\d+")


def book_details(product_id: int) -> dict[str, object]:
    """Every id gets the same book: Istio's sample serves one title."""
    return {
        "id": product_id,
        "author": "William Shakespeare",
        "year": 1595,
        "type": "paperback",
        "pages": 200,
        "publisher": "PublisherA",
        "language": "English",
        "ISBN-10": "1234567890",
        "ISBN-13": "123-1234567890",
    }


async def details(request: web.Request) -> web.Response:
    last = request.path.rstrip("/").split("/")[-1]  # details.rb: req.path.split('/')[-1]
    if not _INTEGER.fullmatch(last):
        return web.json_response({"error": "please provide numeric product id"}, status=400)
    return web.json_response(book_details(int(last)))


def create_app() -> web.Application:
    app = new_app(lambda: web.json_response({"status": "Details is healthy"}))
    # WEBrick's mount_proc '/details' serves the prefix: /details and /details/...
    app.router.add_get("/details", details)
    app.router.add_get("/details/{tail:.*}", details)
    return app
