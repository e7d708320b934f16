"""envoy.filters.network.tcp_proxy: a downstream connection piped to one upstream.

The cluster is the config's, or a weighted pick; the host comes from the cluster's
balancer (hash by source IP when configured) or, for ORIGINAL_DST clusters, the
connection's original destination. Connect honours connect_timeout, the cluster's
max_connections breaker (UO) and max_connect_attempts; upstream TLS (mesh mTLS)
from the cluster's transport socket for that endpoint. Bytes flow both ways with
backpressure and half-close; bytes that arrived before the upstream connected
(e.g. a ClientHello being passed through by SNI) are sent first. Idle and
max-duration timeouts close both sides. At close: Istio TCP metrics, access logs.
"""
from __future__ import annotations

import asyncio
import random
import ssl

from isthmus.proxy.filters.local_reply import DC, UF, UH, UO, flags_string
from isthmus.proxy.runtime.access_log import compile_loggers
from isthmus.proxy.runtime.flow_control import HIGH_WATER, FlowControl, relay_backpressure
from isthmus.proxy.runtime.tls import TlsConfigError
from isthmus.proxy.telemetry import DESTINATION, SOURCE, UNKNOWN_WORKLOAD, service_labels
from isthmus.proxy.upstream.circuit import Resource
from isthmus.proxy.upstream.hashing import hash_str


class TcpRuntime:
    def __init__(self, config, listener, gen, rt) -> None:
        self.config = config
        self.listener = listener
        self.clusters = gen.clusters
        self.rt = rt
        self.access_logs = compile_loggers(config.access_logs, rt.sinks)
        self.outbound = listener.config.traffic_direction != "inbound"


class _Upstream(asyncio.Protocol):
    def __init__(self, session: "TcpSession") -> None:
        self.session = session
        self.transport = None
        self.flow = FlowControl()

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.flow.set_transport(transport)

    def data_received(self, data: bytes) -> None:
        self.session.from_upstream(data)

    def eof_received(self) -> bool:
        return self.session.upstream_eof()

    def connection_lost(self, exc) -> None:
        self.flow.close()
        self.session.upstream_lost()

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()


class TcpSession:
    """The downstream side (asyncio Protocol on the socket or TlsTransport)."""

    def __init__(self, rt, info, tcp: TcpRuntime, listener) -> None:
        self.rt = rt
        self.loop = rt.loop
        self.info = info
        self.tcp = tcp
        self.listener = listener
        self.transport = None
        self.flow = FlowControl()
        self.up: _Upstream | None = None
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.downstream_eof = False
        self.closed = False
        self.cluster = None
        self.cluster_name = ""
        self.breaker = None
        self.start = self.loop.time()
        self.start_wall = 0.0
        self.end = None
        self.last_activity = self.start
        self.flags = 0
        self.bytes_in = self.bytes_out = 0
        self.status = 0
        self.details = ""
        self.attempts = 0
        self.transport_failure = ""
        self.upstream_local = ""
        self.request_end = self.response_start = None
        self.protocol = None
        self.upstream_protocol = None
        self.route_name = ""
        self.metrics = None
        self.task = None

    # formatter context
    @property
    def downstream(self):
        return self.info

    upstream = None  # HostInfo of the picked host (access logs)

    def now(self) -> float:
        return self.loop.time()

    def request_header(self, name: str):
        return None

    def header_map(self, which: int) -> dict:
        return {}

    response_header = response_trailer = request_header

    def grpc_status(self):
        return None

    # -- downstream Protocol -----------------------------------------------------------------
    def connection_made(self, transport) -> None:
        import time
        self.start_wall = time.time()
        self.transport = transport
        self.flow.set_transport(transport)
        if self.info.remote is None:
            self.info.fill(transport)
        self.rt.connections.add(self)
        cfg = self.tcp.config
        self.cluster_name = name = cfg.pick(random.getrandbits(32))
        gen = self.rt.generation  # the newest clusters (CDS/EDS), as for HTTP requests
        self.cluster = cluster = (gen.clusters if gen is not None else self.tcp.clusters).get(name)
        if cluster is None:
            self._close(UH)
            return
        self.task = self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        cluster = self.cluster
        cfg = self.tcp.config
        for attempt in range(max(1, cfg.max_connect_attempts)):
            if self.closed:
                return
            info = self._pick_host()
            if info is None:
                cluster.stats.upstream_cx_none_healthy.value += 1
                self._close(UH)
                return
            self.upstream = info
            breaker = cluster.breakers["default"]
            if not breaker.try_acquire(Resource.CONNECTIONS):
                cluster.stats.upstream_cx_overflow.value += 1
                self._close(UO)
                return
            self.breaker = breaker
            self.attempts += 1
            cluster.stats.upstream_cx_total.value += 1
            info.cx_total += 1
            ctx = sni = client = None
            try:
                if info.tls is not None:
                    client = self.rt.tls.client(info.tls, cluster.snapshot_secrets)
                    ctx, sni = client.context, client.sni
                host = info.host
                # upstream_bind_config: inbound passthrough leaves from 127.0.0.6 so the
                # iptables rules do not capture it again (as Envoy does).
                local = (cluster.config.source_address, cluster.config.source_port) if cluster.config.source_address else None
                transport, proto = await asyncio.wait_for(self.loop.create_connection(
                    lambda: _Upstream(self), host.address, host.port, ssl=ctx,
                    server_hostname=(sni or "") if ctx is not None else None, local_addr=local),
                    cluster.config.connect_timeout)
                if client is not None:
                    reason = client.verify(transport.get_extra_info("ssl_object"))
                    if reason is not None:
                        transport.abort()
                        raise ConnectionError(reason)
            except (OSError, asyncio.TimeoutError, TimeoutError, ssl.SSLError, TlsConfigError, ConnectionError) as exc:
                breaker.release(Resource.CONNECTIONS)
                self.breaker = None
                cluster.stats.upstream_cx_connect_fail.value += 1
                info.cx_connect_fail += 1
                self.transport_failure = str(exc) if isinstance(exc, (ssl.SSLError, ConnectionError)) else ""
                cluster.report(info, _connect_failed())
                continue
            if self.closed:
                transport.close()
                return
            self.up = proto
            info.cx_active += 1
            sock = transport.get_extra_info("sockname")
            if isinstance(sock, tuple):
                self.upstream_local = f"{sock[0]}:{sock[1]}"
            self._metrics().opened.value += 1
            pending, self.pending = self.pending, []
            if pending:
                transport.write(b"".join(pending))
                self.pending_size = 0
                self.flow.resume_reading("connect")
            if self.downstream_eof and transport.can_write_eof():
                transport.write_eof()
            return
        self._close(UF)

    def _pick_host(self):
        cluster = self.cluster
        if cluster.config.discovery_type == "ORIGINAL_DST":
            dst = self.info.original_dst
            return cluster.original_host(dst[0], dst[1]) if dst is not None else None
        key = hash_str(self.info.remote[0]) if self.tcp.config.hash_by_source_ip and self.info.remote else None
        return cluster.choose(key)

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self.last_activity = self.loop.time()
        up = self.up
        if up is not None:
            up.transport.write(data)
            relay_backpressure(self.flow, up.flow, "upstream")
        else:
            self.pending.append(data)
            self.pending_size += len(data)
            if self.pending_size > HIGH_WATER:
                self.flow.pause_reading("connect")

    def eof_received(self) -> bool:
        self.downstream_eof = True
        up = self.up
        if up is not None and up.transport.can_write_eof():
            up.transport.write_eof()
        return True

    def connection_lost(self, exc) -> None:
        self.flow.close()
        if not self.closed and self.up is None:
            self.flags |= DC
        self._close(0)

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    # -- upstream side ----------------------------------------------------------------------
    def from_upstream(self, data: bytes) -> None:
        self.bytes_out += len(data)
        self.last_activity = self.loop.time()
        if not self.closed:
            self.transport.write(data)
            relay_backpressure(self.up.flow, self.flow, "downstream")

    def upstream_eof(self) -> bool:
        if not self.closed and self.transport.can_write_eof():
            self.transport.write_eof()
            return True
        return False

    def upstream_lost(self) -> None:
        self._close(0)

    # -- lifecycle -------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        cfg = self.tcp.config
        idle = cfg.idle_timeout
        if idle and now - self.last_activity > idle:
            self._close(0)
        elif cfg.max_downstream_connection_duration and now - self.start > cfg.max_downstream_connection_duration:
            self._close(0)

    def drain(self) -> None:
        pass  # TCP has no graceful end: connections finish on their own (or at stop)

    def close(self) -> None:
        self._close(0)

    def _metrics(self):
        if self.metrics is None:
            tel = self.rt.telemetry
            info = self.upstream
            cluster = self.cluster
            service = cluster.service if cluster is not None and cluster.service else service_labels(self.cluster_name)
            peer = self.info.peer
            if self.tcp.outbound:
                dest = info.workload if info is not None else UNKNOWN_WORKLOAD
                part = tel.peer_part(SOURCE, tel.local, dest, service)
                security = "unknown"
            else:
                source = UNKNOWN_WORKLOAD.with_principal(peer.spiffe_id if peer is not None else "")
                dest = tel.local.with_principal(self.rt.node.spiffe_id if peer is not None else "")
                part = tel.peer_part(DESTINATION, source, dest, service)
                security = "mutual_tls" if peer is not None else "none"
            self.metrics = tel.tcp(part, flags_string(self.flags), security)
        return self.metrics

    def _close(self, flag: int) -> None:
        if self.closed:
            return
        self.closed = True
        self.flags |= flag
        self.end = self.loop.time()
        self.rt.connections.discard(self)
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.breaker is not None:
            self.breaker.release(Resource.CONNECTIONS)
            self.breaker = None
        up = self.up
        if up is not None:
            if self.upstream is not None:
                self.upstream.cx_active -= 1
            if up.transport is not None:
                up.transport.close()
        if self.transport is not None:
            self.transport.close()
        if self.up is not None or self.flags:
            m = self._metrics()
            m.sent.value += self.bytes_out
            m.received.value += self.bytes_in
            m.closed.value += 1
        for logger in self.tcp.access_logs:
            logger.log(self)

    @property
    def cluster_display(self) -> str:
        return self.cluster_name


def _connect_failed():
    from isthmus.proxy.upstream.outlier import Result
    return Result.LOCAL_ORIGIN_CONNECT_FAILED
