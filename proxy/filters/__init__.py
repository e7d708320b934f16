"""The one HTTP filter chain for sidecars and gateways: fault → cors → router.

`build_filters(hcm_config, hcm_runtime)` turns the HCM's compiled `http_filters`
into filter objects once per snapshot (Starlette's build_middleware_stack idea):
`decoders` see each request in order and return True to continue or False when
they answered or will `stream.resume()` later; `encoders` may rewrite response
headers (`on_response(stream, headers) -> headers`); `router` is terminal.

    fault.py        delays and aborts (flags DI / FI)
    cors.py         preflights and CORS response headers
    router.py       redirect / direct response / forward to a cluster
    forward.py      the upstream request, attempts, body replay, backpressure
    attempt.py      per-route plans, one try (the pool's exchange), ORIGINAL_DST hosts
    outcomes.py     resets, pool failures, timeouts, retries (retry.py) → local replies
    mirror.py       shadow copies
    headers.py      HCM request headers (XFF, XFCC, request id, trace context), mutations
    local_reply.py  Envoy's local replies, response flags, gRPC mapping
"""
from __future__ import annotations

from dataclasses import dataclass

from isthmus.proxy.config.http_filters import FaultConfig


@dataclass(frozen=True, slots=True)
class FilterChain:
    decoders: tuple
    encoders: tuple
    router: object  # router.Router


def build_filters(http_filters, hcm) -> FilterChain:
    # Imported here: the filters reach into runtime/ (pools), which imports this package.
    from isthmus.proxy.filters.cors import CorsFilter
    from isthmus.proxy.filters.fault import FaultFilter
    from isthmus.proxy.filters.router import Router

    decoders: list = []
    encoders: list = []
    router = None
    for f in http_filters:
        if f.kind == "fault":
            decoders.append(FaultFilter(f.name, FaultConfig() if f.disabled else f.config))
        elif f.kind == "cors":
            cors = CorsFilter(f.name)
            decoders.append(cors)
            encoders.append(cors)
        elif f.kind == "router":
            router = Router(f.config, hcm)
    assert router is not None, "the config compiler guarantees a terminal router"
    return FilterChain(tuple(decoders), tuple(reversed(encoders)), router)


__all__ = ["FilterChain", "build_filters"]
