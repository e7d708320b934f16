"""Upstream sockets: one `HostPool` per (host, protocol, priority) over the pure pool
books (upstream/pool.py), and the HTTP/1.1 and HTTP/2 client connections.

The router hands a pool an *exchange* (filters/router.py's attempt) and gets called
back: `on_connection(conn)` once a connection is assigned (write the request with
`conn.start(...)`, `conn.send_data(...)`), `on_pool_failure(reason, detail)` (UO/UF),
then `on_response_head(head)`, `on_response_data(data, end)`,
`on_response_trailers(headers)` and `on_reset(kind, detail)` with kind
`connection_termination` | `remote_reset` | `protocol_error` | `refused_stream`.
When a response is complete the connection releases itself to the pool; an exchange
given up early calls `conn.abandon(exchange)` (HTTP/1.1: the connection is closed,
HTTP/2: the stream is reset). TLS (mesh mTLS included) is asyncio's client TLS; the
server's SANs are checked after the handshake (runtime/tls.py) and a mismatch fails
the connect with an upstream_transport_failure_reason. The connections themselves
are in upstream_http.py.
"""
from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

from isthmus.proxy.runtime.tls import TlsConfigError
from isthmus.proxy.runtime.upstream_http import UpstreamH1, UpstreamH2
from isthmus.proxy.upstream import pool_events as pe
from isthmus.proxy.upstream.pool import ConnectionPool, PoolProtocol, PoolSettings

if TYPE_CHECKING:
    from isthmus.proxy.runtime.cluster import ClusterState, HostInfo

H1, H2 = "h1", "h2"
# Plaintext upstreams are mostly apps, whose servers often close idle keep-alive
# connections early (uvicorn 5 s, gunicorn 2 s): closing ours first avoids sending a
# request into a connection the server is closing. TLS upstreams (mesh mTLS to another
# sidecar, TLS origination) keep the configured idle timeout (Envoy's default 1 h):
# a sidecar's downstream side keeps connections for 1 h too, and each reconnect costs
# a full handshake on both sides.
PLAINTEXT_IDLE_CAP = 4.0


def pool_idle_timeout(configured: float | None, tls: bool) -> float | None:
    """The idle timeout a host's pool uses: the configured one (None: never), capped
    at PLAINTEXT_IDLE_CAP for plaintext upstreams."""
    if not tls and (configured is None or configured > PLAINTEXT_IDLE_CAP):
        return PLAINTEXT_IDLE_CAP
    return configured


class HostPool:
    """One host's connections of one protocol; see the module docstring."""

    def __init__(self, cluster: "ClusterState", info: "HostInfo", protocol: str, priority: str = "default") -> None:
        http = cluster.config.http
        idle = pool_idle_timeout(http.idle_timeout, info.tls is not None)
        settings = PoolSettings(PoolProtocol.HTTP2 if protocol == H2 else PoolProtocol.HTTP1,
                                max(1, http.max_concurrent_streams), http.max_requests_per_connection or 0, idle)
        self.books = ConnectionPool(settings, cluster.breakers.get(priority) or cluster.breakers["default"], info.host)
        self.cluster = cluster
        self.info = info
        self.protocol = protocol
        self.loop = cluster.rt.loop
        self.conns: dict[int, object] = {}  # UpstreamH1 / UpstreamH2 (upstream_http.py)
        self.failure_detail = ""
        self.draining = False
        self._closing: set[int] = set()  # connections the books closed while connecting

    def __repr__(self) -> str:
        return repr(self.books)

    # -- the router's calls ------------------------------------------------------
    def request(self, exchange) -> None:
        cid = self.books.assign_ready(exchange)  # the usual case: an idle keep-alive connection
        if cid:
            exchange.on_connection(self.conns[cid])
            return
        self._run(self.books.handle(pe.RequestArrived(exchange), self.loop.time()))

    def release(self, exchange, close: bool) -> None:
        actions = self.books.request_finished(exchange, close, self.loop.time())
        if actions:
            self._run(actions)

    def cancel(self, exchange) -> None:
        self._run(self.books.handle(pe.RequestCancelled(exchange), self.loop.time()))

    def drain(self) -> None:
        self.draining = True
        self._run(self.books.handle(pe.DrainAll(), self.loop.time()))

    def tick(self) -> None:
        self._run(self.books.handle(pe.IdleTick(), self.loop.time()))

    @property
    def idle(self) -> bool:
        return not self.conns and not self.books.queued_requests

    # -- actions -----------------------------------------------------------------------
    def _run(self, actions) -> None:
        for a in actions:
            kind = a.__class__
            if kind is pe.Assign:
                a.request.on_connection(self.conns[a.connection])
            elif kind is pe.OpenConnection:
                self.cluster.stats.upstream_cx_total.value += 1  # type: ignore[attr-defined]
                self.info.cx_total += 1
                self.loop.create_task(self._connect(a.connection))
            elif kind is pe.CloseConnection:
                conn = self.conns.get(a.connection)
                if conn is not None:
                    conn.forgotten = True
                    conn.close()
                else:
                    self._closing.add(a.connection)
            elif kind is pe.FailRequest:
                stats = self.cluster.stats
                if a.reason is pe.FailureReason.OVERFLOW:
                    stats.upstream_rq_pending_overflow.value += 1  # type: ignore[attr-defined]
                a.request.on_pool_failure(a.reason, self.failure_detail)

    async def _connect(self, cid: int) -> None:
        cluster, info = self.cluster, self.info
        host = info.host
        loop = self.loop
        stats = cluster.stats
        conn_cls = UpstreamH2 if self.protocol == H2 else UpstreamH1
        ctx = sni = None
        client_tls = None
        try:
            if info.tls is not None:
                client_tls = cluster.rt.tls.client(info.tls, cluster.manager_secrets())
                ctx, sni = client_tls.context, client_tls.sni
            local = (cluster.config.source_address, cluster.config.source_port) if cluster.config.source_address else None
            transport, conn = await asyncio.wait_for(loop.create_connection(
                lambda: conn_cls(self, cid), host.address, host.port, ssl=ctx,
                server_hostname=(sni or "") if ctx is not None else None, local_addr=local,
                ssl_handshake_timeout=cluster.config.connect_timeout if ctx is not None else None),
                cluster.config.connect_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            stats.upstream_cx_connect_timeout.value += 1  # type: ignore[attr-defined]
            self._failed(cid, True, "")
            return
        except TlsConfigError as exc:
            self._failed(cid, False, f"TLS_error:|{exc}")
            return
        except ssl.SSLError as exc:
            stats.upstream_cx_ssl_handshake_error.value += 1  # type: ignore[attr-defined]
            self._failed(cid, False, f"TLS_error:|{exc.reason or exc}:TLS_error_end")
            return
        except OSError as exc:
            self._failed(cid, False, _errno_reason(exc))
            return
        if client_tls is not None:
            reason = client_tls.verify(transport.get_extra_info("ssl_object"))
            if reason is not None:
                stats.upstream_cx_ssl_handshake_error.value += 1  # type: ignore[attr-defined]
                transport.abort()
                self._failed(cid, False, reason)
                return
            conn.peer = transport.get_extra_info("ssl_object")
        if cid in self._closing:  # the books gave up on it while connecting
            self._closing.discard(cid)
            transport.close()
            return
        self.conns[cid] = conn
        info.cx_active += 1
        stats.upstream_cx_active.value += 1  # type: ignore[attr-defined]
        self._run(self.books.handle(pe.ConnectionReady(cid, None), loop.time()))
        if self.draining:
            self.drain()

    def _failed(self, cid: int, timeout: bool, detail: str) -> None:
        self.cluster.stats.upstream_cx_connect_fail.value += 1  # type: ignore[attr-defined]
        self.info.cx_connect_fail += 1
        self.failure_detail = detail
        self._closing.discard(cid)
        self.cluster.report(self.info, self.cluster.outlier_result(None, "timeout" if timeout else "connect"))
        self._run(self.books.handle(pe.ConnectFailed(cid, timeout), self.loop.time()))

    def connection_closed(self, conn) -> None:
        if self.conns.pop(conn.cid, None) is not None:
            self.info.cx_active -= 1
            stats = self.cluster.stats
            stats.upstream_cx_active.value -= 1  # type: ignore[attr-defined]
            stats.upstream_cx_destroy.value += 1  # type: ignore[attr-defined]
            if not conn.forgotten:
                stats.upstream_cx_destroy_remote.value += 1  # type: ignore[attr-defined]
                self._run(self.books.handle(pe.ConnectionClosed(conn.cid), self.loop.time()))


def _errno_reason(exc: OSError) -> str:
    return f"delayed_connect_error:_{exc.errno}" if exc.errno else str(exc)
