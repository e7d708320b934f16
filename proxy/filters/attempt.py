"""The router's building blocks around one forwarded request.

`RoutePlan`: what a route's action needs done to every request, decided once per
route and cached on the HCM (most routes need nothing but a cluster). `Attempt`: one
try against one host — the exchange a `HostPool` and an upstream connection call
back, relaying to its `Forward`. `request_hash_key` evaluates hash policies;
`original_destination` picks the ORIGINAL_DST host (socket original destination,
`x-envoy-original-dst-host`, or — explicit HTTP_PROXY mode — the request's own
authority, resolved asynchronously and cached).
"""
from __future__ import annotations

import socket

from isthmus.proxy.filters import headers as hdr
from isthmus.proxy.runtime.cluster import _is_ip
from isthmus.proxy.runtime.flow_control import LOW_WATER
from isthmus.shared.service.runtime import host_bytes
from isthmus.proxy.upstream.hashing import (CookieHash, HeaderHash, QueryParameterHash, SourceIpHash, parse_cookies,
                                            parse_query, request_hash)


class RoutePlan:
    __slots__ = ("levels", "rewrite", "host_rewrite", "timeout", "grpc_timeout", "retry", "per_try", "mirrors", "hashes",
                 "include_count", "simple", "retry_5xx", "retry_codes", "retry_grpc", "retry_headers", "decorator")

    def __init__(self, route, vhost) -> None:
        a = route.action
        self.levels = route.request_mutations
        # x-envoy-decorator-operation for upstream requests (when the HCM traces)
        self.decorator = route.operation.encode() if route.operation and route.propagate_operation else None
        self.rewrite = a.prefix_rewrite is not None or a.regex_rewrite is not None
        self.host_rewrite = bool(a.host_rewrite_literal or a.host_rewrite_header or a.host_rewrite_path_regex is not None)
        self.timeout = a.timeout
        self.grpc_timeout = a.grpc_timeout_header_max is not None
        self.retry = p = a.retry_policy
        self.per_try = p.per_try_timeout if p is not None else None
        # Which response statuses may be retried, decided without building a RetryState.
        on = p.retry_on if p is not None else frozenset()
        self.retry_5xx = bool(on & {"5xx"})
        codes = set(p.retriable_status_codes) if p is not None and "retriable-status-codes" in on else set()
        if "gateway-error" in on:
            codes |= {502, 503, 504}
        if "retriable-4xx" in on:
            codes.add(409)
        self.retry_codes = frozenset(codes)
        self.retry_grpc = bool(on & {"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"})
        self.retry_headers = p is not None and bool(p.retriable_headers)
        self.mirrors = a.mirror_policies
        self.hashes = _hash_policies(a) if a.hash_policies else ()
        self.include_count = vhost.include_request_attempt_count
        self.simple = not (self.levels or self.rewrite or self.host_rewrite or a.append_x_forwarded_host)


def plan_for(hcm, route, vhost) -> RoutePlan:
    plans = hcm.plans
    hit = plans.get(id(route))
    if hit is None or hit[0] is not route:
        if len(plans) > 10000:
            plans.clear()
        hit = plans[id(route)] = (route, RoutePlan(route, vhost))
    return hit[1]


def _hash_policies(action) -> tuple:
    out = []
    for p in action.hash_policies:
        if p.kind == "header":
            out.append(HeaderHash(p.name, p.terminal))
        elif p.kind == "cookie":
            out.append(CookieHash(p.name, int(p.cookie_ttl) if p.cookie_ttl is not None else None, p.cookie_path,
                                  p.cookie_attributes, p.terminal))
        elif p.kind == "source_ip":
            out.append(SourceIpHash(p.terminal))
        else:
            out.append(QueryParameterHash(p.name, p.terminal))
    return tuple(out)


def request_hash_key(stream, policies: tuple) -> tuple[int | None, bytes | None]:
    """(hash for the balancer, Set-Cookie value to add to the response or None)."""
    names = {p.name for p in policies if isinstance(p, HeaderHash)}
    headers = {n: v for n in names if (v := stream.header_str(n)) is not None}
    cookie = stream.header_str("cookie") if any(isinstance(p, CookieHash) for p in policies) else None
    remote = stream.conn.info.remote
    result = request_hash(policies, headers=headers, cookies=parse_cookies(cookie), source_ip=remote[0] if remote else None,
                          query=parse_query(stream.head.target.decode("latin-1")), connection_id=str(stream.conn.info.conn_id))
    return result.hash, (result.set_cookie.header_value().encode() if result.set_cookie is not None else None)


class Attempt:
    """One try against one host; see the module docstring."""

    conn = timer = None
    started = 0.0
    head = complete = sent_all = False

    def __init__(self, fwd, info, pool) -> None:
        self.fwd = fwd
        self.info = info
        self.pool = pool
        self.downstream = fwd.stream.conn  # corked while the upstream's bytes are handled

    def on_connection(self, conn) -> None:
        self.conn = conn
        self.fwd.send_request(self)

    def on_pool_failure(self, reason, detail: str) -> None:
        self.complete = True
        self.fwd.on_pool_failure(self, reason, detail)

    def on_response_head(self, head) -> None:
        self.head = True
        if head.end_stream:
            self.complete = True
        self.fwd.on_head(self, head, None)

    def on_response_whole(self, head, body: bytes) -> None:
        """A response head and its whole body, read in one go (the common small response)."""
        self.head = self.complete = True
        self.fwd.on_head(self, head, body)

    def on_response_data(self, data: bytes, end: bool) -> None:
        if end:
            self.complete = True
        self.fwd.on_data(self, data, end)

    def on_response_trailers(self, headers) -> None:
        self.complete = True
        self.fwd.on_trailers(self, headers)

    def on_reset(self, kind: str, detail: str) -> None:
        self.complete = True
        self.fwd.on_reset(self, kind, detail)

    def on_window(self, pending: int) -> None:
        if pending < LOW_WATER:
            self.fwd.on_upstream_drain()

    def abandon(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.complete:
            return
        self.complete = True
        if self.conn is not None:
            self.conn.abandon(self)
        else:
            self.pool.cancel(self)


# ---------------------------------------------------------------- ORIGINAL_DST

DNS: dict[str, tuple[float, str | None]] = {}
DNS_TTL = 30.0
RESOLVING = object()


def original_destination(fwd):
    """HostInfo for an ORIGINAL_DST cluster, None (UH), or RESOLVING (try again later)."""
    stream = fwd.stream
    cluster = fwd.cluster
    od = cluster.config.original_dst
    target = None
    if od is not None and od.use_http_header:
        v = hdr.get(stream.headers, od.http_header_name.encode())
        if v:
            target = v.decode("latin-1")
    if target is None and stream.conn.info.original_dst is not None:
        ip, port = stream.conn.info.original_dst
        return cluster.original_host(ip, port)
    if target is None:  # explicit HTTP_PROXY mode: where the request itself says it goes
        target = stream.authority
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        host, port = target, "443" if stream.conn.info.tls else "80"
    host = host.strip("[]")
    if not _is_ip(host):
        loop = stream.conn.loop
        hit = DNS.get(host)
        if hit is None or loop.time() - hit[0] > DNS_TTL:
            if fwd.resolving:
                return None
            fwd.resolving = True
            loop.create_task(_resolve(fwd, host))
            return RESOLVING
        if hit[1] is None:
            return None
        host = hit[1]
    return cluster.original_host(host, int(port))


async def _resolve(fwd, name: str) -> None:
    loop = fwd.stream.conn.loop
    try:
        infos = await loop.getaddrinfo(host_bytes(name), None, type=socket.SOCK_STREAM)
        ip = infos[0][4][0]
    except OSError:
        ip = None
    if len(DNS) > 4096:
        DNS.clear()
    DNS[name] = (loop.time(), ip)
    fwd.try_once()
