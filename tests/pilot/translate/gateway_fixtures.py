"""Gateway translation fixtures: a gateway proxy, one config exercising every server mode,
and the two oracles — the Python config compiler's Snapshot (simulation) and a real-Envoy
bootstrap holding the generated listeners with their routes inlined."""
from __future__ import annotations

import base64
from functools import cache

from google.protobuf.json_format import MessageToDict

from isthmus.pilot.model.mesh import MeshConfig
from isthmus.pilot.model.proxy import Proxy, ProxyType
from isthmus.pilot.model.push_context import PushContext
from tests.helpers.tlsca import TestCA, tls_secret_yaml
from tests.pilot.fixtures import BOOKINFO_SERVICES, push_from_yaml


def gateway_proxy(name: str = "istio-ingressgateway", namespace: str = "istio-system", labels: dict | None = None,
                  port_map: dict[int, int] | None = None, bind: str = "0.0.0.0") -> Proxy:
    return Proxy(
        id=f"router~127.0.0.1~{name}-0.{namespace}~{namespace}.svc.cluster.local",
        type=ProxyType.ROUTER,
        ip_addresses=("127.0.0.1",),
        namespace=namespace,
        service_account=f"{name}-service-account",
        labels=labels if labels is not None else {"istio": "ingressgateway", "app": name},
        workload_name=name,
        gateway_port_map=port_map or {},
        gateway_bind=bind,
    )


INGRESS = gateway_proxy()
EGRESS = gateway_proxy("istio-egressgateway", labels={"istio": "egressgateway", "app": "istio-egressgateway"})

EXTRA_SERVICES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: productpage}
spec:
  hosts: [productpage.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.51, ports: {http: 9080}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: web}
spec:
  hosts: [httpbin.web.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8000, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.61, ports: {http: 8000}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure-backend}
spec:
  hosts: [secure.backend.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 8443, name: tls, protocol: TLS}]
  endpoints: [{address: 127.0.0.71}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: tcp-echo}
spec:
  hosts: [tcp-echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  endpoints: [{address: 127.0.0.81}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-api}
spec:
  hosts: [api.external.test]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: https, protocol: HTTPS}]
  endpoints: [{address: localhost}]
"""

GATEWAYS = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: https-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https-simple, protocol: HTTPS}
    hosts: [simple.example.com]
    tls: {mode: SIMPLE, credentialName: simple-cred}
  - port: {number: 443, name: https-mutual, protocol: HTTPS}
    hosts: [mutual.example.com]
    tls: {mode: MUTUAL, credentialName: mutual-cred}
  - port: {number: 443, name: https-optional, protocol: HTTPS}
    hosts: [optional.example.com]
    tls: {mode: OPTIONAL_MUTUAL, credentialName: mutual-cred}
  - port: {number: 443, name: tls-passthrough, protocol: TLS}
    hosts: [secure.backend.test]
    tls: {mode: PASSTHROUGH}
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [simple.example.com]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tcp-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
  - port: {number: 9443, name: tls-terminate, protocol: TLS}
    hosts: [tcp.example.com]
    tls: {mode: SIMPLE, credentialName: simple-cred}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: wildcard-a}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: ["*.wild.test"]
    tls: {mode: SIMPLE, credentialName: wild-cred}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: wildcard-b}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [b.wild.test]
    tls: {mode: SIMPLE, credentialName: wild-cred}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: cross-network}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ["*.local"]
    tls: {mode: AUTO_PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [api.external.test]
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [api.external.test]
"""

VIRTUAL_SERVICES = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: simple}
spec:
  hosts: [simple.example.com, mutual.example.com, optional.example.com]
  gateways: [https-gateway]
  http:
  - route: [{destination: {host: productpage, port: {number: 9080}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: passthrough}
spec:
  hosts: [secure.backend.test]
  gateways: [https-gateway]
  tls:
  - match: [{sniHosts: [secure.backend.test], port: 443}]
    route: [{destination: {host: secure.backend.test, port: {number: 8443}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp}
spec:
  hosts: ["*"]
  gateways: [tcp-gateway]
  tcp:
  - match: [{port: 31400}]
    route: [{destination: {host: tcp-echo, port: {number: 9000}}}]
  - match: [{port: 9443}]
    route:
    - {destination: {host: tcp-echo, port: {number: 9000}}, weight: 50}
    - {destination: {host: mysqldb, port: {number: 3306}}, weight: 50}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wild-a}
spec:
  hosts: ["a.wild.test"]
  gateways: [wildcard-a]
  http:
  - route: [{destination: {host: productpage, port: {number: 9080}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wild-b}
spec:
  hosts: ["b.wild.test"]
  gateways: [wildcard-b]
  http:
  - route: [{destination: {host: details, port: {number: 9080}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: external-through-egress}
spec:
  hosts: [api.external.test]
  gateways: [istio-egressgateway, mesh]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: istio-egressgateway.istio-system.svc.cluster.local, port: {number: 443}}}]
  - match: [{gateways: [istio-egressgateway], port: 443}]
    route: [{destination: {host: api.external.test, port: {number: 443}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: originate-tls}
spec:
  host: api.external.test
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE, credentialName: external-ca}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: egressgateway, namespace: istio-system}
spec:
  hosts: [istio-egressgateway.istio-system.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: https, protocol: HTTPS}]
  endpoints: [{address: 127.0.0.91, serviceAccount: istio-egressgateway-service-account}]
"""


@cache
def ca() -> TestCA:
    return TestCA()


@cache
def secrets_yaml() -> str:
    c = ca()
    return "---\n".join([
        tls_secret_yaml("simple-cred", "istio-system", c.issue("simple.example.com", "tcp.example.com")),
        tls_secret_yaml("mutual-cred", "istio-system", c.issue("mutual.example.com", "optional.example.com"), ca=c.pem),
        tls_secret_yaml("wild-cred", "istio-system", c.issue("*.wild.test")),
        tls_secret_yaml("external-ca", "istio-system", None, ca=c.pem),
        tls_secret_yaml("not-for-gateways", "default", c.issue("simple.example.com")),
    ])


def all_modes_yaml() -> str:
    bookinfo_gw = open_corpus("bookinfo-gateway.yaml")
    return "\n---\n".join([BOOKINFO_SERVICES, EXTRA_SERVICES, bookinfo_gw, GATEWAYS, VIRTUAL_SERVICES, secrets_yaml()])


def open_corpus(name: str) -> str:
    from tests.conftest import corpus_path

    return corpus_path("istio-samples", "bookinfo", "networking", name).read_text()


def all_modes_push(mesh: MeshConfig | None = None, extra: str = "") -> PushContext:
    return push_from_yaml(all_modes_yaml() + ("\n---\n" + extra if extra else ""), mesh)


# ---------------------------------------------------------------- oracles

def generated(proxy: Proxy, push: PushContext):
    """(listeners, routes by name, clusters, secrets by name) exactly as pilot would push them."""
    from isthmus.pilot.translate.clusters import build_clusters
    from isthmus.pilot.translate.listeners import build_listeners
    from isthmus.pilot.translate.routes import build_routes
    from isthmus.pilot.translate.secrets import build_secrets
    from isthmus.proxy.config.clusters import CLUSTER_TYPE_URL
    from isthmus.proxy.config.listeners import LISTENER_TYPE_URL
    from isthmus.proxy.config.snapshot import Snapshot

    listeners, clusters = build_listeners(proxy, push), build_clusters(proxy, push)
    snap = Snapshot().with_update(LISTENER_TYPE_URL, {l.name: l for l in listeners})
    refs = snap.with_update(CLUSTER_TYPE_URL, {c.name: c for c in clusters}).references()
    routes = {r.name: r for r in build_routes(proxy, push, sorted(refs.routes))}
    secrets = {s.name: s for s in build_secrets(proxy, push, sorted(refs.secrets))}
    return listeners, routes, clusters, secrets


def agent_secrets() -> dict:
    """What the agent's SDS would serve (`default`, `ROOTCA`): placeholders, never parsed here."""
    from tests.proxy.config.helpers import sds_secrets

    return sds_secrets()


def snapshot(proxy: Proxy, push: PushContext):
    """The Python data plane's compiled view of everything pilot sends this gateway."""
    from isthmus.pilot.translate.endpoints import build_endpoints
    from isthmus.proxy.config.clusters import CLUSTER_TYPE_URL
    from isthmus.proxy.config.endpoints import ENDPOINT_TYPE_URL
    from isthmus.proxy.config.listeners import LISTENER_TYPE_URL
    from isthmus.proxy.config.routes import ROUTE_TYPE_URL
    from isthmus.proxy.config.secrets import SECRET_TYPE_URL
    from isthmus.proxy.config.snapshot import Snapshot

    listeners, routes, clusters, secrets = generated(proxy, push)
    snap = Snapshot().with_update(CLUSTER_TYPE_URL, {c.name: c for c in clusters}, version="v1")
    snap = snap.with_update(LISTENER_TYPE_URL, {l.name: l for l in listeners}, version="v1")
    snap = snap.with_update(ROUTE_TYPE_URL, routes, version="v1")
    refs = snap.references()
    snap = snap.with_update(ENDPOINT_TYPE_URL, {e.cluster_name: e for e in build_endpoints(proxy, push, list(refs.endpoints))}, version="v1")
    return snap.with_update(SECRET_TYPE_URL, {**secrets, **{n: s for n, s in agent_secrets().items() if n in refs.secrets}}, version="v1")


def _static_sds(node):
    """SDS over ADS → the static secret of that name (validate mode cannot run ADS SDS; this also
    checks every referenced credential exists and parses)."""
    if isinstance(node, dict):
        sds = node.get("sds_config")
        if isinstance(sds, dict) and "ads" in sds:
            node.pop("sds_config")
        for v in node.values():
            _static_sds(v)
    elif isinstance(node, list):
        for v in node:
            _static_sds(v)
    return node


def envoy_bootstrap(proxy: Proxy, push: PushContext) -> dict:
    """A static bootstrap: the generated listeners (routes inlined in place of RDS, each on its
    own loopback port), clusters (EDS ones made STATIC), pilot's SDS secrets as static secrets
    (the agent's `default`/`ROOTCA` stay on its SDS cluster)."""
    from tests.pilot.envoy_validate import static_bootstrap

    listeners, routes, clusters, secrets = generated(proxy, push)
    boot = static_bootstrap(listeners=[], clusters=[])
    out_listeners = []
    for i, l in enumerate(listeners):
        d = MessageToDict(l, preserving_proto_field_name=True)
        d["address"]["socket_address"]["port_value"] = 21000 + i
        for chain in d.get("filter_chains", []):
            for f in chain.get("filters", []):
                cfg = f.get("typed_config", {})
                if "rds" in cfg:
                    name = cfg.pop("rds")["route_config_name"]
                    cfg["route_config"] = MessageToDict(routes[name], preserving_proto_field_name=True)
        out_listeners.append(d)
    boot["static_resources"]["listeners"] = out_listeners
    cds = []
    for c in clusters:
        d = MessageToDict(c, preserving_proto_field_name=True)
        if d.get("type") == "EDS":
            d["type"] = "STATIC"
            d.pop("eds_cluster_config", None)
        cds.append(d)
    boot["static_resources"]["clusters"] += cds
    boot["static_resources"]["secrets"] = [MessageToDict(s, preserving_proto_field_name=True) for s in secrets.values()]
    boot["dynamic_resources"] = {"ads_config": {"api_type": "GRPC", "transport_api_version": "V3",
                                                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]}}
    boot["static_resources"]["clusters"].append({
        "name": "xds-grpc", "type": "STATIC",
        "typed_extension_protocol_options": boot["static_resources"]["clusters"][0]["typed_extension_protocol_options"],
        "load_assignment": {"cluster_name": "xds-grpc", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
            "socket_address": {"address": "127.0.0.1", "port_value": 15010}}}}]}]},
    })
    boot["node"]["id"] = proxy.id
    return _static_sds(boot)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
