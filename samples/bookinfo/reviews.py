"""reviews v1/v2/v3: two book reviews, with star ratings from the ratings service in v2/v3.

As Istio's reviews (LibertyRestEndpoint.java): `GET /reviews/<id>` → {id (a string),
podname, clustername, reviews: [{reviewer, text, rating?}]}. v1 never calls ratings and
has no `rating`; v2 (black stars) and v3 (red stars) call `GET <ratings>/ratings/<id>`
with the forwarded headers and a hard-coded timeout — 10 s for black, 2.5 s for red —
and when that call fails every `rating` is {"error": "Ratings service is currently
unavailable"}. `GET /health` → {"status": "Reviews is healthy"}.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from isthmus.samples.bookinfo.common import CLIENT, forward_headers, get_json, new_app, service_url

# version → (ratings enabled, star colour): Istio's ENABLE_RATINGS / STAR_COLOR per image.
VERSIONS: dict[str, tuple[bool, str]] = {"v1": (False, "black"), "v2": (True, "black"), "v3": (True, "red")}
# LibertyRestEndpoint.getRatings: `star_color.equals("black") ? 10000 : 2500` ms, used as
# both the connection and the receive timeout. Istio's fault-injection task relies on it:
# v2's 10 s outlasts productpage's 2 x 3 s, v3's 2.5 s fits inside it.
RATINGS_TIMEOUT_SECONDS: dict[str, float] = {"black": 10.0, "red": 2.5}
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"
REVIEWS: tuple[tuple[str, str], ...] = (
    ("Reviewer1", "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"),
    ("Reviewer2", "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."),
)


@dataclass(frozen=True)
class ReviewsConfig:
    version: str = "v1"
    ratings_url: str = field(default_factory=lambda: service_url("ratings"))
    ratings_timeout: float | None = None  # None: Istio's per-colour timeout above
    podname: str = ""  # "" → $HOSTNAME (Istio: the pod name), else reviews-<version>-<host>
    clustername: str = field(default_factory=lambda: os.environ.get("CLUSTER_NAME", "null"))  # Java prints null

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ValueError(f"reviews: unknown version {self.version!r}; use one of {', '.join(VERSIONS)}")

    @property
    def ratings_enabled(self) -> bool:
        return VERSIONS[self.version][0]

    @property
    def star_color(self) -> str:
        return VERSIONS[self.version][1]

    @property
    def served_by(self) -> str:
        # Local processes share one host name, so name the version too.
        return self.podname or os.environ.get("HOSTNAME") or f"reviews-{self.version}-{socket.gethostname()}"

    @property
    def timeout(self) -> float:
        return self.ratings_timeout if self.ratings_timeout is not None else RATINGS_TIMEOUT_SECONDS[self.star_color]


CONFIG: web.AppKey[ReviewsConfig] = web.AppKey("config", ReviewsConfig)


def reviews_body(product_id: int, ratings: dict[str, Any] | None, config: ReviewsConfig) -> dict[str, Any]:
    """The response for one product; `ratings` is the ratings service's answer (None: it failed)."""
    stars = (ratings or {}).get("ratings") or {}
    reviews = []
    for reviewer, text in REVIEWS:
        review: dict[str, Any] = {"reviewer": reviewer, "text": text}
        if config.ratings_enabled:
            count = stars.get(reviewer)
            review["rating"] = (
                {"stars": count, "color": config.star_color} if isinstance(count, int)
                else {"error": RATINGS_UNAVAILABLE}
            )
        reviews.append(review)
    return {"id": str(product_id), "podname": config.served_by, "clustername": config.clustername, "reviews": reviews}


async def book_reviews(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    product_id = int(request.match_info["product_id"])
    ratings = None
    if config.ratings_enabled:
        url = f"{config.ratings_url}/ratings/{product_id}"
        status, body = await get_json(request.app[CLIENT], url, forward_headers(request), config.timeout)
        ratings = body if status == 200 and isinstance(body, dict) else None
    return web.json_response(reviews_body(product_id, ratings, config))


def create_app(config: ReviewsConfig | None = None) -> web.Application:
    config = config or ReviewsConfig()
    app = new_app(lambda: web.json_response({"status": "Reviews is healthy"}), client=config.ratings_enabled)
    app[CONFIG] = config
    app.router.add_get(r"/reviews/{product_id:-?\d+}", book_reviews)  # a JAX-RS int path parameter
    return app
