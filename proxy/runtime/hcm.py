"""`HcmRuntime`: one HTTP connection manager of one filter chain, built once per snapshot.

It binds the compiled HCM config to the snapshot (its route table, the generation's
clusters; `refresh()` rebinds them per request to the newest generation, as Envoy
applies RDS/CDS/EDS to new streams of existing connections), builds the filter chain,
the codec limits and the access loggers, and
holds the per-request hooks streams call: `peer_labels` (inbound: who the client is,
from its peer metadata and mTLS identity), `on_response` (peer metadata in/out,
request id in the response) and `on_finish` (HCM stats, Istio metrics, access logs).
Also `normalize_path` (RFC 3986, as Envoy's normalize_path / merge_slashes).
"""
from __future__ import annotations

from bisect import bisect_left

from isthmus.proxy.config.network_filters import HttpConnectionManagerConfig
from isthmus.proxy.config.routes import strip_port
from isthmus.proxy.filters import build_filters
from isthmus.proxy.filters import headers as hdr
from isthmus.proxy.filters.local_reply import flags_string
from isthmus.proxy.protocol.limits import Http1Limits, Http2Settings
from isthmus.proxy.runtime.access_log import compile_loggers
from isthmus.proxy.runtime.node import decode_peer_metadata
from isthmus.proxy.telemetry import (DESTINATION, SOURCE, UNKNOWN_WORKLOAD, HcmStats, from_peer_metadata,
                                     service_labels)

_FLAGS = {0: "-"}
PEER_MD = b"x-envoy-peer-metadata"
PEER_ID = b"x-envoy-peer-metadata-id"
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def normalize_path(path: str, merge_slashes: bool = False) -> str | None:
    """RFC 3986 normalization as Envoy's normalize_path: percent-decode unreserved
    characters, backslashes to slashes, remove dot segments; None if invalid."""
    if "%" in path:
        out = []
        i, n = 0, len(path)
        while i < n:
            c = path[i]
            if c == "%":
                h = path[i + 1:i + 3]
                if len(h) != 2 or not all(x in "0123456789abcdefABCDEF" for x in h):
                    return None
                b = int(h, 16)
                if b == 0:
                    return None
                out.append(chr(b) if b in _UNRESERVED else "%" + h.upper())
                i += 3
            else:
                out.append(c)
                i += 1
        path = "".join(out)
    path = path.replace("\\", "/")
    if merge_slashes:
        while "//" in path:
            path = path.replace("//", "/")
    if "/." in path:
        segments: list[str] = []
        parts = path.split("/")
        for seg in parts[1:]:
            if seg == ".":
                continue
            if seg == "..":
                if segments:
                    segments.pop()
                continue
            segments.append(seg)
        trailing = parts[-1] in (".", "..")
        path = "/" + "/".join(segments) + ("/" if trailing and segments else "")
    return path


def route_memo(table) -> dict | None:
    """A memo for `table.match` results keyed by (host, path) when that is all they
    depend on: no vhost header, and no route matching on headers, query parameters,
    gRPC or a runtime fraction (whose random draw differs per request). Else None."""
    if table is None or table.vhost_header:
        return None
    for vh in table.virtual_hosts:
        for r in vh.routes:
            m = r.match
            if m.headers or m.query_parameters or m.grpc or m.runtime_fraction is not None:
                return None
    return {}


class HcmRuntime:
    def __init__(self, config: HttpConnectionManagerConfig, listener, gen, rt) -> None:
        self.config = config
        self.rt = rt
        self.gen = gen
        self.clusters = gen.clusters
        self.route_table = config.route_table if config.route_table is not None else gen.snapshot.routes.get(config.rds_name)
        self.route_memo = route_memo(self.route_table)
        chain = build_filters(config.http_filters, self)
        self.decoders, self.encoders, self.router = chain.decoders, chain.encoders, chain.router
        # Filters that act even when a route has no per-filter config (a fault with its own settings).
        self.decoders_always = any(getattr(getattr(f, "config", None), "active", False) for f in self.decoders)
        self.stats = HcmStats(rt.stats, config.stat_prefix or "http")
        self.h1_limits = Http1Limits(max_headers_kb=config.max_request_headers_kb, max_headers_count=config.max_headers_count,
                                     accept_http_10=config.accept_http_10,
                                     default_host_for_http_10=config.default_host_for_http_10.encode(),
                                     allow_absolute_url=config.allow_absolute_url)
        self.h2_settings = Http2Settings(
            max_concurrent_streams=min(config.http2_max_concurrent_streams, 2 ** 31 - 1),
            initial_stream_window_size=min(config.http2_initial_stream_window_size, 1024 * 1024),
            initial_connection_window_size=min(config.http2_initial_connection_window_size, 8 * 1024 * 1024),
            hpack_table_size=config.http2_hpack_table_size, max_headers_kb=config.max_request_headers_kb,
            max_headers_count=config.max_headers_count)
        self.strip_port_mode = config.strip_port_mode
        self.listener_port_suffix = f":{listener.config.address.port}"
        self.strip_trailing_dot = config.strip_trailing_host_dot
        merge = config.merge_slashes
        self.normalize = (lambda p: normalize_path(p, merge)) if (config.normalize_path or merge) else None
        self.tracing = config.tracing
        t = config.tracing
        # Envoy's integer sampling thresholds out of 10000 (random, overall) and the client percentage
        self.trace_sampling = (round(t.random_sampling * 100), round(t.overall_sampling * 100), t.client_sampling) \
            if t is not None else None
        self.internal_only = frozenset(self.route_table.internal_only_headers) if self.route_table is not None else frozenset()
        self.outbound = listener.config.traffic_direction != "inbound"
        self.mesh = rt.node is not None and rt.node.proxy_type == "sidecar"
        self.request_headers_timeout = config.request_headers_timeout or rt.request_headers_timeout
        self.access_logs = compile_loggers(config.access_logs, rt.sinks)
        self.websocket = dict(config.upgrades).get("websocket", False)
        self.underscores = config.headers_with_underscores_action  # allow | reject_request | drop_header
        node = rt.node
        self.peer_md = node.peer_metadata_header()
        self.peer_id = node.peer_metadata_id()
        self.tel = rt.telemetry
        self._peers: dict = {}
        self._services: dict = {}
        self.plans: dict = {}  # route id → (route, RoutePlan), filled on first use
        self._metrics: dict = {}  # label key → HttpMetrics (the telemetry's cache, one lookup closer)

    def refresh(self) -> None:
        """Called per request: like Envoy, a connection keeps its listener's HCM, but each
        new request sees the latest routes (RDS) and clusters (CDS/EDS)."""
        gen = self.rt.generation
        if gen is self.gen or gen is None:
            return
        self.gen = gen
        self.clusters = gen.clusters
        if self.config.route_table is None:
            table = self.route_table = gen.snapshot.routes.get(self.config.rds_name)
            self.internal_only = frozenset(table.internal_only_headers) if table is not None else frozenset()
            self.route_memo = route_memo(table)

    # -- per request hooks ---------------------------------------------------------------
    def peer_labels(self, md: bytes | None, peer):
        """Inbound: who the client is (its x-envoy-peer-metadata + mTLS identity), cached."""
        principal = peer.spiffe_id if peer is not None else ""
        key = (md, principal)
        labels = self._peers.get(key)
        if labels is None:
            decoded = decode_peer_metadata(md) if md is not None else None
            labels = from_peer_metadata(decoded, principal) if decoded else UNKNOWN_WORKLOAD.with_principal(principal)
            if len(self._peers) > 4096:
                self._peers.clear()
            self._peers[key] = labels
        return labels

    def on_response(self, stream, headers: list) -> list:
        if self.outbound:
            md = None
            for k, v in headers:
                if k == PEER_MD or k == PEER_ID:
                    md = md or (v if k == PEER_MD else b"")
            if md is not None:
                headers = [(k, v) for k, v in headers if k != PEER_MD and k != PEER_ID]
                if md:
                    stream.peer = md
        elif self.mesh:
            headers = [*headers, (PEER_ID, self.peer_id), (PEER_MD, self.peer_md)]
        if self.config.always_set_request_id_in_response and stream.request_id is not None:
            headers = hdr.set_header(list(headers), b"x-request-id", stream.request_id)
        return headers

    def on_finish(self, stream) -> None:
        stats = self.stats
        stats.downstream_rq_total.value += 1
        status = stream.status
        if 200 <= status < 300:
            stats.downstream_rq_completed.value += 1
            stats.downstream_rq_2xx.value += 1
        else:
            stats.response(status)
        flags = _FLAGS.get(stream.flags) or flags_string(stream.flags)
        if stream.grpc:
            protocol, grpc = "grpc", stream.grpc_status() or ""
        else:
            protocol, grpc = "http", ""
        if self.outbound:
            key = (self._outbound_part(stream), protocol, status, grpc, flags, "unknown")
        else:
            key = (self._inbound_part(stream), protocol, status, grpc, flags,
                   "mutual_tls" if stream.conn.info.peer is not None else "none")
        m = self._metrics.get(key)
        if m is None:
            m = self._metrics[key] = self.tel.http(*key)
        m.requests.value += 1
        h = m.duration  # Histogram.observe, inlined three times
        v = (stream.end - stream.start) * 1000.0
        h.counts[bisect_left(h.bounds, v)] += 1
        h.sum += v
        h.count += 1
        h = m.request_bytes
        v = stream.bytes_in
        h.counts[bisect_left(h.bounds, v)] += 1
        h.sum += v
        h.count += 1
        h = m.response_bytes
        v = stream.bytes_out
        h.counts[bisect_left(h.bounds, v)] += 1
        h.sum += v
        h.count += 1
        if self.access_logs:
            for logger in self.access_logs:
                logger.log(stream)

    def _service(self, stream):
        fwd = stream.forward
        cluster = fwd.cluster if fwd is not None else self.clusters.get(stream.cluster_name) if stream.cluster_name else None
        if cluster is not None and cluster.service is not None:
            return cluster.service
        host = strip_port(stream.authority) if stream.authority else ""
        svc = self._services.get(host)
        if svc is None:
            name, _, rest = host.partition(".")
            ns = rest.split(".")[0] if ".svc." in host else ""
            svc = self._services[host] = service_labels(host, name if ns else host, ns)
            if len(self._services) > 4096:
                self._services.clear()
        return svc

    def _outbound_part(self, stream):
        info = stream.upstream
        peer = stream.peer  # raw peer metadata the server sent back, if any
        fwd = stream.forward
        if peer is None and info is not None and fwd is not None:
            part = info.parts.get(fwd.cluster)  # the usual case: known cluster service, host already seen
            if part is not None:
                return part
        service = self._service(stream)
        conn_peer = None
        if peer is not None:
            key = (peer, service)
            part = self._peers.get(key)
            if part is None:
                decoded = decode_peer_metadata(peer)
                dest = from_peer_metadata(decoded) if decoded else UNKNOWN_WORKLOAD
                part = self._peers[key] = self.tel.peer_part(SOURCE, self.tel.local, dest, service)
            return part
        if info is None:
            return self.tel.peer_part(SOURCE, self.tel.local, UNKNOWN_WORKLOAD, service)
        part = info.parts.get(id(service))
        if part is None:
            tls = info.tls is not None
            principal = ""
            if tls:
                for pool in info.pools.values():
                    for conn_peer in pool.conns.values():
                        principal = conn_peer.peer_principal()
                        break
                    if principal:
                        break
            source = self.tel.local.with_principal(self.rt.node.spiffe_id if tls else "")
            part = self.tel.peer_part(SOURCE, source, info.workload.with_principal(principal), service)
            if not tls or principal:
                info.parts[id(service)] = part
                if fwd is not None and fwd.cluster.service is service:
                    info.parts[fwd.cluster] = part
        return part

    def _inbound_part(self, stream):
        source = stream.peer or UNKNOWN_WORKLOAD
        service = self._service(stream)
        mtls = stream.conn.info.peer is not None
        key = (source, service, mtls)
        part = self._peers.get(key)
        if part is None:
            dest = self.tel.local.with_principal(self.rt.node.spiffe_id if mtls else "")
            part = self._peers[key] = self.tel.peer_part(DESTINATION, source, dest, service)
        return part
