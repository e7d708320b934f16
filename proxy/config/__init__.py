"""xDS resources → the proxy's frozen runtime configuration (pure; no I/O, no clocks).

    compile_listener(Listener)                        -> ListenerConfig   (listeners.py)
    compile_route_configuration(RouteConfiguration)   -> RouteTable       (routes.py)
    compile_cluster(Cluster)                          -> ClusterConfig    (clusters.py)
    compile_load_assignment(ClusterLoadAssignment)    -> EndpointsConfig  (endpoints.py)
    compile_secret(Secret)                            -> SecretConfig     (secrets.py)
    Snapshot.with_update(type_url, resources, removed, version) -> Snapshot (snapshot.py)
    simulate(snapshot, listener, VirtualRequest)      -> Outcome          (simulate.py, imported from there:
                                                                           the data plane never loads it)

Every field that changes behaviour is either compiled into these values or refused
with `Unsupported(type_url, resource_name, field_path, reason)`; each message has an
explicit allow-list (`errors.Fields`), so fields a newer Envoy adds fail loudly.
Everything is built once per snapshot: regexes compiled, formats parsed, route and
filter-chain lookups indexed, header mutations and per-filter configs resolved.
"""
from isthmus.proxy.config.clusters import ClusterConfig, compile_cluster
from isthmus.proxy.config.endpoints import EndpointsConfig, compile_load_assignment
from isthmus.proxy.config.errors import Invalid, Unsupported
from isthmus.proxy.config.listeners import ListenerConfig, compile_listener
from isthmus.proxy.config.routes import RouteTable, compile_route_configuration
from isthmus.proxy.config.secrets import SecretConfig, compile_secret
from isthmus.proxy.config.snapshot import References, Snapshot

__all__ = [
    "ClusterConfig", "EndpointsConfig", "Invalid", "ListenerConfig", "References", "RouteTable",
    "SecretConfig", "Snapshot", "Unsupported", "compile_cluster", "compile_listener",
    "compile_load_assignment", "compile_route_configuration", "compile_secret",
]
