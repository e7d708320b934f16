"""Build PushContexts and proxies from YAML for pilot's pure tests."""
from __future__ import annotations

from isthmus.pilot.model.mesh import MeshConfig
from isthmus.pilot.model.proxy import CaptureMode, Proxy, ProxyType, WorkloadPort
from isthmus.pilot.model.push_context import ConfigSnapshot, PushContext
from isthmus.shared.config.documents import parse_text
from isthmus.shared.config.validation import validate_document


def resources_from_yaml(text: str, namespace: str = "default"):
    out = []
    for i, doc in enumerate(parse_text(text, "test")):
        outcome = validate_document(doc.body, default_namespace=namespace)
        assert outcome.ok, outcome.errors
        # Deterministic age: document order is creation order.
        out.append(outcome.resource.with_meta(creation_timestamp=f"2024-01-01T00:00:{i:02d}Z", resource_version=str(i + 1)))
    return out


def push_from_yaml(text: str, mesh: MeshConfig | None = None, version: str = "1") -> PushContext:
    resources = resources_from_yaml(text)
    return PushContext.build(version, ConfigSnapshot.build(len(resources), resources), mesh or MeshConfig())


def sidecar(
    name: str = "productpage-v1",
    namespace: str = "default",
    labels: dict | None = None,
    ip: str = "127.0.0.1",
    ports: tuple[WorkloadPort, ...] = (WorkloadPort(port=9080, name="http", protocol="HTTP", proxy_port=15080),),
    capture: CaptureMode = CaptureMode.EXPLICIT,
    service_account: str = "bookinfo-productpage",
) -> Proxy:
    return Proxy(
        id=f"sidecar~{ip}~{name}.{namespace}~{namespace}.svc.cluster.local",
        type=ProxyType.SIDECAR,
        ip_addresses=(ip,),
        namespace=namespace,
        service_account=service_account,
        labels=labels or {"app": name.split("-")[0], "version": "v1"},
        workload_name=name,
        capture_mode=capture,
        ports=ports,
        outbound_port=15001,
        inbound_port=15006,
    )


BOOKINFO_SERVICES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1}
spec: {address: 127.0.0.11, labels: {app: reviews, version: v1, security.istio.io/tlsMode: istio}, serviceAccount: bookinfo-reviews, ports: {http: 19080}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2}
spec: {address: 127.0.0.12, labels: {app: reviews, version: v2, security.istio.io/tlsMode: istio}, serviceAccount: bookinfo-reviews, ports: {http: 19080}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v3}
spec: {address: 127.0.0.13, labels: {app: reviews, version: v3, security.istio.io/tlsMode: istio}, serviceAccount: bookinfo-reviews, ports: {http: 19080}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-v1}
spec: {address: 127.0.0.21, labels: {app: ratings, version: v1, security.istio.io/tlsMode: istio}, serviceAccount: bookinfo-ratings, ports: {http: 19080}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details}
spec:
  hosts: [details.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.31, labels: {app: details, version: v1}, ports: {http: 9080}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mysql}
spec:
  hosts: [mysqldb.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 3306, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.41}]
"""
