"""Start Bookinfo apps on 127.0.0.1 ephemeral ports, wired to each other by explicit base URLs."""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

from isthmus.samples.bookinfo import details, productpage, ratings, reviews

Serve = Callable[[web.Application], Awaitable[str]]


def closed_port_url() -> str:
    """A base URL nothing listens on: calls to it are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def record_headers(app: web.Application) -> list[dict[str, str]]:
    """The (lower-cased) headers of every request `app` answers, in order."""
    seen: list[dict[str, str]] = []

    async def on_prepare(request: web.Request, _: web.StreamResponse) -> None:
        seen.append({k.lower(): v for k, v in request.headers.items()})

    app.on_response_prepare.append(on_prepare)
    return seen


@dataclass
class Bookinfo:
    productpage: str
    details: str
    reviews: str
    ratings: str
    seen: dict[str, list[dict[str, str]]] = field(default_factory=dict)


async def start_bookinfo(
    serve: Serve, reviews_version: str = "v2", *, timeout: float = productpage.UPSTREAM_TIMEOUT_SECONDS,
    ratings_timeout: float | None = None, details_url: str | None = None, reviews_url: str | None = None,
    ratings_url: str | None = None, ratings_app: web.Application | None = None,
) -> Bookinfo:
    """The four apps, upstreams started first; a given `*_url` replaces that app."""
    seen: dict[str, Any] = {}
    apps = {"ratings": ratings_app or ratings.create_app()}
    seen["ratings"] = record_headers(apps["ratings"])
    ratings_base = ratings_url or await serve(apps["ratings"])
    apps["reviews"] = reviews.create_app(reviews.ReviewsConfig(
        version=reviews_version, ratings_url=ratings_base, ratings_timeout=ratings_timeout, podname="reviews-test"))
    seen["reviews"] = record_headers(apps["reviews"])
    reviews_base = reviews_url or await serve(apps["reviews"])
    apps["details"] = details.create_app()
    seen["details"] = record_headers(apps["details"])
    details_base = details_url or await serve(apps["details"])
    page = await serve(productpage.create_app(productpage.ProductpageConfig(
        details_url=details_base, reviews_url=reviews_base, ratings_url=ratings_base, timeout=timeout)))
    return Bookinfo(page, details_base, reviews_base, ratings_base, seen)
