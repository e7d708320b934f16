"""`python -m isthmus.samples.bookinfo <app> [--version vN] [--port 9080] [--host H] [--<svc>-url URL]`.

Runs one Bookinfo app until SIGINT/SIGTERM, logging one structured line per request.
Upstream base URLs default to `http://<service>:9080` (through `HTTP_PROXY` when set).
"""
from __future__ import annotations

import argparse
from typing import Sequence

from aiohttp import web

from isthmus.samples.bookinfo import details, productpage, ratings, reviews
from isthmus.samples.bookinfo.common import SERVICE_PORT, serve, service_url
from isthmus.shared.logging import configure

VERSIONS = {"productpage": ("v1",), "details": ("v1",), "ratings": ("v1",), "reviews": tuple(reviews.VERSIONS)}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m isthmus.samples.bookinfo", description=__doc__.splitlines()[0])
    parser.add_argument("app", choices=tuple(VERSIONS))
    parser.add_argument("--version", default="v1", help="v1 (reviews: v1, v2 black stars, v3 red stars)")
    parser.add_argument("--port", type=int, default=SERVICE_PORT)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (containers: 0.0.0.0)")
    for name in ("details", "reviews", "ratings"):
        parser.add_argument(f"--{name}-url", default=service_url(name), metavar="URL",
                            help=f"base URL of {name} (default %(default)s)")
    args = parser.parse_args(argv)
    if args.version not in VERSIONS[args.app]:
        parser.error(f"{args.app} has no version {args.version!r}; use one of {', '.join(VERSIONS[args.app])}")
    return args


def build_app(args: argparse.Namespace) -> web.Application:
    if args.app == "productpage":
        return productpage.create_app(productpage.ProductpageConfig(
            details_url=args.details_url, reviews_url=args.reviews_url, ratings_url=args.ratings_url))
    if args.app == "reviews":
        return reviews.create_app(reviews.ReviewsConfig(version=args.version, ratings_url=args.ratings_url))
    return {"details": details, "ratings": ratings}[args.app].create_app()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    configure(f"{args.app}-{args.version}")
    serve(build_app(args), args.host, args.port)


if __name__ == "__main__":
    main()
