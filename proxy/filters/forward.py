"""Forwarding one request upstream: attempts, retries, timeouts, body replay, mirrors.

`start_forward(stream, action, cluster, router)` prepares the upstream request once
(route request-header mutations, prefix/regex path rewrite with
x-envoy-original-path, host rewrites, hash key, timeouts) and makes the first
`Attempt`: pick a host (previous hosts excluded on retries), take a connection from
the host's pool, write the request. Responses stream back to the downstream with
backpressure both ways. The body is kept for replay only when a retry or a mirror
may need it, up to the route's buffer limit (beyond it, no more retries). Failures
map to Envoy's local replies: UH (no host), UO (breaker), UF (connect), UC/UR
(reset before headers), UT (route timeout 504, also after the last per-try
timeout), URX (retries exhausted), and a reset once the response has started.
"""
from __future__ import annotations

import random
import socket

from isthmus.proxy.filters import headers as hdr
from isthmus.proxy.filters.local_reply import (BODY_NO_HEALTHY_UPSTREAM, BODY_TIMEOUT, UC, UF, UH, UO, UPE, UR, URX, UT,
                                               reset_body)
from isthmus.proxy.runtime.cluster import _is_ip, local_result
from isthmus.proxy.runtime.flow_control import HIGH_WATER, LOW_WATER
from isthmus.proxy.runtime.upstream import H1, H2, HostPool
from isthmus.proxy.upstream.hashing import (CookieHash, HeaderHash, QueryParameterHash, SourceIpHash, parse_cookies,
                                            parse_query, request_hash)
from isthmus.proxy.upstream.pool_events import FailureReason
from isthmus.proxy.filters.mirror import start_mirrors
from isthmus.proxy.filters.retry import RetryState

ATTEMPT_COUNT = b"x-envoy-attempt-count"
SERVICE_TIME = b"x-envoy-upstream-service-time"
_FLAG_FOR = {"connection_termination": UC, "remote_reset": UR, "refused_stream": UR, "protocol_error": UPE,
             "connection_failure": UF, "connect_timeout": UF}


def _grpc_timeout(value: bytes | None) -> float | None:
    if not value or len(value) < 2 or not value[:-1].isdigit():
        return None
    unit = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}.get(value[-1:])
    return int(value[:-1]) * unit if unit is not None else None


_HASH_CACHE: dict[int, tuple] = {}


def _hash_policies(action) -> tuple:
    hit = _HASH_CACHE.get(id(action))
    if hit is None or hit[0] is not action:
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
        if len(_HASH_CACHE) > 10000:
            _HASH_CACHE.clear()
        hit = _HASH_CACHE[id(action)] = (action, tuple(out))
    return hit[1]


def start_forward(stream, action, cluster, router) -> None:
    fwd = Forward(stream, action, cluster, router)
    stream.forward = fwd
    fwd.begin()


class Attempt:
    """One try against one host: the exchange a pool and a connection call back."""

    __slots__ = ("fwd", "info", "pool", "conn", "timer", "started", "head", "complete", "downstream", "sent_all")

    def __init__(self, fwd: "Forward", info, pool: HostPool) -> None:
        self.fwd = fwd
        self.info = info
        self.pool = pool
        self.conn = None
        self.timer = None
        self.started = 0.0
        self.head = False
        self.complete = False
        self.sent_all = False
        self.downstream = fwd.stream.conn

    def on_connection(self, conn) -> None:
        self.conn = conn
        self.fwd.send_request(self)

    def on_pool_failure(self, reason: FailureReason, detail: str) -> None:
        self.complete = True
        self.fwd.on_pool_failure(self, reason, detail)

    def on_response_head(self, head) -> None:
        self.head = True
        if head.end_stream:
            self.complete = True
        self.fwd.on_head(self, head)

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


class Forward:
    __slots__ = ("stream", "action", "cluster", "router", "headers", "target", "authority", "retry", "body", "body_size",
                 "buffering", "limit", "attempt", "tried", "hash_key", "set_cookie", "timeout", "timer", "retry_timer",
                 "response_started", "trailers", "unacked", "blocked", "protocol", "include_count", "mirrors", "priority",
                 "per_try", "done", "queue", "resolving")

    def __init__(self, stream, action, cluster, router) -> None:
        self.stream = stream
        self.action = action
        self.cluster = cluster
        self.router = router
        self.attempt: Attempt | None = None
        self.tried: list = []
        self.hash_key = None
        self.set_cookie = None
        self.timer = self.retry_timer = None
        self.response_started = False
        self.trailers = None
        self.unacked = 0
        self.blocked = False
        self.body: list | None = None
        self.body_size = 0
        self.retry = None
        self.mirrors = ()
        self.done = False
        self.resolving = False
        self.priority = action.priority

    # -- preparing the upstream request -----------------------------------------------
    def begin(self) -> None:
        stream, action, route = self.stream, self.action, self.stream.route
        headers = stream.headers
        w = stream.weighted
        levels = w.request_mutations if w is not None else route.request_mutations
        if levels:
            headers = hdr.apply_mutations(headers, levels, stream)
        suppress = self.router.suppress_envoy_headers
        if action.prefix_rewrite is not None or action.regex_rewrite is not None:
            new_path = route.rewrite_path(stream.path)
            if new_path != stream.path:
                if not suppress:
                    headers = hdr.set_header(headers, b"x-envoy-original-path", stream.head.target)
                self.target = (new_path + ("?" + stream.query if stream.query else "")).encode("latin-1")
            else:
                self.target = stream.head.target
        else:
            self.target = stream.head.target
        authority = stream.head.authority
        rewritten = None
        if w is not None and w.host_rewrite_literal:
            rewritten = w.host_rewrite_literal.encode()
        elif action.host_rewrite_literal:
            rewritten = action.host_rewrite_literal.encode()
        elif action.host_rewrite_header:
            v = hdr.get(headers, action.host_rewrite_header.encode())
            rewritten = v or None
        elif action.host_rewrite_path_regex is not None:
            rewritten = action.host_rewrite_path_regex.apply(stream.path).encode("latin-1")
        if rewritten is not None and rewritten != authority:
            if action.append_x_forwarded_host:
                xfh = hdr.get(headers, b"x-forwarded-host")
                headers = hdr.set_header(headers, b"x-forwarded-host", xfh + b"," + authority if xfh else authority)
            authority = rewritten
        self.authority = authority
        timeout = action.timeout
        if action.grpc_timeout_header_max is not None:
            gt = _grpc_timeout(hdr.get(headers, b"grpc-timeout"))
            if gt is not None:
                cap = action.grpc_timeout_header_max
                timeout = min(gt, cap) if cap else gt
                if action.grpc_timeout_header_offset:
                    timeout = max(0.001, timeout - action.grpc_timeout_header_offset)
        self.timeout = timeout
        policy = action.retry_policy
        self.per_try = policy.per_try_timeout if policy is not None else None
        if timeout and not suppress:
            expected = min(timeout, self.per_try) if self.per_try else timeout
            headers = hdr.set_header(headers, b"x-envoy-expected-rq-timeout-ms", b"%d" % int(expected * 1000))
        self.headers = headers
        self.include_count = stream.vhost.include_request_attempt_count
        if policy is not None and stream.upgrade is None:
            self.retry = RetryState(policy, self.cluster.breakers.get(self.priority) or self.cluster.breakers["default"])
        if action.mirror_policies:
            self.mirrors = tuple(m for m in action.mirror_policies if m.fraction.hits(random.getrandbits(32)))
        self.buffering = self.retry is not None or bool(self.mirrors)
        self.limit = route.per_request_buffer_limit_bytes or stream.conn.buffer_limit
        if self.buffering and not stream.head.end_stream:
            self.body = []
        self.queue: list | None = None  # body not yet sent, while no connection (not buffering)
        pending, stream.pending = stream.pending, None
        for kind, value, _ in pending or ():
            if kind == 1:
                self.trailers = value
            elif self.body is not None:
                self.body.append(value)
                self.body_size += len(value)
            else:
                self._queue().append(value)
        if action.hash_policies:
            self._hash()
        http = self.cluster.config.http.protocol
        self.protocol = H2 if (http == "http2" or (http == "downstream" and stream.conn.is_h2)) and stream.upgrade is None else H1
        if timeout and stream.request_done:
            self.timer = stream.conn.loop.call_later(timeout, self.on_global_timeout)
        if stream.request_done and self.mirrors:
            start_mirrors(self, b"".join(self.body) if self.body is not None else b"")
        self.try_once()

    def _queue(self) -> list:
        if self.queue is None:
            self.queue = []
        return self.queue

    def _hash(self) -> None:
        stream = self.stream
        policies = _hash_policies(self.action)
        names = {p.name for p in policies if isinstance(p, HeaderHash)}
        headers = {n: stream.header_str(n) for n in names}
        cookie = stream.header_str("cookie") if any(isinstance(p, CookieHash) for p in policies) else None
        remote = stream.conn.info.remote
        result = request_hash(policies, headers={k: v for k, v in headers.items() if v is not None},
                              cookies=parse_cookies(cookie), source_ip=remote[0] if remote else None,
                              query=parse_query(stream.head.target.decode("latin-1")),
                              connection_id=str(stream.conn.info.conn_id))
        self.hash_key = result.hash
        if result.set_cookie is not None:
            self.set_cookie = result.set_cookie.header_value().encode()

    # -- attempts ------------------------------------------------------------------------------
    def try_once(self) -> None:
        self.retry_timer = None
        stream = self.stream
        if stream.done:
            return
        cluster = self.cluster
        if cluster.config.discovery_type == "ORIGINAL_DST":
            info = self._original_destination()
            if info is _RESOLVING:
                return
        else:
            exclude = ()
            max_reselects = 1
            retry = self.retry
            if retry is not None and self.tried and retry.policy.retry_host_predicates:
                exclude = self.tried
                max_reselects = retry.policy.host_selection_retry_max_attempts
            info = cluster.choose(self.hash_key, exclude, max_reselects)
        if info is None:
            cluster.stats.upstream_cx_none_healthy.value += 1
            stream.local_reply(503, BODY_NO_HEALTHY_UPSTREAM, UH, "no_healthy_upstream")
            return
        stream.attempts += 1
        stream.upstream = info
        key = (self.protocol, self.priority)
        pool = info.pools.get(key)
        if pool is None or pool.draining:
            pool = info.pools[key] = HostPool(cluster, info, self.protocol, self.priority)
        att = self.attempt = Attempt(self, info, pool)
        att.started = stream.conn.loop.time()
        self.tried.append(info.host)
        cluster.stats.upstream_rq_total.value += 1
        info.rq_total += 1
        pool.request(att)

    def _original_destination(self):
        stream = self.stream
        od = self.cluster.config.original_dst
        target = None
        if od is not None and od.use_http_header:
            v = hdr.get(stream.headers, od.http_header_name.encode())
            if v:
                target = v.decode("latin-1")
        if target is None and stream.conn.info.original_dst is not None:
            ip, port = stream.conn.info.original_dst
            return self.cluster.original_host(ip, port)
        if target is None:  # explicit HTTP_PROXY mode: the request's own authority
            target = stream.authority
        host, sep, port = target.rpartition(":")
        if not sep or not port.isdigit():
            host, port = target, "443" if stream.conn.info.tls else "80"
        host = host.strip("[]")
        if not _is_ip(host):
            hit = _DNS.get(host)
            loop = stream.conn.loop
            if hit is None or loop.time() - hit[0] > DNS_TTL:
                if self.resolving:
                    return None
                self.resolving = True
                loop.create_task(self._resolve(host))
                return _RESOLVING
            self.resolving = False
            if hit[1] is None:
                return None
            host = hit[1]
        return self.cluster.original_host(host, int(port))

    async def _resolve(self, name: str) -> None:
        loop = self.stream.conn.loop
        try:
            infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
            ip = infos[0][4][0]
        except OSError:
            ip = None
        _DNS[name] = (loop.time(), ip)
        if len(_DNS) > 4096:
            _DNS.clear()
        self.try_once()

    def send_request(self, att: Attempt) -> None:
        stream = self.stream
        conn = att.conn
        if att is not self.attempt or stream.done:
            att.abandon()
            return
        headers = self.headers
        if self.include_count:
            headers = [*headers, (ATTEMPT_COUNT, b"%d" % stream.attempts)]
        authority = self.authority
        if self.action.auto_host_rewrite and att.info.host.hostname:
            authority = att.info.host.hostname.encode()
        stream.upstream_protocol = "HTTP/2" if self.protocol == H2 else "HTTP/1.1"
        stream.upstream_local = conn.local
        scheme = b"https" if conn.peer is not None else b"http"
        if self.body is not None:
            body = b"".join(self.body)
            if len(self.body) > 1:
                self.body = [body]
            end = stream.request_done and self.trailers is None
            conn.start(att, stream.method, self.target, authority, headers, body, end, stream.upgrade, scheme)
            if stream.request_done and self.trailers is not None:
                conn.send_trailers(att, self.trailers)
        else:
            queue, self.queue = self.queue, None
            body = b"".join(queue) if queue else b""
            end = stream.request_done and self.trailers is None
            conn.start(att, stream.method, self.target, authority, headers, body, end, stream.upgrade, scheme)
            if stream.request_done and self.trailers is not None:
                conn.send_trailers(att, self.trailers)
        if stream.request_done:
            att.sent_all = True
            self._per_try_timer(att)

    def _per_try_timer(self, att: Attempt) -> None:
        if self.per_try:
            att.timer = self.stream.conn.loop.call_later(self.per_try, self.on_per_try_timeout, att)

    # -- request body ---------------------------------------------------------------------------
    def on_request_data(self, data: bytes, end: bool) -> None:
        stream = self.stream
        if end and self.timeout and self.timer is None and not self.response_started:
            self.timer = stream.conn.loop.call_later(self.timeout, self.on_global_timeout)
        if self.body is not None:
            self.body.append(data)
            self.body_size += len(data)
            if self.body_size > self.limit:
                self.body = None  # too big to replay: no retries, no mirrors
                self.retry = None
                self.mirrors = ()
        att = self.attempt
        if att is not None and att.conn is not None and not att.complete:
            att.conn.send_data(att, data, end)
            if end:
                att.sent_all = True
                self._per_try_timer(att)
            self._after_upstream_write(att, len(data))
        else:
            if self.body is None:
                self._queue().append(data)
            stream.conn.ack(stream, len(data))
        if end and self.mirrors:
            start_mirrors(self, b"".join(self.body) if self.body is not None else b"")

    def on_request_trailers(self, headers) -> None:
        self.trailers = headers
        att = self.attempt
        if self.timeout and self.timer is None and not self.response_started:
            self.timer = self.stream.conn.loop.call_later(self.timeout, self.on_global_timeout)
        if att is not None and att.conn is not None and not att.complete:
            att.conn.send_trailers(att, headers)
            att.sent_all = True
            self._per_try_timer(att)

    def _after_upstream_write(self, att: Attempt, n: int) -> None:
        conn = att.conn
        ds = self.stream.conn
        blocked = conn.flow.write_paused or (self.protocol == H2 and conn.pending_send_bytes(att) > HIGH_WATER)
        if ds.is_h2:
            if blocked:
                self.unacked += n
                self._block_upstream(conn)
            else:
                ds.ack(self.stream, n)
        elif blocked:
            self._block_upstream(conn)

    def _block_upstream(self, conn) -> None:
        if self.blocked:
            return
        self.blocked = True
        if not self.stream.conn.is_h2:
            self.stream.conn.flow.pause_reading(self)
        if self.protocol == H1 or conn.flow.write_paused:
            conn.flow.on_drain(self.on_upstream_drain)

    def on_upstream_drain(self) -> None:
        if not self.blocked:
            return
        self.blocked = False
        ds = self.stream.conn
        if ds.is_h2:
            n, self.unacked = self.unacked, 0
            if n:
                ds.ack(self.stream, n)
        else:
            ds.flow.resume_reading(self)

    # -- responses ---------------------------------------------------------------------------------
    def on_head(self, att: Attempt, head) -> None:
        if att is not self.attempt:
            return
        stream = self.stream
        if att.timer is not None:
            att.timer.cancel()
            att.timer = None
        status = head.status
        cluster = self.cluster
        info = att.info
        cluster.report(info, status)
        retry = self.retry
        if retry is not None and retry.retriable_response(status, head.headers):
            if self._can_replay():
                verdict = retry.consume()
                if verdict == "retry":
                    cluster.stats.upstream_rq_retry.value += 1
                    info.rq_error += 1
                    att.abandon()
                    self._schedule_retry()
                    return
                self._no_retry(verdict)
        if status >= 500:
            info.rq_error += 1
        else:
            info.rq_success += 1
        cluster.stats.response(status)
        if self.retry is not None and self.retry.count and status < 500:
            cluster.stats.upstream_rq_retry_success.value += 1
        if self.timer is not None and head.end_stream:
            self.timer.cancel()
            self.timer = None
        self.response_started = True
        stream.details = "via_upstream"
        headers = head.headers
        if not self.router.suppress_envoy_headers:
            ms = int((stream.conn.loop.time() - att.started) * 1000)
            headers = [*headers, (SERVICE_TIME, b"%d" % ms)]
        if stream.vhost.include_attempt_count_in_response:
            headers = [*headers, (ATTEMPT_COUNT, b"%d" % stream.attempts)]
        if self.set_cookie is not None:
            headers = [*headers, (b"set-cookie", self.set_cookie)]
        if head.end_stream:
            self._finish_attempt(att)
        stream.encode_head(status, headers, head.end_stream)

    def on_data(self, att: Attempt, data: bytes, end: bool) -> None:
        if att is not self.attempt:
            return
        stream = self.stream
        if end:
            self._finish_attempt(att)
        stream.encode_data(data, end)
        if not end and not stream.done:
            ds = stream.conn
            if ds.blocked(stream):
                if self.protocol == H2:
                    ds.when_writable(stream, lambda c=att.conn, n=len(data): c.ack(att, n))
                else:
                    conn = att.conn
                    conn.flow.pause_reading(stream)
                    ds.when_writable(stream, lambda: conn.flow.resume_reading(stream))
            elif self.protocol == H2:
                att.conn.ack(att, len(data))

    def on_trailers(self, att: Attempt, headers) -> None:
        if att is not self.attempt:
            return
        self._finish_attempt(att)
        self.stream.encode_trailers(headers)

    def _finish_attempt(self, att: Attempt) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not att.sent_all and self.stream.upgrade is None:
            att.abandon()  # the response ended before the request: the connection cannot be reused

    def on_reset(self, att: Attempt, kind: str, detail: str) -> None:
        if att is not self.attempt:
            return
        if att.timer is not None:
            att.timer.cancel()
            att.timer = None
        stream = self.stream
        info = att.info
        info.rq_error += 1
        self.cluster.stats.upstream_rq_rx_reset.value += 1
        self.cluster.report(info, local_result("reset"))
        if self.response_started:
            stream.flags |= _FLAG_FOR.get(kind, UR)
            stream.reset()
            return
        self._fail(kind, detail)

    def on_pool_failure(self, att: Attempt, reason: FailureReason, detail: str) -> None:
        if att is not self.attempt:
            return
        stream = self.stream
        att.info.rq_error += 1
        if reason is FailureReason.OVERFLOW:
            stream.local_reply(503, reset_body("overflow"), UO, "upstream_reset_before_response_started{overflow}")
            return
        if reason is FailureReason.CONNECTION_TERMINATION:
            self._fail("connection_termination", detail)
            return
        stream.transport_failure = detail
        self._fail("connect_timeout" if reason is FailureReason.CONNECT_TIMEOUT else "connection_failure", detail)

    def _fail(self, kind: str, detail: str) -> None:
        retry = self.retry
        if retry is not None and retry.retriable_reset(kind) and self._can_replay():
            verdict = retry.consume()
            if verdict == "retry":
                self.cluster.stats.upstream_rq_retry.value += 1
                self._schedule_retry()
                return
            self._no_retry(verdict)
        stream = self.stream
        flag = _FLAG_FOR.get(kind, UC)
        status = 502 if kind == "protocol_error" else 503
        tls_detail = detail if detail.startswith("TLS_error") else ""
        stream.local_reply(status, reset_body(kind, tls_detail, stream.attempts > 1), flag,
                           f"upstream_reset_before_response_started{{{kind}}}")

    def _no_retry(self, verdict: str) -> None:
        stats = self.cluster.stats
        if verdict == "limit":
            if self.retry is not None and self.retry.count:
                self.stream.flags |= URX
                stats.upstream_rq_retry_limit_exceeded.value += 1
        else:
            self.stream.flags |= UO
            stats.upstream_rq_retry_overflow.value += 1

    def _can_replay(self) -> bool:
        """The request can be sent again: nothing went downstream yet, and the body (if
        any) is all still here."""
        return not self.response_started and (self.body is not None or self.stream.head.end_stream)

    def _schedule_retry(self) -> None:
        retry = self.retry
        retry.release_one() if retry.held > 1 else None
        self.attempt = None
        delay = retry.backoff()
        self.retry_timer = self.stream.conn.loop.call_later(delay, self.try_once)

    # -- timeouts -------------------------------------------------------------------------------------
    def on_per_try_timeout(self, att: Attempt) -> None:
        att.timer = None
        if att is not self.attempt or self.response_started:
            return
        stats = self.cluster.stats
        stats.upstream_rq_per_try_timeout.value += 1
        att.info.rq_timeout += 1
        self.cluster.report(att.info, local_result("timeout"))
        att.abandon()
        retry = self.retry
        if retry is not None and retry.retriable_reset("per_try_timeout", True) and self._can_replay():
            verdict = retry.consume()
            if verdict == "retry":
                stats.upstream_rq_retry.value += 1
                self._schedule_retry()
                return
            self._no_retry(verdict)
        self.attempt = None
        self.stream.local_reply(504, BODY_TIMEOUT, UT, "upstream_per_try_timeout")

    def on_global_timeout(self) -> None:
        self.timer = None
        stream = self.stream
        if stream.done:
            return
        self.cluster.stats.upstream_rq_timeout.value += 1
        att = self.attempt
        if att is not None:
            att.info.rq_timeout += 1
            self.cluster.report(att.info, local_result("timeout"))
            att.abandon()
        if self.retry_timer is not None:
            self.retry_timer.cancel()
        self.attempt = None
        if self.response_started:
            stream.flags |= UT
            stream.reset()
        else:
            stream.local_reply(504, BODY_TIMEOUT, UT, "upstream_response_timeout")

    # -- the downstream side ends --------------------------------------------------------------------
    def on_downstream_drain(self) -> None:
        pass

    def cancel(self) -> None:
        """The downstream went away (or the stream is being reset): give up upstream."""
        self.finished()

    def finished(self) -> None:
        if self.done:
            return
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.retry_timer is not None:
            self.retry_timer.cancel()
            self.retry_timer = None
        att = self.attempt
        if att is not None and not att.complete:
            if att.conn is None or not att.head:
                self.cluster.stats.upstream_rq_cancelled.value += 1
            att.abandon()
        if self.retry is not None:
            self.retry.release_all()
        if self.blocked:
            self.on_upstream_drain()


_DNS: dict[str, tuple[float, str | None]] = {}  # ORIGINAL_DST by name (explicit proxy mode)
DNS_TTL = 30.0
_RESOLVING = object()
