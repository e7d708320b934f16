"""productpage v1: the Bookinfo web page and its JSON API, as Istio's productpage.py.

`GET /productpage` renders product 0 with its details (`GET <details>/details/0`) and
reviews (`GET <reviews>/reviews/0`), called one after the other with the forwarded
headers; `POST /login` (form `username`) sets the `user` cookie and `GET /logout` clears
it, both redirecting back; a signed-in user is sent as `end-user: <user>` on every
outbound call. API: `/api/v1/products`, `/api/v1/products/<id>` (details),
`.../<id>/reviews`, `.../<id>/ratings` answer the upstream's JSON and status, or
{"error": "Sorry, product ... are currently unavailable for this book."} with the
upstream status (500 when the call failed). `GET /`, `/index.html`, `/health`, `/static/`.

Timeouts, from productpage.py: every call `timeout=3.0`; reviews is tried twice
("bug introduced explicitly for illustration in fault injection task"), so a slow
reviews costs 6 s before the page gives up.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote

from aiohttp import web

from isthmus.samples.bookinfo.common import CLIENT, forward_headers, get_json, new_app, service_url

UPSTREAM_TIMEOUT_SECONDS = 3.0  # requests.get(url, headers=headers, timeout=3.0)
REVIEWS_ATTEMPTS = 2  # getProductReviews: `for _ in range(2)`
DETAILS_UNAVAILABLE = "Sorry, product details are currently unavailable for this book."
REVIEWS_UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."
RATINGS_UNAVAILABLE = "Sorry, product ratings are currently unavailable for this book."
STATIC_DIR = Path(__file__).parent / "static"

PRODUCTS: tuple[dict[str, Any], ...] = (
    {
        "id": 0,
        "title": "The Comedy of Errors",
        "descriptionHtml": (
            '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: '
            "The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest "
            "and one of his most farcical comedies, with a major part of the humour coming from slapstick "
            "and mistaken identity, in addition to puns and word play."
        ),
    },
)


@dataclass(frozen=True)
class ProductpageConfig:
    details_url: str = field(default_factory=lambda: service_url("details"))
    reviews_url: str = field(default_factory=lambda: service_url("reviews"))
    ratings_url: str = field(default_factory=lambda: service_url("ratings"))
    timeout: float = UPSTREAM_TIMEOUT_SECONDS


CONFIG: web.AppKey[ProductpageConfig] = web.AppKey("config", ProductpageConfig)


# --- outbound calls -----------------------------------------------------------------

def outbound_headers(request: web.Request) -> dict[str, str]:
    """Forwarded headers; `end-user` comes from the login cookie, never from the caller."""
    headers = forward_headers(request)
    headers.pop("end-user", None)
    user = request.cookies.get("user")
    if user:
        headers["end-user"] = user
    return headers


async def _call(request: web.Request, url: str, attempts: int, error: str) -> tuple[int, Any]:
    headers, timeout = outbound_headers(request), request.app[CONFIG].timeout
    status = 500
    for _ in range(attempts):
        status, body = await get_json(request.app[CLIENT], url, headers, timeout)
        if status == 200:
            return 200, body
    return status, {"error": error}


async def product_details(request: web.Request, product_id: object) -> tuple[int, Any]:
    url = f"{request.app[CONFIG].details_url}/details/{quote(str(product_id), safe='')}"
    return await _call(request, url, 1, DETAILS_UNAVAILABLE)


async def product_reviews(request: web.Request, product_id: object) -> tuple[int, Any]:
    url = f"{request.app[CONFIG].reviews_url}/reviews/{quote(str(product_id), safe='')}"
    return await _call(request, url, REVIEWS_ATTEMPTS, REVIEWS_UNAVAILABLE)


async def product_ratings(request: web.Request, product_id: object) -> tuple[int, Any]:
    url = f"{request.app[CONFIG].ratings_url}/ratings/{quote(str(product_id), safe='')}"
    return await _call(request, url, 1, RATINGS_UNAVAILABLE)


# --- HTML ---------------------------------------------------------------------------

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Simple Bookstore App</title>
<link rel="stylesheet" href="static/bookinfo.css">
</head>
<body>
<nav><a class="brand" href="#">BookInfo Sample</a>$account</nav>
<main>
$content
</main>
</body>
</html>
""")

SIGN_IN = """
<form class="account" method="post" action="login" name="login_form">
  <input name="username" placeholder="Username" required>
  <input name="passwd" type="password" placeholder="Password">
  <button type="submit">Sign in</button>
</form>"""

SIGNED_IN = Template("""
<div class="account"><span class="user">$user</span> <a href="logout">Sign out</a></div>""")

DETAILS_TABLE = Template("""<h4>Book Details</h4>
<table>
  <tr><th>ISBN-10</th><th>Publisher</th><th>Pages</th><th>Type</th><th>Language</th></tr>
  <tr><td>$isbn10</td><td>$publisher</td><td>$pages</td><td>$type</td><td>$language</td></tr>
</table>""")

REVIEW = Template("""<blockquote class="review">
  $rating
  <p>"$text"</p>
  <footer><b>$reviewer</b> · Reviews served by: $served_by</footer>
</blockquote>""")

ERROR = Template('<p class="error">Error fetching product $what</p>\n<p>$message</p>')


def render_stars(rating: dict[str, Any] | None) -> str:
    """Filled then empty stars out of five in the rating's colour (Istio: glyphicon-star)."""
    if not rating:
        return ""
    if rating.get("error"):
        return f'<p class="error">{escape(str(rating["error"]))}</p>'
    stars = rating.get("stars")
    if not isinstance(stars, int) or stars <= 0:
        return ""
    stars = min(stars, 5)
    color = escape(str(rating.get("color", "black")))
    return f'<span class="stars" style="color: {color}">{"★" * stars}{"☆" * (5 - stars)}</span>'


def render_details(status: int, details: dict[str, Any]) -> str:
    if status != 200:
        return ERROR.substitute(what="details", message=escape(str(details.get("error", ""))))
    return DETAILS_TABLE.substitute(
        {key: escape(str(details.get(name, ""))) for key, name in (
            ("isbn10", "ISBN-10"), ("publisher", "publisher"), ("pages", "pages"),
            ("type", "type"), ("language", "language"))}
    )


def render_reviews(status: int, reviews: dict[str, Any]) -> str:
    if status != 200:
        return ERROR.substitute(what="reviews", message=escape(str(reviews.get("error", ""))))
    served_by = escape(str(reviews.get("podname", "")))
    if reviews.get("clustername", "null") != "null":
        served_by += f" on cluster {escape(str(reviews['clustername']))}"
    items = [
        REVIEW.substitute(rating=render_stars(r.get("rating")), text=escape(str(r.get("text", ""))),
                          reviewer=escape(str(r.get("reviewer", ""))), served_by=served_by)
        for r in reviews.get("reviews", [])
    ]
    return "<h4>Book Reviews</h4>\n" + "\n".join(items)


def render_productpage(product: dict[str, Any], user: str, details: tuple[int, Any], reviews: tuple[int, Any]) -> str:
    content = "\n".join((
        f"<h1>{escape(product['title'])}</h1>",
        f'<p class="description">{product["descriptionHtml"]}</p>',  # trusted constant HTML
        f'<section class="details">\n{render_details(*details)}\n</section>',
        f'<section class="reviews">\n{render_reviews(*reviews)}\n</section>',
    ))
    account = SIGNED_IN.substitute(user=escape(user)) if user else SIGN_IN
    return PAGE.substitute(account=account, content=content)


def render_index(config: ProductpageConfig) -> str:
    content = f"""<h1>Hello! This is a simple bookstore application consisting of three services as shown below</h1>
<ul class="services">
  <li>productpage
    <ul>
      <li>details: {escape(config.details_url)}</li>
      <li>reviews: {escape(config.reviews_url)}
        <ul><li>ratings: {escape(config.ratings_url)}</li></ul>
      </li>
    </ul>
  </li>
</ul>
<p>Click on one of the links below to auto generate a request to the backend as a real user or a tester</p>
<p><a href="/productpage?u=normal">Normal user</a> · <a href="/productpage?u=test">Test user</a></p>"""
    return PAGE.substitute(account="", content=content)


# --- handlers -----------------------------------------------------------------------

def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def _back(request: web.Request) -> web.Response:
    # Istio redirects to request.referrer; with none (curl) go to the page.
    return web.Response(status=302, headers={"Location": request.headers.get("Referer") or "/productpage"})


async def index(request: web.Request) -> web.Response:
    return web.Response(text=render_index(request.app[CONFIG]), content_type="text/html")


async def login(request: web.Request) -> web.Response:
    user = (await request.post()).get("username")
    response = _back(request)
    if isinstance(user, str) and user:
        response.set_cookie("user", user, path="/")
    return response


async def logout(request: web.Request) -> web.Response:
    response = _back(request)
    response.del_cookie("user", path="/")
    return response


async def productpage(request: web.Request) -> web.Response:
    product_id = 0  # Istio's sample shows one book
    details = await product_details(request, product_id)
    reviews = await product_reviews(request, product_id)
    html = render_productpage(PRODUCTS[product_id], request.cookies.get("user", ""), details, reviews)
    return web.Response(text=html, content_type="text/html")


async def api_products(_: web.Request) -> web.Response:
    return _json(200, list(PRODUCTS))


async def api_product(request: web.Request) -> web.Response:
    return _json(*await product_details(request, request.match_info["product_id"]))


async def api_reviews(request: web.Request) -> web.Response:
    return _json(*await product_reviews(request, request.match_info["product_id"]))


async def api_ratings(request: web.Request) -> web.Response:
    return _json(*await product_ratings(request, request.match_info["product_id"]))


def create_app(config: ProductpageConfig | None = None) -> web.Application:
    app = new_app(lambda: web.Response(text="Product page is healthy"), client=True)
    app[CONFIG] = config or ProductpageConfig()
    app.router.add_get("/", index)
    app.router.add_get("/index.html", index)
    app.router.add_get("/productpage", productpage)
    app.router.add_post("/login", login)
    app.router.add_get("/logout", logout)
    app.router.add_get("/api/v1/products", api_products)
    app.router.add_get("/api/v1/products/{product_id}", api_product)
    app.router.add_get("/api/v1/products/{product_id}/reviews", api_reviews)
    app.router.add_get("/api/v1/products/{product_id}/ratings", api_ratings)
    app.router.add_static("/static", STATIC_DIR)
    return app
