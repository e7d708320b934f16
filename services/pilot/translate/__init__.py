"""Pure translation: (Proxy, PushContext) → Envoy v3 resources, one generator per type URL.

    build_clusters(proxy, push)            -> list[envoy Cluster]               (CDS)
    build_endpoints(proxy, push, names)    -> list[envoy ClusterLoadAssignment] (EDS)
    build_listeners(proxy, push)           -> list[envoy Listener]              (LDS)
    build_routes(proxy, push, names)       -> list[envoy RouteConfiguration]    (RDS)

No I/O, no clocks, no globals: the same inputs give byte-identical outputs.
"""
