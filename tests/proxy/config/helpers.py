"""Builders for the config compiler tests: protos from compact dicts (json_format with
`@type` Anys), and Snapshots of real pilot output for a Bookinfo sidecar."""
from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

# Imported so json_format can resolve their `@type` URLs.
from envoy.extensions.access_loggers.file.v3 import file_pb2  # noqa: F401
from envoy.extensions.filters.http.cors.v3 import cors_pb2  # noqa: F401
from envoy.extensions.filters.http.fault.v3 import fault_pb2  # noqa: F401
from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2  # noqa: F401
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2  # noqa: F401
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2  # noqa: F401
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2  # noqa: F401
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2

from isthmus.proxy.config.clusters import CLUSTER_TYPE_URL
from isthmus.proxy.config.endpoints import ENDPOINT_TYPE_URL
from isthmus.proxy.config.listeners import LISTENER_TYPE_URL
from isthmus.proxy.config.routes import ROUTE_TYPE_URL
from isthmus.proxy.config.secrets import SECRET_TYPE_URL
from isthmus.proxy.config.snapshot import Snapshot

T = "type.googleapis.com/"
HCM_TYPE = T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
TCP_PROXY_TYPE = T + "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
ROUTER = {"name": "envoy.filters.http.router", "typed_config": {"@type": T + "envoy.extensions.filters.http.router.v3.Router"}}
BOOKINFO = ("istio-samples", "bookinfo", "networking")


def parse(cls: type[Message], d: dict[str, Any]) -> Message:
    return json_format.ParseDict(d, cls())


def hcm(route_config: dict | None = None, rds: str = "", **extra) -> dict:
    out: dict[str, Any] = {"@type": HCM_TYPE, "stat_prefix": "test", "http_filters": [ROUTER], **extra}
    if rds:
        out["rds"] = {"route_config_name": rds, "config_source": {"ads": {}, "resource_api_version": "V3"}}
    else:
        out["route_config"] = route_config or {"name": "inline", "virtual_hosts": [
            {"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "c"}}]}]}
    return out


def tcp(cluster: str = "c") -> dict:
    return {"@type": TCP_PROXY_TYPE, "stat_prefix": "tcp", "cluster": cluster}


def chain(name: str, match: dict | None = None, filter_config: dict | None = None) -> dict:
    out: dict[str, Any] = {"name": name, "filters": [{"name": "f", "typed_config": filter_config or tcp(name)}]}
    if match:
        out["filter_chain_match"] = match
    return out


def listener(chains: list[dict] | None = None, **extra) -> listener_pb2.Listener:
    d = {"name": "l", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15006}},
         "filter_chains": chains if chains is not None else [chain("only")], **extra}
    return parse(listener_pb2.Listener, d)


def route_configuration(vhosts: list[dict], **extra) -> route_pb2.RouteConfiguration:
    return parse(route_pb2.RouteConfiguration, {"name": "r", "virtual_hosts": vhosts, **extra})


def vhost(name: str, domains: list[str], routes: list[dict] | None = None, **extra) -> dict:
    return {"name": name, "domains": domains,
            "routes": routes or [{"name": name, "match": {"prefix": "/"}, "route": {"cluster": name}}], **extra}


def cluster(d: dict) -> cluster_pb2.Cluster:
    return parse(cluster_pb2.Cluster, {"name": "c", "connect_timeout": "1s", **d})


def corpus_text(*files: str) -> str:
    from tests.conftest import corpus_path

    return "\n---\n".join(corpus_path(*BOOKINFO, f).read_text() for f in files)


def sds_secrets() -> dict[str, secret_pb2.Secret]:
    return {
        "default": parse(secret_pb2.Secret, {"name": "default", "tls_certificate": {
            "certificate_chain": {"inline_bytes": "Y2VydA=="}, "private_key": {"inline_bytes": "a2V5"}}}),
        "ROOTCA": parse(secret_pb2.Secret, {"name": "ROOTCA", "validation_context": {"trusted_ca": {"inline_bytes": "Y2E="}}}),
    }



def pilot_snapshot(extra_yaml: str = "", proxy=None, mesh=None, route_names: tuple[str, ...] = ()) -> Snapshot:
    """CDS → LDS → RDS → EDS → SDS for one sidecar, from pilot's own translators."""
    from isthmus.pilot.translate.clusters import build_clusters
    from isthmus.pilot.translate.endpoints import build_endpoints
    from isthmus.pilot.translate.listeners import build_listeners
    from tests.pilot.fixtures import BOOKINFO_SERVICES, push_from_yaml, sidecar

    routes_mod = pytest.importorskip("isthmus.pilot.translate.routes")
    push = push_from_yaml(BOOKINFO_SERVICES + ("\n---\n" + extra_yaml if extra_yaml else ""), mesh=mesh)
    proxy = proxy or sidecar()
    snap = Snapshot().with_update(CLUSTER_TYPE_URL, {c.name: c for c in build_clusters(proxy, push)}, version="v1")
    snap = snap.with_update(LISTENER_TYPE_URL, {l.name: l for l in build_listeners(proxy, push)}, version="v1")
    refs = snap.references()
    names = list(dict.fromkeys([*refs.routes, *route_names]))
    snap = snap.with_update(ROUTE_TYPE_URL, {r.name: r for r in routes_mod.build_routes(proxy, push, names)}, version="v1")
    snap = snap.with_update(ENDPOINT_TYPE_URL, {e.cluster_name: e for e in build_endpoints(proxy, push, list(refs.endpoints))}, version="v1")
    return snap.with_update(SECRET_TYPE_URL, {n: s for n, s in sds_secrets().items() if n in refs.secrets}, version="v1")
