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

from pathlib import Path

import click

from isthmus.proxy.agent import run_from_cli
from isthmus.proxy.bootstrap import WorkloadIdentity, parse_labels, parse_port_map
from isthmus.shared import logging as slog

DEFAULT_PORT_MAP = "80=8080,443=8443"


def default_labels(name: str) -> dict[str, str]:
    """Istio's gateway chart labels: `app: istio-ingressgateway`, `istio: ingressgateway`."""
    return {"app": name, "istio": name.removeprefix("istio-")}


@click.command()
@click.option("--name", default="istio-ingressgateway", show_default=True, help="gateway workload name")
@click.option("-n", "--namespace", default="istio-system", show_default=True,
              help="its namespace (credentialName Secrets are read from here)")
@click.option("--service-account", default=None, help="default: <name>-service-account")
@click.option("--labels", multiple=True, help="k=v[,k=v] matched by Gateway selectors (default: app=<name>,istio=<name minus istio->)")
@click.option("--port-map", default=DEFAULT_PORT_MAP, show_default=True,
              help="SERVER_PORT=LISTEN_PORT[,...]: where to listen for a Gateway server port ('' = as declared)")
@click.option("--bind", default="0.0.0.0", show_default=True, help="address the listeners bind (a server's `bind` wins)")
@click.option("--ip", default="127.0.0.1", show_default=True, help="the gateway's address (node id)")
@click.option("--pilot", default="127.0.0.1:15012", show_default=True)
@click.option("--plaintext-xds", is_flag=True, help="talk to pilot's plaintext port (development)")
@click.option("--delta", is_flag=True, help="incremental xDS")
@click.option("--ca", default="127.0.0.1:8060", show_default=True, help="citadel address")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--engine", type=click.Choice(["python", "envoy"]), default="python", show_default=True)
@click.option("--concurrency", default=1, show_default=True)
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("./gateway-run"), show_default=True)
@click.option("--admin-port", default=15000, show_default=True)
@click.option("--status-port", default=15021, show_default=True)
@click.option("--stats-port", default=15090, show_default=True)
@click.option("--drain-seconds", default=5.0, show_default=True)
@click.option("--log-level", default="info", show_default=True)
def gateway(name: str, namespace: str, service_account: str | None, labels: tuple[str, ...], port_map: str, bind: str,
            ip: str, log_level: str, **kw) -> None:
    """Run an ingress or egress gateway (the proxy in router mode, configured from Gateway resources)."""
    slog.configure("gateway", level=log_level)
    workload = WorkloadIdentity(
        name=name, namespace=namespace, service_account=service_account or f"{name}-service-account", ip=ip,
        labels=parse_labels(labels) if labels else default_labels(name), proxy_type="router",
        gateway_port_map=parse_port_map(port_map), gateway_bind=bind,
    )
    run_from_cli(workload, kw)
