"""xDS v3 type URLs, the ADS push order, and wildcard rules — protocol facts only.

Full pushes go CDS → EDS → LDS → RDS (what Envoy's ADS needs for warming); CDS and
LDS are wildcard types (an empty subscription means "everything"), EDS and RDS are
named (the client lists what it wants).
"""
from __future__ import annotations

import hashlib

from google.protobuf.message import Message

PREFIX = "type.googleapis.com/"
CLUSTER = PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT = PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER = PREFIX + "envoy.config.listener.v3.Listener"
ROUTE = PREFIX + "envoy.config.route.v3.RouteConfiguration"
SECRET = PREFIX + "envoy.extensions.transport_sockets.tls.v3.Secret"

PUSH_ORDER: tuple[str, ...] = (CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET)
WILDCARD_TYPES = frozenset({CLUSTER, LISTENER})
WILDCARD = "*"

_SHORT = {CLUSTER: "cds", ENDPOINT: "eds", LISTENER: "lds", ROUTE: "rds", SECRET: "sds"}


def short_name(type_url: str) -> str:
    """`cds`, `eds`, ... (metric labels, syncz keys); unknown types keep their message name."""
    return _SHORT.get(type_url) or type_url.rsplit(".", 1)[-1]


def from_short_name(name: str) -> str | None:
    return next((t for t, s in _SHORT.items() if s == name), None)


def order_key(type_url: str) -> tuple[int, str]:
    """Sort key putting known types in push order, then the rest by name."""
    try:
        return PUSH_ORDER.index(type_url), ""
    except ValueError:
        return len(PUSH_ORDER), type_url


def resource_name(msg: Message) -> str:
    """The xDS name of a resource: `name`, or `cluster_name` for ClusterLoadAssignment."""
    fields = msg.DESCRIPTOR.fields_by_name
    if "cluster_name" in fields and "name" not in fields:
        return getattr(msg, "cluster_name")
    return getattr(msg, "name")


def resource_version(msg: Message) -> str:
    """Content hash of one resource (delta xDS per-resource version)."""
    return hashlib.sha256(msg.SerializeToString(deterministic=True)).hexdigest()[:16]
