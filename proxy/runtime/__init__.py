"""The data plane's only I/O: sockets, TLS, timers — driven by compiled Snapshots.

    dataplane.py   DataPlane(stats, secrets, node).apply(snapshot) / drain / stop / status
    generation.py  a Snapshot made runnable: listeners → chains → HCM / tcp_proxy
    server.py      one bound socket per listener address (SO_REUSEPORT for workers)
    connection.py  listener filters (original_dst, tls_inspector, http_inspector), chain pick
    clienthello.py ClientHello / HTTP sniffing (pure)
    tls.py         SecretProvider, TLS contexts per secret version, SAN checks
    tls_layer.py   downstream TLS over SSLObject + MemoryBIO
    http_conn.py   HTTP connection state (codecs, pipelining, timeouts, drain)
    stream.py      per-request state: decode → filters → router; encode; local replies
    hcm.py         per-snapshot HCM: filter chain, limits, telemetry + access-log hooks
    upstream.py    host pools over upstream/pool.py (connect, TLS, SAN checks)
    upstream_http.py HTTP/1.1 and HTTP/2 client connections
    cluster.py     per-cluster state across snapshots: hosts, LB, breakers, outlier, DNS
    status.py      admin views: clusters (Envoy's /clusters text), listeners
    tcp_proxy.py   tcp_proxy sessions (and TLS passthrough)
    flow_control.py backpressure between the two sides
    access_log.py  formatted, buffered access logs; formatter.py evaluates formats
    context.py     Runtime: what every runtime object may reach (loop, stats, TLS, sinks)
    node.py        NodeInfo: this workload's identity
"""
from isthmus.proxy.runtime.dataplane import DataPlane
from isthmus.proxy.runtime.node import NodeInfo
from isthmus.proxy.runtime.tls import SecretProvider, StaticSecrets

__all__ = ["DataPlane", "NodeInfo", "SecretProvider", "StaticSecrets"]
