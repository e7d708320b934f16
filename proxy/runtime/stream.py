"""One request/response exchange on a downstream connection (uvicorn's request state;
the connection state is http_conn.py's `HttpConnection`).

Decode path: `begin()` prepares headers (filters/headers.py, one pass), picks the
route, then runs the snapshot's filter chain (fault → cors → router); a filter may
stop (`False`) and `resume()` later. Request body and trailers go to the router's
`Forward` once it exists, and wait here while a filter holds the request.
Encode path: `encode_head` / `encode_data` / `encode_trailers` apply route response
mutations and encoder filters, then hand bytes to the connection; `local_reply`
answers with Envoy's status, body and response flags (trailers-only for gRPC).
When both directions are done, `finish()` records telemetry and access logs once.

Hot path: attributes have class-level defaults, so a request sets only what differs.
"""
from __future__ import annotations

import random

from isthmus.proxy.config.routes import strip_port
from isthmus.proxy.filters import headers as hdr
from isthmus.proxy.filters.local_reply import APPLICATION_GRPC, DC, NR, TEXT_PLAIN, grpc_message, grpc_status_for
from isthmus.proxy.protocol.events import RequestHead

_rand = random.getrandbits
SERVER = (b"server", b"isthmus")
_METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE")}
_MISS = object()
ROUTE_MEMO_SIZE = 4096  # distinct (host, path) pairs remembered per route table before starting over


class Stream:
    # Per-request defaults (class attributes: an instance stores only what it changes).
    authority = path = query = ""
    end = request_end = response_start = None
    flags = status = bytes_in = bytes_out = attempts = filter_index = 0
    details = cluster_name = upstream_local = transport_failure = ""
    route = vhost = weighted = upstream = upstream_protocol = None
    resp_headers = resp_trailers = forward = cors = pending = request_id = timers = peer = None
    extra_response_headers = grpc_timeout = None
    response_started = response_done = done = routed = has_filter_overrides = grpc = False
    _hdict = _maps = None

    def __init__(self, conn, head: RequestHead) -> None:
        self.conn = conn
        self.hcm = conn.hcm
        self.head = head
        self.sid = head.stream_id
        self.method = head.method
        self.upgrade = head.upgrade
        self.headers = head.headers
        self.start = start = conn.loop.time()
        if head.end_stream:
            self.request_done = True
            self.request_end = start
        else:
            self.request_done = False
        self.protocol = conn.protocol_name

    @property
    def start_wall(self) -> float:
        return self.start + self.conn.wall_offset

    # -- request side ---------------------------------------------------------------
    def begin(self) -> None:
        hcm = self.hcm
        if hcm.rt.generation is not hcm.gen:
            hcm.refresh()
        head = self.head
        if hcm.underscores != "allow" and any(b"_" in k for k, _ in head.headers):
            if hcm.underscores == "reject_request":  # Envoy: 400, and the connection is closed
                self.local_reply(400, b"Bad Request", 0, "unexpected_underscore")
                return
            head.headers = [(k, v) for k, v in head.headers if b"_" not in k]
        if hcm.config.request_timeout and not self.request_done:
            self.defer(hcm.config.request_timeout, self._request_timeout)
        try:
            self.headers = hdr.prepare_request(self, hcm)
        except Exception:  # noqa: BLE001 - malformed values we could not process
            self.local_reply(400, b"Bad Request", 0, "invalid_request_headers")
            return
        authority = head.authority.decode("latin-1")
        mode = hcm.strip_port_mode
        if mode != "none" and ":" in authority:
            if mode == "any" or authority.endswith(hcm.listener_port_suffix):
                authority = strip_port(authority)
        if hcm.strip_trailing_dot and authority.endswith("."):
            authority = authority[:-1]
        self.authority = authority
        target = head.target.decode("latin-1")
        path, _, query = target.partition("?")
        if hcm.normalize is not None and ("/." in path or "//" in path or "%" in path or "\\" in path):
            path = hcm.normalize(path)
            if path is None:
                self.local_reply(400, b"Bad Request", 0, "path_normalization_failed")
                return
        self.path = path
        self.query = query
        table = hcm.route_table
        hit = None
        if table is not None:
            memo = hcm.route_memo  # a table whose routes match on host and path alone: results by (host, path)
            if memo is not None:
                key = (authority, path)
                hit = memo.get(key, _MISS)
                if hit is _MISS:
                    hit = table.match(authority, path, self.header_str)
                    if len(memo) >= ROUTE_MEMO_SIZE:
                        memo.clear()
                    memo[key] = hit
            else:
                method = _METHODS.get(head.method) or head.method.decode("latin-1")
                hit = table.match(authority, path, self.header_str, method, query,
                                  scheme="https" if self.conn.info.tls else "http", random_value=_rand(32))
        if hit is None:
            hcm.stats.no_route.value += 1
            self.local_reply(404, b"", NR, "route_not_found")
            return
        self.vhost, route = hit
        self.route = route
        msd = getattr(route.action, "max_stream_duration", None)
        if msd is None:
            msd = hcm.config.max_stream_duration
        if msd:
            self.defer(msd - (self.conn.loop.time() - self.start), self._max_duration)
        require_tls = self.vhost.require_tls
        if require_tls != "none" and not self.conn.info.tls and (
            require_tls == "all" or self.header_str("x-envoy-internal") != "true"
        ):
            # Envoy's VirtualHost.require_tls (Gateway httpsRedirect): 301 to https, same host and path.
            self.local_reply(301, b"", 0, "tls_required", headers=[(b"location", f"https://{authority}{target}".encode())])
            return
        if self.upgrade is not None and not self._upgrade_allowed():
            hcm.stats.downstream_rq_ws_on_non_ws_route.value += 1
            self.local_reply(403, b"", 0, "upgrade_failed")
            return
        if route.per_filter_config:
            self.has_filter_overrides = True
        elif not hcm.decoders_always:  # no filter has anything to do for this route: straight to the router
            self.routed = True
            hcm.router.route(self)
            return
        self.run_filters()

    def _request_timeout(self) -> None:
        """HCM request_timeout: the whole request was not received in time."""
        if not self.request_done and not self.done:
            self.hcm.stats.downstream_rq_timeout.value += 1
            self.local_reply(408, b"request timeout", 0, "request_overall_timeout")

    def _max_duration(self) -> None:
        """The route's (or the HCM's) max_stream_duration ran out. As Envoy: 504 when the
        request was received whole, else 408, no response flag; a reset once the response
        has started."""
        if not self.done:
            self.hcm.stats.downstream_rq_max_duration_reached.value += 1
            self.local_reply(504 if self.request_done else 408, b"downstream duration timeout", 0, "max_duration_timeout")

    def _upgrade_allowed(self) -> bool:
        """Envoy: an upgrade must be enabled in the HCM's upgrade_configs or the route's."""
        kind = self.upgrade.decode("latin-1")
        if kind == "connect":
            return False
        upgrades = getattr(self.route.action, "upgrades", None)
        if upgrades and kind in upgrades:
            return bool(upgrades[kind])  # the route's setting overrides the HCM's
        return bool(dict(self.hcm.config.upgrades).get(kind))

    def run_filters(self) -> None:
        decoders = self.hcm.decoders
        n = len(decoders)
        while self.filter_index < n:
            f = decoders[self.filter_index]
            self.filter_index += 1
            if not f.on_request(self) or self.done:
                return
        if not self.response_started:
            self.routed = True
            self.hcm.router.route(self)  # a Forward takes over any held body

    def resume(self) -> None:
        if not self.done:
            self.run_filters()

    def defer(self, delay: float, callback) -> None:
        handle = self.conn.loop.call_later(delay, callback)
        if self.timers is None:
            self.timers = [handle]
        else:
            self.timers.append(handle)

    def on_request_data(self, data: bytes, end: bool) -> None:
        if self.done:  # answered already (e.g. a local reply): drop the rest of the body
            self.conn.ack(self, len(data))
            return
        self.bytes_in += len(data)
        if end:
            self.request_done = True
            self.request_end = self.conn.loop.time()
        fwd = self.forward
        if fwd is not None:
            fwd.on_request_data(data, end)
        elif not self.done:
            (self.pending if self.pending is not None else self._pending()).append((0, data, end))
            self.conn.ack(self, len(data))
        if end and self.response_done and not self.done:
            self.finish()

    def on_request_trailers(self, headers) -> None:
        self.request_done = True
        self.request_end = self.conn.loop.time()
        fwd = self.forward
        if fwd is not None:
            fwd.on_request_trailers(headers)
        elif not self.done:
            (self.pending if self.pending is not None else self._pending()).append((1, headers, True))
        if self.response_done and not self.done:
            self.finish()

    def _pending(self) -> list:
        self.pending = []
        return self.pending

    def on_downstream_reset(self) -> None:
        """The client went away (or reset the stream) before we finished."""
        if self.done:
            return
        if not self.response_done:
            self.flags |= DC
        if self.forward is not None:
            self.forward.cancel()
        self.finish()

    def on_window(self) -> None:
        pass  # HTTP/2 window reopened: waiters registered with when_writable already ran

    # -- lookups --------------------------------------------------------------------------
    def header_str(self, name: str) -> str | None:
        """A request header as str (multiple values joined with ","), or None; also the
        pseudo-headers. Route matching and formatters read headers through this."""
        if name[:1] == ":":
            if name == ":path":
                return self.head.target.decode("latin-1")
            if name == ":authority":
                return self.authority or self.head.authority.decode("latin-1")
            if name == ":method":
                return _METHODS.get(self.method) or self.method.decode("latin-1")
            if name == ":scheme":
                return "https" if self.conn.info.tls else "http"
            return None
        d = self._hdict
        if d is None:
            d = self._hdict = {}
            for k, v in self.headers:
                key = k.decode("latin-1")
                value = v.decode("latin-1")
                d[key] = f"{d[key]},{value}" if key in d else value
        return d.get(name)

    request_header = header_str

    def header_map(self, which: int) -> dict:
        """Request (0), response (1) or trailer (2) headers as {name: value} (formatters)."""
        maps = self._maps
        if maps is None:
            maps = self._maps = [None, None, None]
        m = maps[which]
        if m is None:
            m = maps[which] = dict(self.headers if which == 0 else self.resp_headers if which == 1 else self.resp_trailers or ())
        return m

    def response_header(self, name: str) -> str | None:
        key = name.encode()
        for k, v in self.resp_headers or ():
            if k == key:
                return v.decode("latin-1")
        return None

    def response_trailer(self, name: str) -> str | None:
        key = name.encode()
        for k, v in self.resp_trailers or ():
            if k == key:
                return v.decode("latin-1")
        return None

    def filter_config(self, name: str):
        w = self.weighted
        if w is not None and w.per_filter_config:
            return w.per_filter_config.get(name)
        return self.route.per_filter_config.get(name) if self.route is not None else None

    def target_cluster(self) -> str:
        return self.hcm.router.target_cluster(self)

    @property
    def is_grpc(self) -> bool:
        return self.grpc

    def grpc_status(self) -> str | None:
        for hs in (self.resp_trailers, self.resp_headers):
            if hs:
                v = hdr.get(hs, b"grpc-status")
                if v is not None:
                    return v.decode()
        return None

    @property
    def route_name(self) -> str:
        return self.route.name if self.route is not None else ""

    @property
    def downstream(self):
        return self.conn.info

    def now(self) -> float:
        return self.conn.loop.time()

    # -- response side ------------------------------------------------------------------
    def encode_head(self, status: int, headers: list, end_stream: bool, body: bytes | None = None) -> None:
        if self.done or self.response_started:
            return
        self.status = status
        self.response_start = self.conn.loop.time()
        hcm = self.hcm
        if self.routed:
            w = self.weighted
            levels = w.response_mutations if w is not None else self.route.response_mutations
            if levels:
                headers = hdr.apply_mutations(list(headers), levels, self)
        if self.has_filter_overrides:  # encoders (CORS) act only on routes that configure them
            for f in hcm.encoders:
                headers = f.on_response(self, headers)
        if self.extra_response_headers:
            headers = headers + self.extra_response_headers
        headers = hcm.on_response(self, headers)
        self.resp_headers = headers
        self.response_started = True
        if body is not None:
            self.bytes_out += len(body)
            self.conn.send_whole(self, status, headers, body)
            self.response_done = True
            if not self.request_done and self.upgrade is None:
                self.conn.response_before_request(self)
            self.finish()
            return
        self.conn.send_head(self, status, headers, end_stream)
        if end_stream:
            self._response_complete()

    def encode_data(self, data: bytes, end: bool) -> None:
        if self.done:
            return
        self.bytes_out += len(data)
        self.conn.send_data(self, data, end)
        if end:
            self._response_complete()

    def encode_trailers(self, headers: list) -> None:
        if self.done:
            return
        self.resp_trailers = headers
        self.conn.send_trailers(self, headers)
        self._response_complete()

    def _response_complete(self) -> None:
        self.response_done = True
        if not self.request_done and self.upgrade is None:
            self.conn.response_before_request(self)
        self.finish()

    def respond(self, status: int, headers: list, body: bytes, details: str) -> None:
        """A filter's own complete response (e.g. a CORS preflight)."""
        self.details = details
        h = [*headers, (b"date", self.conn.rt.date()), SERVER]
        if body:
            h.append((b"content-type", TEXT_PLAIN))
        self.encode_head(status, h, not body, body if body else None)

    def local_reply(self, status: int, body: bytes = b"", flags: int = 0, details: str = "", headers=None) -> None:
        """Envoy's sendLocalReply: a response of our own, or a reset when too late."""
        self.flags |= flags
        if details:
            self.details = details
        if self.done:
            return
        if self.response_started:
            self.reset()
            return
        if self.grpc:
            self.grpc_local_reply(grpc_status_for(status), body, details, headers)
            return
        h = [(b"date", self.conn.rt.date()), SERVER]
        if body:
            h.append((b"content-type", TEXT_PLAIN))
        if headers:
            h.extend(headers)
        self.encode_head(status, h, not body, body)

    def grpc_local_reply(self, grpc_status: int, message: bytes, details: str = "", headers=None) -> None:
        if details:
            self.details = details
        h = [(b"content-type", APPLICATION_GRPC), (b"grpc-status", b"%d" % grpc_status)]
        if message:
            h.append((b"grpc-message", grpc_message(message)))
        h += [(b"date", self.conn.rt.date()), SERVER]
        if headers:
            h.extend(headers)
        self.encode_head(200, h, True, None)

    def reset(self) -> None:
        """Abort the stream (HTTP/1.1: close the connection; HTTP/2: RST_STREAM)."""
        if self.done:
            return
        if self.forward is not None:
            self.forward.cancel()
        self.conn.reset_stream(self)
        self.finish()

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        self.end = self.conn.loop.time()
        timers = self.timers
        if timers:
            for t in timers:
                t.cancel()
        fwd = self.forward
        if fwd is not None:
            fwd.finished()
        self.hcm.on_finish(self)
        self.conn.stream_finished(self)
        self.forward = None  # no reference cycles: a finished request is freed at once
