"""`isthmus gateway` — an ingress or egress gateway: the proxy agent in router mode.

No second data path: this is `isthmus proxy --type router` with gateway defaults —
no traffic capture, identity `<name>-service-account` in `istio-system`, labels
`istio=<name without istio->` (what a Gateway's `selector` matches, e.g.
`istio: ingressgateway`) — and a port map. Gateways listen where their Gateway servers
say; the port map (node metadata GATEWAY_PORT_MAP, applied by pilot when it builds the
listeners, as Istio maps a gateway Service's port to its targetPort) lets an unprivileged
process serve port 80 on 8080 and 443 on 8443, which is the local-mode default. An
egress gateway next to an ingress one on the same host needs its own map
(`--port-map 80=8081,443=8444`). Ports not in the map are bound as they are.
"""
from __future__ import annotations

from typing import Sequence

from isthmus.cli import plain
from isthmus.proxy.agent import add_agent_arguments, run_from_cli
from isthmus.proxy.bootstrap import WorkloadIdentity, parse_labels, parse_port_map
from isthmus.shared import logging as slog

DEFAULT_PORT_MAP = "80=8080,443=8443"


def default_labels(name: str) -> dict[str, str]:
    """Istio's gateway chart labels: `app: istio-ingressgateway`, `istio: ingressgateway`."""
    return {"app": name, "istio": name.removeprefix("istio-")}


def main(argv: Sequence[str]) -> int:
    """Run an ingress or egress gateway (the proxy in router mode, configured from Gateway resources)."""
    p = plain.parser("isthmus gateway", main.__doc__, usage="%(prog)s [options]")
    p.add_argument("--name", default="istio-ingressgateway", help="gateway workload name")
    p.add_argument("-n", "--namespace", default="istio-system", help="its namespace (credentialName Secrets are read from here)")
    p.add_argument("--service-account", default=None, help="default: <name>-service-account")
    p.add_argument("--labels", action="append", default=[],
                   help="k=v[,k=v] matched by Gateway selectors (default: app=<name>,istio=<name minus istio->)")
    p.add_argument("--port-map", default=DEFAULT_PORT_MAP,
                   help="SERVER_PORT=LISTEN_PORT[,...]: where to listen for a Gateway server port ('' = as declared)")
    p.add_argument("--bind", default="0.0.0.0", help="address the listeners bind (a server's `bind` wins)")
    p.add_argument("--ip", default="127.0.0.1", help="the gateway's address (node id)")
    add_agent_arguments(p, "./gateway-run")
    args = p.parse_args(argv)
    try:
        labels = parse_labels(args.labels) if args.labels else default_labels(args.name)
        port_map = parse_port_map(args.port_map)
    except ValueError as exc:
        p.error(str(exc))
    slog.configure("gateway", level=args.log_level)
    workload = WorkloadIdentity(
        name=args.name, namespace=args.namespace, service_account=args.service_account or f"{args.name}-service-account",
        ip=args.ip, labels=labels, proxy_type="router", gateway_port_map=port_map, gateway_bind=args.bind,
    )
    return plain.run(lambda: run_from_cli(workload, args))
