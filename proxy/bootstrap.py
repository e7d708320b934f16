"""`isthmus bootstrap`: the Envoy bootstrap for one workload (what pilot-agent writes).

Node id/cluster/metadata as pilot parses them (Istio's keys plus ours), ADS over gRPC
to pilot (plaintext 15010 or mTLS 15012 with the workload certificate from SDS),
SDS from the local agent's unix socket, admin on 15000, Prometheus stats on 15090.
`build_bootstrap` is pure; the command only writes the file.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from isthmus.cli import plain

HTTP2 = {
    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}},
    }
}


@dataclass(frozen=True)
class WorkloadIdentity:
    name: str  # workload instance name, e.g. reviews-v1-0
    namespace: str = "default"
    service_account: str = "default"
    ip: str = "127.0.0.1"
    labels: dict[str, str] = field(default_factory=dict)
    workload_group: str = ""
    proxy_type: str = "sidecar"  # or router
    capture_mode: str = "explicit"  # or iptables
    ports: tuple[dict, ...] = ()  # {port, name, protocol, proxyPort}
    outbound_port: int = 15001
    inbound_port: int = 15006
    trust_domain: str = "cluster.local"
    # Gateways (router): Gateway server port → the port to listen on, and the listen address.
    gateway_port_map: tuple[tuple[int, int], ...] = ()
    gateway_bind: str = ""

    @property
    def node_id(self) -> str:
        return f"{self.proxy_type}~{self.ip}~{self.name}.{self.namespace}~{self.namespace}.svc.cluster.local"


def format_port_map(pairs: tuple[tuple[int, int], ...]) -> str:
    return ",".join(f"{a}={b}" for a, b in pairs)


def node_metadata(w: WorkloadIdentity, version: str) -> dict:
    md = {
        "NAMESPACE": w.namespace,
        "SERVICE_ACCOUNT": w.service_account,
        "LABELS": dict(w.labels),
        "WORKLOAD_NAME": w.name,
        "WORKLOAD_GROUP": w.workload_group,
        "INTERCEPTION_MODE": "REDIRECT" if w.capture_mode == "iptables" else "NONE",
        "PORTS": [dict(p) for p in w.ports],
        "OUTBOUND_PORT": str(w.outbound_port),
        "INBOUND_PORT": str(w.inbound_port),
        "ISTIO_VERSION": version,
        "INSTANCE_IPS": w.ip,
    }
    if w.gateway_port_map:
        md["GATEWAY_PORT_MAP"] = format_port_map(w.gateway_port_map)
    if w.gateway_bind:
        md["GATEWAY_BIND"] = w.gateway_bind
    return md


def _socket_address(addr: str) -> dict:
    host, _, port = addr.rpartition(":")
    return {"socket_address": {"address": host or "127.0.0.1", "port_value": int(port)}}


def build_bootstrap(
    w: WorkloadIdentity,
    pilot: str,
    sds_socket: str,
    *,
    mtls: bool = True,
    admin_port: int = 15000,
    stats_port: int = 15090,
    delta: bool = False,
    version: str = "isthmus",
) -> dict:
    xds_cluster: dict = {
        "name": "xds-grpc",
        "type": "STRICT_DNS",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": HTTP2,
        "load_assignment": {"cluster_name": "xds-grpc", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket_address(pilot)}}]}]},
        "circuit_breakers": {"thresholds": [{"max_connections": 100000, "max_pending_requests": 100000, "max_requests": 100000}]},
    }
    if mtls:
        xds_cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": "istiod.istio-system.svc",
                "common_tls_context": {
                    "alpn_protocols": ["h2"],
                    "tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": _sds_source()}],
                    "validation_context_sds_secret_config": {"name": "ROOTCA", "sds_config": _sds_source()},
                },
            },
        }
    return {
        "node": {"id": w.node_id, "cluster": w.labels.get("app", w.name) + "." + w.namespace, "metadata": node_metadata(w, version)},
        "admin": {"address": _socket_address(f"127.0.0.1:{admin_port}")},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if delta else "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}],
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "0s"},
            "lds_config": {"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "0s"},
        },
        "static_resources": {
            "clusters": [
                xds_cluster,
                {
                    "name": "sds-grpc",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "typed_extension_protocol_options": HTTP2,
                    "load_assignment": {"cluster_name": "sds-grpc", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"pipe": {"path": sds_socket}}}}]}]},
                },
                {
                    "name": "prometheus_stats",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {"cluster_name": "prometheus_stats", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket_address(f"127.0.0.1:{admin_port}")}}]}]},
                },
            ],
            "listeners": [
                {
                    "name": "prometheus_stats",
                    "address": _socket_address(f"{'0.0.0.0' if w.capture_mode == 'iptables' else '127.0.0.1'}:{stats_port}"),
                    "filter_chains": [{"filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "stats",
                            "route_config": {"virtual_hosts": [{"name": "backend", "domains": ["*"], "routes": [
                                {"match": {"prefix": "/stats/prometheus"}, "route": {"cluster": "prometheus_stats"}}]}]},
                            "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                        },
                    }]}],
                }
            ],
        },
    }


def _sds_source() -> dict:
    return {
        "api_config_source": {
            "api_type": "GRPC",
            "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": "sds-grpc"}}],
        },
        "resource_api_version": "V3",
        "initial_fetch_timeout": "0s",
    }


def parse_port(spec: str) -> dict:
    """`http:9080`, `http:9080:15080`, `9080` → {name, port, protocol, proxyPort}."""
    parts = spec.split(":")
    if len(parts) == 1:
        name, port, proxy_port = "", parts[0], ""
    elif len(parts) == 2:
        name, port, proxy_port = parts[0], parts[1], ""
    else:
        name, port, proxy_port = parts[0], parts[1], parts[2]
    if not port.isdigit() or (proxy_port and not proxy_port.isdigit()):
        raise ValueError(f"--port {spec!r}: want NAME:PORT[:PROXY_PORT]")
    out = {"port": int(port), "name": name, "protocol": name.split("-")[0].upper() if name else ""}
    if proxy_port:
        out["proxyPort"] = int(proxy_port)
    return out


def parse_port_map(value: str) -> tuple[tuple[int, int], ...]:
    """`80=8080,443=8443` → ((80, 8080), (443, 8443)); "" → ()."""
    out = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        a, sep, b = item.partition("=")
        if not sep or not a.strip().isdigit() or not b.strip().isdigit() or not (0 < int(a) < 65536 and 0 < int(b) < 65536):
            raise ValueError(f"--port-map {item!r}: want SERVER_PORT=LISTEN_PORT, e.g. 80=8080")
        out.append((int(a), int(b)))
    return tuple(out)


def parse_labels(values: Sequence[str]) -> dict[str, str]:
    labels = {}
    for v in values:
        for item in v.split(","):
            if not item:
                continue
            k, sep, val = item.partition("=")
            if not sep:
                raise ValueError(f"--labels {item!r}: want key=value")
            labels[k] = val
    return labels


def add_workload_arguments(p: argparse.ArgumentParser) -> None:
    """The flags that describe a workload (`isthmus proxy` and `isthmus bootstrap`)."""
    p.add_argument("--name", required=True, help="workload instance name (node id), e.g. reviews-v1-0")
    p.add_argument("-n", "--namespace", default="default", help="the workload's namespace")
    p.add_argument("--service-account", default="default", help="the workload's service account")
    p.add_argument("--ip", default="127.0.0.1", help="the workload's address (registered with pilot)")
    p.add_argument("--labels", action="append", default=[], help="k=v[,k=v] (repeatable)")
    p.add_argument("--workload-group", default="", help="auto-register into this WorkloadGroup")
    p.add_argument("--type", dest="proxy_type", choices=("sidecar", "router"), default="sidecar", help="proxy type")
    p.add_argument("--capture", choices=("explicit", "iptables"), default="explicit", help="traffic capture mode")
    p.add_argument("--port", dest="ports", action="append", default=[],
                   help="NAME:APP_PORT[:PROXY_PORT] the workload serves (repeatable)")
    p.add_argument("--outbound-port", type=int, default=15001, help="explicit: the app's HTTP_PROXY port")
    p.add_argument("--inbound-port", type=int, default=15006, help="inbound capture port")


def workload_from_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> WorkloadIdentity:
    """The workload `add_workload_arguments`' flags describe; a malformed one is a usage error (exit 2)."""
    try:
        labels, ports = parse_labels(args.labels), tuple(parse_port(x) for x in args.ports)
    except ValueError as exc:
        p.error(str(exc))
    return WorkloadIdentity(
        name=args.name, namespace=args.namespace, service_account=args.service_account, ip=args.ip,
        labels=labels, workload_group=args.workload_group, proxy_type=args.proxy_type, capture_mode=args.capture,
        ports=ports, outbound_port=args.outbound_port, inbound_port=args.inbound_port,
    )


def main(argv: Sequence[str]) -> int:
    """Write the Envoy bootstrap for a workload (JSON, which Envoy reads as YAML too)."""
    p = plain.parser("isthmus bootstrap", main.__doc__, usage="%(prog)s --name NAME [options]")
    add_workload_arguments(p)
    p.add_argument("--pilot", default="127.0.0.1:15012", help="pilot ADS address")
    p.add_argument("--plaintext", action="store_true", help="ADS without mTLS (pilot's 15010, development)")
    p.add_argument("--delta", action="store_true", help="use incremental (delta) xDS")
    p.add_argument("--sds-socket", default="./etc/istio/proxy/SDS", help="the agent's SDS socket")
    p.add_argument("--admin-port", type=int, default=15000, help="Envoy admin port")
    p.add_argument("--stats-port", type=int, default=15090, help="Prometheus port")
    p.add_argument("-o", "--output", type=Path, default=None, help="file to write (default stdout)")
    args = p.parse_args(argv)
    w = workload_from_args(p, args)
    doc = build_bootstrap(w, args.pilot, args.sds_socket, mtls=not args.plaintext, admin_port=args.admin_port,
                          stats_port=args.stats_port, delta=args.delta)
    text = json.dumps(doc, indent=2)

    def body() -> None:
        if args.output:
            try:
                args.output.write_text(text + "\n")
            except OSError as exc:
                raise plain.Failure(f"cannot write {args.output}: {exc}") from None
        else:
            print(text)

    return plain.run(body)
