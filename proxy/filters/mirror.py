"""Request mirroring (shadowing): fire-and-forget copies to the mirror clusters.

Started once the whole request is here (its body was buffered for it). The copy's
authority gets `-shadow` appended to the host part (`reviews:9080` →
`reviews-shadow:9080`) unless disable_shadow_host_suffix_append. Whatever happens to
a copy — no host, overflow, failure, any response — never touches the main
response; its response is read and dropped, bounded by the route timeout.
"""
from __future__ import annotations

from isthmus.proxy.runtime.upstream import H1, H2, HostPool

DEFAULT_SHADOW_TIMEOUT = 15.0


def shadow_authority(authority: bytes) -> bytes:
    if authority.startswith(b"["):
        end = authority.rfind(b"]:")
        at = end + 1 if end >= 0 else -1
    else:
        at = authority.rfind(b":")
    if at < 0:
        return authority + b"-shadow"
    return authority[:at] + b"-shadow" + authority[at:]


class Shadow:
    """A pool exchange whose response nobody waits for."""

    __slots__ = ("pool", "method", "target", "authority", "headers", "body", "trailers", "conn", "timer", "complete",
                 "downstream")

    def __init__(self, pool: HostPool, method, target, authority, headers, body: bytes, trailers) -> None:
        self.pool = pool
        self.method, self.target, self.authority = method, target, authority
        self.headers, self.body, self.trailers = headers, body, trailers
        self.conn = None
        self.timer = None
        self.complete = False
        self.downstream = None

    def on_connection(self, conn) -> None:
        self.conn = conn
        conn.start(self, self.method, self.target, self.authority, self.headers, self.body, self.trailers is None)
        if self.trailers is not None:
            conn.send_trailers(self, self.trailers)

    def on_pool_failure(self, reason, detail: str) -> None:
        self._done()

    def on_response_head(self, head) -> None:
        self.pool.cluster.stats.response(head.status)
        if head.end_stream:
            self._done()

    def on_response_whole(self, head, body: bytes) -> None:
        self.pool.cluster.stats.response(head.status)
        self._done()

    def on_response_data(self, data: bytes, end: bool) -> None:
        if end:
            self._done()
        elif self.conn is not None and self.pool.protocol == H2:
            self.conn.ack(self, len(data))

    def on_response_trailers(self, headers) -> None:
        self._done()

    def on_reset(self, kind: str, detail: str) -> None:
        self._done()

    def on_window(self, pending: int) -> None:
        pass

    def _done(self) -> None:
        self.complete = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def give_up(self) -> None:
        self.timer = None
        if self.complete:
            return
        self.complete = True
        if self.conn is not None:
            self.conn.abandon(self)
        else:
            self.pool.cancel(self)


def start_mirrors(fwd, body: bytes) -> None:
    """Send one copy per mirror policy that was picked for this request."""
    mirrors, fwd.mirrors = fwd.mirrors, ()
    stream = fwd.stream
    clusters = fwd.router.hcm.clusters
    loop = stream.conn.loop
    for policy in mirrors:
        cluster = clusters.get(policy.cluster)
        if cluster is None or cluster.config.discovery_type == "ORIGINAL_DST":
            continue
        info = cluster.choose(None)
        if info is None:
            continue
        http = cluster.config.http.protocol
        protocol = H2 if http == "http2" or (http == "downstream" and stream.conn.is_h2) else H1
        key = (protocol, "default")
        pool = info.pools.get(key)
        if pool is None or pool.draining:
            pool = info.pools[key] = HostPool(cluster, info, protocol)
        authority = fwd.authority if policy.disable_shadow_host_suffix_append else shadow_authority(fwd.authority)
        shadow = Shadow(pool, stream.method, fwd.target, authority, fwd.headers, body, fwd.trailers)
        cluster.stats.upstream_rq_total.value += 1
        shadow.timer = loop.call_later(fwd.timeout or DEFAULT_SHADOW_TIMEOUT, shadow.give_up)
        pool.request(shadow)
