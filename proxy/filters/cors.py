"""envoy.filters.http.cors: answer preflights and decorate CORS responses.

The policy is the route's per-filter config (most specific of route, virtual host,
route configuration). A request with an Origin is a CORS request when the policy is
enabled (not merely shadowed). A preflight (OPTIONS with Origin and
Access-Control-Request-Method) is answered here with 200 and the policy's
access-control-* headers, unless the origin is not allowed and
forward_not_matching_preflights (default true) sends it upstream. Other CORS
requests with an allowed origin get access-control-allow-origin (and credentials,
expose-headers) on their response. Origins match `allow_origin_string_match`; a
matcher that accepts "*" accepts every origin, as Envoy's does.
"""
from __future__ import annotations

import random

from isthmus.proxy.config.http_filters import CorsPolicyConfig

ORIGIN = b"origin"
REQUEST_METHOD = b"access-control-request-method"
REQUEST_HEADERS = b"access-control-request-headers"
REQUEST_PRIVATE = b"access-control-request-private-network"


def origin_allowed(policy: CorsPolicyConfig, origin: str) -> bool:
    for m in policy.allow_origins:
        if m.matches("*") or m.matches(origin):
            return True
    return False


class CorsFilter:
    __slots__ = ("name", "_rand")

    def __init__(self, name: str) -> None:
        self.name = name
        self._rand = random.getrandbits

    def on_request(self, stream) -> bool:
        if not stream.has_filter_overrides:
            return True
        policy = stream.filter_config(self.name)
        if not isinstance(policy, CorsPolicyConfig):
            return True
        headers = stream.headers
        origin = None
        for k, v in headers:
            if k == ORIGIN:
                origin = v
                break
        if not origin:
            return True
        enabled = policy.filter_enabled.hits(self._rand(32))
        if not enabled:
            return True  # disabled, or shadow mode only: never enforced
        allowed = origin_allowed(policy, origin.decode("latin-1"))
        stream.cors = (policy, origin) if allowed else None
        if stream.method != b"OPTIONS":
            return True
        request_method = request_headers = private = None
        for k, v in headers:
            if k == REQUEST_METHOD:
                request_method = v
            elif k == REQUEST_HEADERS:
                request_headers = v
            elif k == REQUEST_PRIVATE:
                private = v
        if not request_method:
            return True
        if not allowed and policy.forward_not_matching_preflights:
            return True
        out = []
        if allowed:
            out.append((b"access-control-allow-origin", origin))
        if policy.allow_credentials:
            out.append((b"access-control-allow-credentials", b"true"))
        if policy.allow_methods:
            out.append((b"access-control-allow-methods",
                        request_method if policy.allow_methods == "*" else policy.allow_methods.encode()))
        if policy.allow_headers:
            value = (request_headers or b"") if policy.allow_headers == "*" else policy.allow_headers.encode()
            if value:
                out.append((b"access-control-allow-headers", value))
        if policy.max_age:
            out.append((b"access-control-max-age", policy.max_age.encode()))
        if policy.allow_private_network_access and private == b"true":
            out.append((b"access-control-allow-private-network", b"true"))
        stream.cors = None
        stream.respond(200, out, b"", "cors_response")
        return False

    @staticmethod
    def on_response(stream, headers: list) -> list:
        cors = stream.cors
        if cors is None:
            return headers
        policy, origin = cors
        headers = [(k, v) for k, v in headers if k != b"access-control-allow-origin"]
        headers.append((b"access-control-allow-origin", origin))
        if policy.allow_credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
        if policy.expose_headers:
            headers.append((b"access-control-expose-headers", policy.expose_headers.encode()))
        return headers
