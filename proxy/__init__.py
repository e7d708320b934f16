"""The Isthmus data plane: a sidecar/gateway proxy driven by pilot's Envoy xDS.

Layers (each a package; only `runtime/` does I/O):

    xds client ──► config/ (pure)            xDS protos → one frozen `Snapshot`:
                   compiled listeners, filter chains, route tables, clusters,
                   endpoints, secrets. Anything that changes behaviour and is not
                   understood raises `Unsupported` → the xDS client NACKs it.
    runtime/       asyncio: one server per listener address; a connection takes the
                   Snapshot current at accept time (in-flight work finishes on the
                   old one); TLS via ssl.SSLObject + MemoryBIO so bytes read while
                   inspecting (SNI/ALPN) are not lost; SO_ORIGINAL_DST for iptables.
    protocol/      sans-IO codecs: HTTP/1.1 (httptools) and HTTP/2 (h2); bytes in,
                   events out; no sockets.
    filters/       the one HTTP filter chain for sidecars and gateways: fault → cors →
                   router; built once per Snapshot, not per request.
    upstream/      pure bookkeeping: load balancers, connection-pool accounting,
                   circuit breakers, outlier detection; runtime/ does the sockets.

Sidecar and gateway run the same code; a gateway is configuration, not a fork.
"""
