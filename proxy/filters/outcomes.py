"""How a forwarded request ends badly: resets, pool failures, timeouts, retries.

`Outcomes` is mixed into filters/forward.py's `Forward`. Every failure first asks
the retry state (filters/retry.py) whether another attempt may be made — the body
must still be replayable and nothing may have gone downstream — and otherwise
answers with Envoy's local reply: 503 with UF/UC/UR/UO (502 UPE for an upstream
protocol error), 504 UT for timeouts, URX when the retries ran out; a stream whose
response already started is reset instead.
"""
from __future__ import annotations

from isthmus.proxy.filters.local_reply import BODY_TIMEOUT, UC, UF, UO, UPE, UR, URX, UT, reset_body
from isthmus.proxy.runtime.cluster import local_result
from isthmus.proxy.upstream.pool_events import FailureReason

FLAG_FOR = {"connection_termination": UC, "remote_reset": UR, "refused_stream": UR, "protocol_error": UPE,
            "connection_failure": UF, "connect_timeout": UF}


class Outcomes:
    def on_reset(self, att, kind: str, detail: str) -> None:
        if att is not self.attempt:
            return
        if att.timer is not None:
            att.timer.cancel()
            att.timer = None
        info = att.info
        info.rq_error += 1
        self.cluster.stats.upstream_rq_rx_reset.value += 1
        self.cluster.report(info, local_result("reset"))
        if self.response_started:
            self.stream.flags |= FLAG_FOR.get(kind, UR)
            self.stream.reset()
            return
        self._fail(kind, detail)

    def on_pool_failure(self, att, reason: FailureReason, detail: str) -> None:
        if att is not self.attempt:
            return
        att.info.rq_error += 1
        if reason is FailureReason.OVERFLOW:
            self.stream.local_reply(503, reset_body("overflow"), UO, "upstream_reset_before_response_started{overflow}")
            return
        if reason is FailureReason.CONNECTION_TERMINATION:
            self._fail("connection_termination", detail)
            return
        self.stream.transport_failure = detail
        self._fail("connect_timeout" if reason is FailureReason.CONNECT_TIMEOUT else "connection_failure", detail)

    def _fail(self, kind: str, detail: str) -> None:
        retry = self._retry()
        if retry is not None and retry.retriable_reset(kind) and self._can_replay():
            verdict = retry.consume()
            if verdict == "retry":
                self.cluster.stats.upstream_rq_retry.value += 1
                self._schedule_retry()
                return
            self._no_retry(verdict)
        stream = self.stream
        status = 502 if kind == "protocol_error" else 503
        tls_detail = detail if detail.startswith("TLS_error") else ""
        stream.local_reply(status, reset_body(kind, tls_detail, stream.attempts > 1), FLAG_FOR.get(kind, UC),
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
        if retry.held > 1:
            retry.release_one()
        self.attempt = None
        self.retry_timer = self.stream.conn.loop.call_later(retry.backoff(), self.try_once)

    # -- timeouts -------------------------------------------------------------------------------------
    def on_per_try_timeout(self, att) -> None:
        att.timer = None
        if att is not self.attempt or self.response_started:
            return
        stats = self.cluster.stats
        stats.upstream_rq_per_try_timeout.value += 1
        att.info.rq_timeout += 1
        self.cluster.report(att.info, local_result("timeout"))
        att.abandon()
        retry = self._retry()
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
