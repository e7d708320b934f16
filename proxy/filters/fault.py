"""envoy.filters.http.fault: inject delays and aborts into a share of requests.

The filter's own config applies unless the route (or weighted cluster) carries a
per-filter config, which replaces it (or disables the filter). Conditions, as
Envoy: `upstream_cluster` (the route's target), header matchers, downstream nodes,
`max_active_faults`. A delay hit pauses the request (response flag DI) and then the
abort is considered; an abort hit answers locally with the HTTP status (or, for
`grpc_status`, a trailers-only gRPC response) and flag FI, body "fault filter abort".
Header-controlled faults, as Envoy: with `header_delay` the request's
`x-envoy-fault-delay-request` (milliseconds) sets the delay, with `header_abort` its
`x-envoy-fault-abort-request` (an HTTP status in [200, 600)) or
`x-envoy-fault-abort-grpc-request` (a gRPC status) the abort; a request without a valid
value gets no fault. `x-envoy-fault-delay-request-percentage` /
`x-envoy-fault-abort-request-percentage` lower the share: the value is a numerator over
the configured denominator, capped at the configured numerator.
"""
from __future__ import annotations

import random

from isthmus.proxy.config.common import Fraction
from isthmus.proxy.config.http_filters import DISABLED, FaultConfig
from isthmus.proxy.filters.local_reply import BODY_FAULT_ABORT, DI, FI


def _header_int(stream, name: str) -> int | None:
    value = stream.header_str(name)
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isdigit() else None


def _share(stream, configured: Fraction, header: str) -> Fraction:
    """The configured percentage, lowered by its `-percentage` request header (Envoy: the
    header is a numerator over the configured denominator, capped at the configured one)."""
    n = _header_int(stream, header)
    if n is None or n >= configured.numerator:
        return configured
    return Fraction(n, configured.denominator)


class FaultFilter:
    __slots__ = ("name", "config", "active", "_rand")

    def __init__(self, name: str, config: FaultConfig) -> None:
        self.name = name
        self.config = config
        self.active = 0
        self._rand = random.getrandbits

    def _effective(self, stream) -> FaultConfig | None:
        cfg = self.config
        override = stream.filter_config(self.name)
        if override is not None:
            if override is DISABLED:
                return None
            cfg = override  # type: ignore[assignment]
        if not cfg.active:
            return None
        if cfg.upstream_cluster and cfg.upstream_cluster != stream.target_cluster():
            return None
        if cfg.headers:
            getter = stream.header_str
            for h in cfg.headers:
                if not h.matches(getter(h.name)):
                    return None
        if cfg.downstream_nodes:
            node = stream.header_str("x-envoy-downstream-service-node")
            if node not in cfg.downstream_nodes:
                return None
        if cfg.max_active_faults is not None and self.active >= cfg.max_active_faults:
            return None
        return cfg

    def on_request(self, stream) -> bool:
        if not stream.has_filter_overrides and not self.config.active:
            return True
        cfg = self._effective(stream)
        if cfg is None:
            return True
        delay = cfg.delay
        seconds = None
        if delay is not None:
            seconds = delay.fixed_delay
            if delay.header_delay:
                ms = _header_int(stream, "x-envoy-fault-delay-request")
                seconds = ms / 1000 if ms else None
        if seconds and _share(stream, delay.percentage, "x-envoy-fault-delay-request-percentage").hits(self._rand(32)):
            stream.flags |= DI
            self.active += 1

            def resume() -> None:
                self.active -= 1
                if not stream.done and self._abort(stream, cfg):
                    stream.resume()

            stream.defer(seconds, resume)
            return False
        return self._abort(stream, cfg)

    def _abort(self, stream, cfg: FaultConfig) -> bool:
        abort = cfg.abort
        if abort is None:
            return True
        http_status, grpc_status = abort.http_status, abort.grpc_status
        if abort.header_abort:
            http_status = _header_int(stream, "x-envoy-fault-abort-request")
            if http_status is not None and not 200 <= http_status < 600:
                http_status = None
            grpc_status = _header_int(stream, "x-envoy-fault-abort-grpc-request") if http_status is None else None
            if http_status is None and grpc_status is None:
                return True
        if not _share(stream, abort.percentage, "x-envoy-fault-abort-request-percentage").hits(self._rand(32)):
            return True
        stream.flags |= FI
        if grpc_status is not None:
            stream.grpc_local_reply(grpc_status, BODY_FAULT_ABORT, "fault_filter_abort")
        else:
            stream.local_reply(http_status or 503, BODY_FAULT_ABORT, 0, "fault_filter_abort")
        return False
