"""envoy.filters.http.fault: inject delays and aborts into a share of requests.

The filter's own config applies unless the route (or weighted cluster) carries a
per-filter config, which replaces it (or disables the filter). Conditions, as
Envoy: `upstream_cluster` (the route's target), header matchers, downstream nodes,
`max_active_faults`. A delay hit pauses the request (response flag DI) and then the
abort is considered; an abort hit answers locally with the HTTP status (or, for
`grpc_status`, a trailers-only gRPC response) and flag FI, body "fault filter abort".
Header-controlled faults (x-envoy-fault-*) are not implemented: they never fire.
"""
from __future__ import annotations

import random

from isthmus.proxy.config.http_filters import DISABLED, FaultConfig
from isthmus.proxy.filters.local_reply import BODY_FAULT_ABORT, DI, FI


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
        if delay is not None and delay.fixed_delay and delay.percentage.hits(self._rand(32)):
            stream.flags |= DI
            self.active += 1

            def resume() -> None:
                self.active -= 1
                if not stream.done and self._abort(stream, cfg):
                    stream.resume()

            stream.defer(delay.fixed_delay, resume)
            return False
        return self._abort(stream, cfg)

    def _abort(self, stream, cfg: FaultConfig) -> bool:
        abort = cfg.abort
        if abort is None or abort.header_abort or not abort.percentage.hits(self._rand(32)):
            return True
        stream.flags |= FI
        if abort.grpc_status is not None:
            stream.grpc_local_reply(abort.grpc_status, BODY_FAULT_ABORT, "fault_filter_abort")
        else:
            stream.local_reply(abort.http_status or 503, BODY_FAULT_ABORT, 0, "fault_filter_abort")
        return False
