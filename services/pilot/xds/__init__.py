"""Pilot's xDS shell: Envoy v3 ADS (SotW and delta) over gRPC, plaintext and mTLS.

    server.py      generic ADS stream loop: nonces, versions, ACK/NACK (no Istio config)
    connection.py  per-stream state and the pure request rules
    discovery.py   DiscoveryServer: PushContext, debounce → PushQueue → connections
    relevance.py   which proxies a PushRequest concerns, and what to push them (pure)
    generators.py  the one table type URL → generator (translate/)
    node.py        Envoy Node → Proxy, identity binding (pure)
    status.py      syncz snapshots and the proxy-status view (pure)
    tls.py         rotating mTLS credentials, peer SPIFFE identity
    debug.py       /debug/* handlers; metrics.py: Istio's metric names
"""
