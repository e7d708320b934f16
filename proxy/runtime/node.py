"""Who this proxy is: the workload identity the data plane reports in telemetry and
sends to peers (`x-envoy-peer-metadata`). A frozen value built once by the engine.

`NodeInfo.from_workload(...)` derives Istio's canonical service/revision and the
SPIFFE id from labels and service account the way istio-agent does.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

SIDECAR = "sidecar"
ROUTER = "router"


@dataclass(frozen=True)
class NodeInfo:
    workload_name: str = "unknown"
    namespace: str = "default"
    service_account: str = "default"
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    app: str = ""
    version: str = ""
    canonical_service: str = ""
    canonical_revision: str = "latest"
    spiffe_id: str = ""
    cluster_id: str = "Kubernetes"
    proxy_type: str = SIDECAR  # sidecar | router
    node_id: str = ""
    trust_domain: str = "cluster.local"

    @classmethod
    def from_workload(cls, name: str, namespace: str = "default", service_account: str = "default",
                      labels: Mapping[str, str] | None = None, *, proxy_type: str = SIDECAR,
                      trust_domain: str = "cluster.local", cluster_id: str = "Kubernetes",
                      node_id: str = "") -> "NodeInfo":
        labels = dict(labels or {})
        app = labels.get("app", "")
        version = labels.get("version", "")
        canonical = (labels.get("service.istio.io/canonical-name") or labels.get("app.kubernetes.io/name")
                     or app or _workload_base(name))
        revision = labels.get("service.istio.io/canonical-revision") or labels.get("app.kubernetes.io/version") or version or "latest"
        return cls(
            workload_name=name, namespace=namespace, service_account=service_account,
            labels=MappingProxyType(labels), app=app, version=version, canonical_service=canonical,
            canonical_revision=revision, spiffe_id=f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}",
            cluster_id=cluster_id, proxy_type=proxy_type, node_id=node_id, trust_domain=trust_domain,
        )

    @property
    def is_gateway(self) -> bool:
        return self.proxy_type == ROUTER

    def peer_metadata(self) -> dict[str, str]:
        """The map a client sidecar sends in `x-envoy-peer-metadata` (our own encoding)."""
        return {
            "WORKLOAD_NAME": self.workload_name, "NAMESPACE": self.namespace, "SERVICE_ACCOUNT": self.service_account,
            "APP": self.app, "VERSION": self.version, "CANONICAL_SERVICE": self.canonical_service,
            "CANONICAL_REVISION": self.canonical_revision, "CLUSTER_ID": self.cluster_id,
            "LABELS": dict(self.labels),  # type: ignore[dict-item]
        }

    def peer_metadata_header(self) -> bytes:
        return base64.b64encode(json.dumps(self.peer_metadata(), separators=(",", ":"), sort_keys=True).encode())

    def peer_metadata_id(self) -> bytes:
        return (self.node_id or f"{self.proxy_type}~{self.workload_name}.{self.namespace}").encode()


def decode_peer_metadata(value: bytes) -> dict | None:
    """`x-envoy-peer-metadata` → its map, or None when it is not ours / malformed."""
    try:
        out = json.loads(base64.b64decode(value, validate=True))
    except (ValueError, TypeError):
        return None
    return out if isinstance(out, dict) else None


def _workload_base(name: str) -> str:
    """`reviews-v1-0` → `reviews-v1` (a pod's ordinal dropped), as a last-resort canonical name."""
    head, sep, tail = name.rpartition("-")
    return head if sep and tail.isdigit() else name
