"""Who the python engine says it is: the Envoy `Node` it announces to pilot — the same
id, cluster and metadata as `proxy/bootstrap.py` writes for a real Envoy, so pilot cannot
tell the engines apart (only user_agent_name says which one is talking) — and the data
plane's `NodeInfo` (telemetry, peer metadata) for the same workload."""
from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from google.protobuf import json_format

from isthmus.proxy.bootstrap import WorkloadIdentity, build_bootstrap

USER_AGENT = "isthmus-proxy"


def node_dict(w: WorkloadIdentity, version: str = "isthmus") -> dict:
    """The bootstrap's `node` section, taken from `build_bootstrap` itself (one source of truth)."""
    return build_bootstrap(w, "127.0.0.1:15012", "/dev/null", version=version)["node"]


def build_node(w: WorkloadIdentity, version: str = "isthmus") -> base_pb2.Node:
    node = json_format.ParseDict(node_dict(w, version), base_pb2.Node())
    node.user_agent_name = USER_AGENT
    node.user_agent_version = version
    return node


def node_info(w: WorkloadIdentity):
    """The data plane's `runtime.node.NodeInfo` for this workload."""
    from isthmus.proxy.runtime.node import NodeInfo

    return NodeInfo.from_workload(w.name, w.namespace, w.service_account, w.labels, proxy_type=w.proxy_type,
                                  trust_domain=w.trust_domain, node_id=w.node_id)
