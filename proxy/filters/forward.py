"""Forwarding one request upstream: attempts, retries, timeouts, body replay, mirrors.

`start_forward(stream, action, cluster, router)` prepares the upstream request once
(route request-header mutations, prefix/regex path rewrite with
x-envoy-original-path, host rewrites, hash key, timeouts; see attempt.RoutePlan)
and makes the first `Attempt`: pick a host (previous hosts excluded on retries),
take a connection from the host's pool, write the request. Responses stream back
with backpressure both ways. The body is kept for replay only when a retry or a
mirror may need it, up to the route's buffer limit (beyond it, no more retries).
Failures map to Envoy's local replies: UH (no host), UO (breaker), UF (connect),
UC/UR/UPE (reset before headers), UT (route timeout 504, also after the last
per-try timeout), URX (retries exhausted); a reset once the response has started.
"""
from __future__ import annotations

import random

from isthmus.proxy.filters import headers as hdr
from isthmus.proxy.filters.attempt import RESOLVING, Attempt, original_destination, plan_for, request_hash_key
from isthmus.proxy.filters.local_reply import BODY_NO_HEALTHY_UPSTREAM, UH
from isthmus.proxy.filters.mirror import start_mirrors
from isthmus.proxy.filters.outcomes import Outcomes
from isthmus.proxy.filters.retry import RetryState
from isthmus.proxy.runtime.flow_control import HIGH_WATER
from isthmus.proxy.runtime.upstream import H1, H2, HostPool

ATTEMPT_COUNT = b"x-envoy-attempt-count"
DECORATOR_OPERATION = b"x-envoy-decorator-operation"
PEER_ID = b"x-envoy-peer-metadata-id"
PEER_MD = b"x-envoy-peer-metadata"
SERVICE_TIME = b"x-envoy-upstream-service-time"
_COUNTS = [b"%d" % i for i in range(16)]
_MILLIS = [b"%d" % i for i in range(1000)]  # x-envoy-upstream-service-time values, formatted once


def _grpc_timeout(value: bytes | None) -> float | None:
    if not value or len(value) < 2 or not value[:-1].isdigit():
        return None
    unit = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}.get(value[-1:])
    return int(value[:-1]) * unit if unit is not None else None


def start_forward(stream, action, cluster, router) -> None:
    stream.forward = fwd = Forward(stream, action, cluster, router)
    fwd.begin()


class Forward(Outcomes):
    # per-request defaults (class attributes; instances set what differs)
    attempt = timer = retry_timer = hash_key = set_cookie = trailers = body = queue = retry = None
    response_started = blocked = done = resolving = no_retry = False
    unacked = body_size = 0
    mirrors = ()
    count_at = -1  # index of x-envoy-attempt-count in headers

    def __init__(self, stream, action, cluster, router) -> None:
        self.stream = stream
        self.action = action
        self.cluster = cluster
        self.router = router
        self.tried: list = []

    # -- preparing the upstream request -----------------------------------------------
    def begin(self) -> None:
        stream, action = self.stream, self.action
        route = stream.route
        hit = stream.hcm.plans.get(id(route))
        plan = self.plan = hit[1] if hit is not None and hit[0] is route else plan_for(stream.hcm, route, stream.vhost)
        headers = stream.headers
        head = stream.head
        self.target = head.target
        self.authority = head.authority
        if not plan.simple or stream.weighted is not None:
            headers = self._rewrite(headers, plan)
        timeout = plan.timeout
        if plan.grpc_timeout and stream.grpc_timeout is not None:
            gt = _grpc_timeout(stream.grpc_timeout)
            if gt is not None:
                cap = action.grpc_timeout_header_max
                timeout = min(gt, cap) if cap else gt
                if action.grpc_timeout_header_offset:
                    timeout = max(0.001, timeout - action.grpc_timeout_header_offset)
        self.timeout = timeout
        if timeout and not self.router.suppress_envoy_headers:
            expected = min(timeout, plan.per_try) if plan.per_try else timeout
            headers.append((b"x-envoy-expected-rq-timeout-ms", b"%d" % int(expected * 1000)))
        if plan.decorator is not None and stream.hcm.tracing is not None:
            # the route's span name travels upstream, as Envoy's router sends it (replacing the client's)
            headers = hdr.set_header(headers, DECORATOR_OPERATION, plan.decorator)
        if plan.include_count:
            self.count_at = len(headers)
            headers.append((ATTEMPT_COUNT, b"1"))
        self.headers = headers
        if plan.mirrors:
            self.mirrors = tuple(m for m in plan.mirrors if m.fraction.hits(random.getrandbits(32)))
        if not head.end_stream and ((plan.retry is not None and stream.upgrade is None) or self.mirrors):
            self.body = []
            self.limit = route.per_request_buffer_limit_bytes or stream.conn.buffer_limit
        pending = stream.pending
        if pending:
            stream.pending = None
            for kind, value, _ in pending:
                if kind == 1:
                    self.trailers = value
                elif self.body is not None:
                    self.body.append(value)
                    self.body_size += len(value)
                else:
                    self._queue().append(value)
        if plan.hashes:
            self.hash_key, self.set_cookie = request_hash_key(stream, plan.hashes)
        http = self.cluster.config.http.protocol
        self.protocol = H2 if (http == "http2" or (http == "downstream" and stream.conn.is_h2)) and stream.upgrade is None else H1
        if timeout and stream.request_done:
            self.timer = stream.conn.loop.call_later(timeout, self.on_global_timeout)
        if stream.request_done and self.mirrors:
            start_mirrors(self, b"".join(self.body) if self.body is not None else b"")
        self.try_once()

    def _rewrite(self, headers: list, plan) -> list:
        stream, action = self.stream, self.action
        w = stream.weighted
        levels = w.request_mutations if w is not None else plan.levels
        if levels:
            headers = hdr.apply_mutations(headers, levels, stream)
        if plan.rewrite:
            new_path = stream.route.rewrite_path(stream.path)
            if new_path != stream.path:
                if not self.router.suppress_envoy_headers:
                    headers = hdr.set_header(headers, b"x-envoy-original-path", stream.head.target)
                self.target = (new_path + ("?" + stream.query if stream.query else "")).encode("latin-1")
        authority = self.authority
        rewritten = None
        if w is not None and w.host_rewrite_literal:
            rewritten = w.host_rewrite_literal.encode()
        elif action.host_rewrite_literal:
            rewritten = action.host_rewrite_literal.encode()
        elif action.host_rewrite_header:
            rewritten = hdr.get(headers, action.host_rewrite_header.encode()) or None
        elif action.host_rewrite_path_regex is not None:
            rewritten = action.host_rewrite_path_regex.apply(stream.path).encode("latin-1")
        if rewritten is not None and rewritten != authority:
            if action.append_x_forwarded_host:
                xfh = hdr.get(headers, b"x-forwarded-host")
                headers = hdr.set_header(headers, b"x-forwarded-host", xfh + b"," + authority if xfh else authority)
            self.authority = rewritten
        return headers

    def _retry(self) -> RetryState | None:
        """The retry state, made on the first outcome that might be retried."""
        retry = self.retry
        if retry is None and self.plan.retry is not None and self.stream.upgrade is None and not self.no_retry:
            priority = self.action.priority
            retry = self.retry = RetryState(self.plan.retry, self.cluster.breakers.get(priority) or self.cluster.breakers["default"])
        return retry

    def _queue(self) -> list:
        if self.queue is None:
            self.queue = []
        return self.queue

    # -- attempts ------------------------------------------------------------------------------
    def try_once(self) -> None:
        self.retry_timer = None
        stream = self.stream
        if stream.done:
            return
        cluster = self.cluster
        if cluster.lb is None:
            info = original_destination(self)
            if info is RESOLVING:
                return
        elif len(self.tried) and self.retry is not None and self.retry.policy.retry_host_predicates:
            info = cluster.choose(self.hash_key, self.tried, self.retry.policy.host_selection_retry_max_attempts)
        elif self.hash_key is None:
            host = cluster.lb.choose(None)
            info = cluster.info.get(host) if host is not None else None
        else:
            info = cluster.choose(self.hash_key)
        if info is None:
            cluster.stats.upstream_cx_none_healthy.value += 1
            stream.local_reply(503, BODY_NO_HEALTHY_UPSTREAM, UH, "no_healthy_upstream")
            return
        stream.attempts += 1
        stream.upstream = info
        key = (self.protocol, self.action.priority)
        pool = info.pools.get(key)
        if pool is None or pool.draining:
            pool = info.pools[key] = HostPool(cluster, info, self.protocol, self.action.priority)
        att = self.attempt = Attempt(self, info, pool)
        att.started = stream.conn.loop.time()
        self.tried.append(info.host)
        cluster.stats.upstream_rq_total.value += 1
        info.rq_total += 1
        pool.request(att)

    def send_request(self, att: Attempt) -> None:
        stream = self.stream
        conn = att.conn
        if att is not self.attempt or stream.done:
            att.abandon()
            return
        headers = self.headers
        if self.count_at >= 0 and stream.attempts > 1:
            headers[self.count_at] = (ATTEMPT_COUNT, _COUNTS[stream.attempts] if stream.attempts < 16 else b"%d" % stream.attempts)
        hcm = stream.hcm
        if att.info.tls is not None and hcm.outbound and hcm.mesh:  # Istio's metadata exchange, to mesh peers only
            headers = [*headers, (PEER_ID, hcm.peer_id), (PEER_MD, hcm.peer_md)]
        authority = self.authority
        if self.action.auto_host_rewrite and att.info.host.hostname:
            authority = att.info.host.hostname.encode()
        stream.upstream_local = conn.local
        scheme = b"https" if conn.peer is not None else b"http"
        if self.body is not None:
            body = b"".join(self.body)
            if len(self.body) > 1:
                self.body = [body]
        else:
            queue, self.queue = self.queue, None
            body = b"".join(queue) if queue else b""
        end = stream.request_done and self.trailers is None
        conn.start(att, stream.method, self.target, authority, headers, body, end, stream.upgrade, scheme)
        if stream.request_done:
            if self.trailers is not None:
                conn.send_trailers(att, self.trailers)
            att.sent_all = True
            if self.plan.per_try:
                self._per_try_timer(att)

    def _per_try_timer(self, att: Attempt) -> None:
        att.timer = self.stream.conn.loop.call_later(self.plan.per_try, self.on_per_try_timeout, att)

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
                self.no_retry = True
                self.mirrors = ()
        att = self.attempt
        if att is not None and att.conn is not None and not att.complete:
            att.conn.send_data(att, data, end)
            if end:
                att.sent_all = True
                if self.plan.per_try:
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
            if self.plan.per_try:
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
    def on_head(self, att: Attempt, head, body: bytes | None) -> None:
        if att is not self.attempt:
            return
        stream = self.stream
        if att.timer is not None:
            att.timer.cancel()
            att.timer = None
        status = head.status
        cluster = self.cluster
        info = att.info
        if cluster.outlier is not None:
            cluster.report(info, status)
        plan = self.plan
        retry = None
        if plan.retry is not None and (status >= 500 and plan.retry_5xx or status in plan.retry_codes or plan.retry_headers
                                       or plan.retry_grpc and stream.grpc):
            retry = self._retry()
        if retry is not None and retry.retriable_response(status, head.headers) and self._can_replay():
            verdict = retry.consume()
            if verdict == "retry":
                cluster.stats.upstream_rq_retry.value += 1
                info.rq_error += 1
                att.abandon()
                self._schedule_retry()
                return
            self._no_retry(verdict)
        stats = cluster.stats
        if 200 <= status < 300:
            info.rq_success += 1
            stats.upstream_rq_completed.value += 1
            stats.upstream_rq_2xx.value += 1
        else:
            if status >= 500:
                info.rq_error += 1
            else:
                info.rq_success += 1
            stats.response(status)
        retry = self.retry
        if retry is not None and retry.count and status < 500:
            stats.upstream_rq_retry_success.value += 1
        if (head.end_stream or body is not None) and (self.timer is not None or not att.sent_all):
            self._finish_attempt(att)  # (it has nothing to do for a sent request without a timer)
        self.response_started = True
        stream.details = "via_upstream"
        headers = head.headers
        if not self.router.suppress_envoy_headers:
            ms = int((stream.conn.loop.time() - att.started) * 1000)
            headers.append((SERVICE_TIME, _MILLIS[ms] if 0 <= ms < 1000 else b"%d" % ms))
        if stream.vhost.include_attempt_count_in_response:
            headers.append((ATTEMPT_COUNT, b"%d" % stream.attempts))
        if self.set_cookie is not None:
            headers.append((b"set-cookie", self.set_cookie))
        stream.encode_head(status, headers, head.end_stream, body)

    def on_data(self, att: Attempt, data: bytes, end: bool) -> None:
        if att is not self.attempt:
            return
        stream = self.stream
        if end:
            self._finish_attempt(att)
        stream.encode_data(data, end)
        if not end and not stream.done:
            ds = stream.conn
            conn = att.conn
            if ds.blocked(stream):
                if self.protocol == H2:
                    ds.when_writable(stream, lambda n=len(data): conn.ack(att, n))
                else:
                    conn.flow.pause_reading(stream)
                    ds.when_writable(stream, lambda: conn.flow.resume_reading(stream))
            elif self.protocol == H2:
                conn.ack(att, len(data))

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
            att.complete = False
            att.abandon()  # the response ended before the request: the connection cannot be reused

    # -- the end -------------------------------------------------------------------------------------
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
        if att is not None:
            if not att.complete:
                if att.conn is None or not att.head:
                    self.cluster.stats.upstream_rq_cancelled.value += 1
                att.abandon()
            self.attempt = None  # break Forward ↔ Attempt
        if self.retry is not None:
            self.retry.release_all()
        if self.blocked:
            self.on_upstream_drain()
