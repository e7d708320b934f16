"""`isthmus proxy-status` and `isthmus proxy-config` (istioctl's columns) from pilot's debug API.

Pilot's monitoring address comes from --pilot-debug, $ISTHMUS_PILOT_DEBUG, the running
`isthmus up`, or 127.0.0.1:15014.
"""
from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable

import click

from isthmus.cli.output import render_table
from isthmus.shared.rundir import load_state, pid_alive

pilot_option = click.option("--pilot-debug", "pilot", metavar="ADDR", help="pilot's monitoring address (default: $ISTHMUS_PILOT_DEBUG, the running mesh, or 127.0.0.1:15014)")


def _pilot_address(explicit: str | None) -> str:
    if explicit:
        return explicit
    if os.environ.get("ISTHMUS_PILOT_DEBUG"):
        return os.environ["ISTHMUS_PILOT_DEBUG"]
    state = load_state() or {}
    comp = (state.get("components") or {}).get("pilot") or {}
    if comp.get("debug") and pid_alive(int(comp.get("pid") or 0)):
        return comp["debug"]
    return "127.0.0.1:15014"


def _fetch(address: str, path: str) -> Any:
    url = f"http://{address}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("error", "")
        except ValueError:
            detail = ""
        raise click.ClickException(f"pilot answered {exc.code} for {path}: {detail or exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise click.ClickException(
            f"cannot reach pilot's debug endpoint at {address} ({getattr(exc, 'reason', exc)}): "
            "is the mesh running (`isthmus status`)? or pass --pilot-debug"
        ) from None


@click.command("proxy-status")
@click.argument("proxy", required=False)
@pilot_option
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
def proxy_status(proxy: str | None, pilot: str | None, output: str) -> None:
    """Sync state of every connected proxy: NAME CLUSTER CDS LDS EDS RDS ISTIOD VERSION."""
    from isthmus.pilot.xds.status import SyncEntry, format_table, proxy_status as rows_of

    entries = [SyncEntry.from_dict(e) for e in _fetch(_pilot_address(pilot), "/debug/syncz")]
    if proxy:
        entries = [e for e in entries if proxy in (e.proxy_id, e.name) or e.name.startswith(proxy)]
        if not entries:
            raise click.ClickException(f"no connected proxy matches {proxy!r}")
    if output == "json":
        click.echo(json.dumps([e.to_dict() for e in entries], indent=2))
        return
    if not entries:
        click.echo("No proxies are connected to pilot.")
        return
    click.echo(format_table(rows_of(entries)))
    if any(t.state != "SYNCED" for e in entries for t in e.types):
        sys.exit(1)


# ---- proxy-config ------------------------------------------------------------------

def _istio_config(meta: dict) -> str:
    cfg = ((meta or {}).get("filterMetadata") or {}).get("istio", {}).get("config", "")
    # /apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews → reviews.default
    parts = cfg.strip("/").split("/")
    if len(parts) >= 6:
        return f"{parts[-1]}.{parts[-3]}"
    return cfg or "-"


def _cluster_rows(resources: list[dict]) -> list[list[str]]:
    rows = [["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"]]
    for c in resources:
        name = c.get("name", "")
        parts = name.split("|")
        if len(parts) == 4:
            direction, port, subset, host = parts
        else:
            direction, port, subset, host = "-", "-", "-", name
        ctype = c.get("type", "EDS" if c.get("edsClusterConfig") else "STATIC")
        rows.append([host or "", port or "-", subset or "-", direction, ctype, _istio_config(c.get("metadata", {}))])
    return rows


def _chain_match(chain: dict) -> str:
    m = chain.get("filterChainMatch") or {}
    bits = []
    if m.get("destinationPort"):
        bits.append(f"port {m['destinationPort']}")
    if m.get("serverNames"):
        bits.append("SNI: " + ",".join(m["serverNames"]))
    if m.get("transportProtocol"):
        bits.append(f"Trans: {m['transportProtocol']}")
    if m.get("applicationProtocols"):
        bits.append("App: " + ",".join(m["applicationProtocols"]))
    return "; ".join(bits) or "ALL"


def _chain_destination(chain: dict) -> str:
    for f in chain.get("filters", []):
        cfg = f.get("typedConfig", {})
        if "rds" in cfg:
            return f"Route: {cfg['rds'].get('routeConfigName', '')}"
        if "routeConfig" in cfg:
            vhs = cfg["routeConfig"].get("virtualHosts", [])
            clusters = {r.get("route", {}).get("cluster", "") for vh in vhs for r in vh.get("routes", [])}
            return "Inline Route: " + ",".join(sorted(c for c in clusters if c))
        if "cluster" in cfg:
            return f"Cluster: {cfg['cluster']}"
    return "-"


def _listener_rows(resources: list[dict]) -> list[list[str]]:
    rows = [["ADDRESSES", "PORT", "MATCH", "DESTINATION"]]
    for l in resources:
        sa = (l.get("address") or {}).get("socketAddress") or {}
        chains = list(l.get("filterChains", []))
        if l.get("defaultFilterChain"):
            chains.append({**l["defaultFilterChain"], "filterChainMatch": {}})
        for chain in chains or [{}]:
            rows.append([sa.get("address", ""), str(sa.get("portValue", "")), _chain_match(chain), _chain_destination(chain)])
    return rows


def _route_match(route: dict) -> str:
    m = route.get("match", {})
    for key, fmt in (("path", "{}"), ("prefix", "{}*"), ("safeRegex", "{}")):
        if key in m:
            v = m[key]["regex"] if key == "safeRegex" else m[key]
            return fmt.format(v)
    return "-"


def _route_rows(resources: list[dict]) -> list[list[str]]:
    rows = [["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"]]
    for rc in resources:
        for vh in rc.get("virtualHosts", []):
            domains = vh.get("domains", [])
            shown = domains[0] + (f" + {len(domains) - 1} more..." if len(domains) > 1 else "") if domains else "-"
            for r in vh.get("routes", []):
                rows.append([rc.get("name", ""), vh.get("name", ""), shown, _route_match(r), _istio_config(r.get("metadata", {}))])
    return rows


def _endpoint_rows(resources: list[dict]) -> list[list[str]]:
    rows = [["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"]]
    for cla in resources:
        for group in cla.get("endpoints", []):
            for lb in group.get("lbEndpoints", []):
                addr = (lb.get("endpoint") or {}).get("address") or {}
                sa = addr.get("socketAddress")
                where = f"{sa.get('address')}:{sa.get('portValue')}" if sa else (addr.get("pipe") or {}).get("path", "-")
                rows.append([where, lb.get("healthStatus", "HEALTHY"), "OK", cla.get("clusterName", "")])
    return rows


SECTIONS: dict[str, tuple[str, Callable[[list[dict]], list[list[str]]]]] = {
    "cluster": ("cds", _cluster_rows),
    "listener": ("lds", _listener_rows),
    "route": ("rds", _route_rows),
    "endpoint": ("eds", _endpoint_rows),
}


@click.command("proxy-config")
@click.argument("section", type=click.Choice(sorted(SECTIONS) + ["all"]))
@click.argument("proxy")
@pilot_option
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
def proxy_config(section: str, proxy: str, pilot: str | None, output: str) -> None:
    """What pilot sends one proxy: `isthmus proxy-config cluster productpage-v1.default`."""
    dump = _fetch(_pilot_address(pilot), "/debug/config_dump?proxyID=" + urllib.parse.quote(proxy))
    resources = dump.get("resources", {})
    wanted = list(SECTIONS) if section == "all" else [section]
    if output == "json":
        click.echo(json.dumps({s: resources.get(SECTIONS[s][0], []) for s in wanted} if section == "all"
                              else resources.get(SECTIONS[section][0], []), indent=2))
        return
    for i, s in enumerate(wanted):
        type_short, fn = SECTIONS[s]
        if i:
            click.echo("")
        click.echo(render_table(fn(resources.get(type_short, []))))
