"""VirtualService semantic checks, as Istio's webhook (ValidateVirtualService) makes them.

`validate_virtual_service(spec, obj, f)` records errors and warnings in `f` with JSON
paths (`spec.http[0].route[1].weight`). HTTP route internals live in networking_http.
"""
from __future__ import annotations

from typing import Any

from isthmus.shared.config.validation import common as c
from isthmus.shared.config.validation.networking_http import (
    check_gateway_names,
    check_http_route,
    check_route_destinations,
)
from isthmus.shared.config.validation.report import Findings, at

MESH = "mesh"
OUTBOUND_SNI_PREFIX = "outbound_"


def validate_virtual_service(spec: Any, obj: Any, f: Findings) -> None:
    delegate = not spec.hosts
    if delegate:
        _check_delegate_shape(spec, f)
    if spec.gateways:
        check_gateway_names(spec.gateways, "spec.gateways", f)
    applies_to_gateway = bool(spec.gateways) and MESH not in spec.gateways
    if not applies_to_gateway:
        _check_no_jwt_claim_routes(spec, f)
    _check_hosts(spec, applies_to_gateway, f)
    if not (spec.http or spec.tcp or spec.tls):
        f.error("spec", "http, tcp or tls must be provided in virtual service")
    for i, route in enumerate(spec.http):
        check_http_route(route, at("spec.http", i), f, delegate=delegate)
    for i, route in enumerate(spec.tls):
        _check_tls_route(route, spec, applies_to_gateway, at("spec.tls", i), f)
    for i, route in enumerate(spec.tcp):
        _check_tcp_route(route, at("spec.tcp", i), f)
    c.check_export_to(spec.export_to, obj.namespace, "spec.exportTo", f)
    warn_unreachable_rules(spec.http, "spec.http", f, named=True)
    warn_unreachable_rules(spec.tls, "spec.tls", f)
    warn_unreachable_rules(spec.tcp, "spec.tcp", f)


def _check_delegate_shape(spec: Any, f: Findings) -> None:
    """A VirtualService without hosts can only be a delegate: HTTP routes only, no gateways."""
    if spec.gateways:
        f.error("spec.gateways", "delegate virtual service (no hosts) must have no gateways specified")
    if spec.tls:
        f.error("spec.tls", "delegate virtual service (no hosts) must have no tls route specified")
    if spec.tcp:
        f.error("spec.tcp", "delegate virtual service (no hosts) must have no tcp route specified")


def _check_no_jwt_claim_routes(spec: Any, f: Findings) -> None:
    for i, route in enumerate(spec.http):
        for j, match in enumerate(route.match):
            for field, headers in (("headers", match.headers), ("withoutHeaders", match.without_headers)):
                for name in headers:
                    if c.is_jwt_claim_header(name):
                        p = c.key(at(at(at(at("spec.http", i), "match"), j), field), name)
                        f.error(p, "JWT claim based routing is only supported for gateways; "
                                   "bind the virtual service to a gateway (not `mesh`)")


def _host_error(host: str, applies_to_gateway: bool, sni: bool) -> str | None:
    if applies_to_gateway and sni and host.startswith(OUTBOUND_SNI_PREFIX):
        return _outbound_sni_error(host)
    return c.wildcard_domain_error(host)


def _outbound_sni_error(host: str) -> str | None:
    """Auto-passthrough SNI names: `outbound_.<PORT>_._.<HOSTNAME>`."""
    parts = host.split("_")
    if len(parts) < 4 or not parts[1].strip(".")[:1].isdigit() or not parts[3].strip(".")[:1].isalpha():
        return f"domain name {host!r} invalid; should follow outbound_.<PORT>_._.<HOSTNAME> format"
    return None


def _check_hosts(spec: Any, applies_to_gateway: bool, f: Findings) -> None:
    sni = any(m.sni_hosts for r in spec.tls for m in r.match)
    all_valid = True
    for i, host in enumerate(spec.hosts):
        p = at("spec.hosts", i)
        err = _host_error(host, applies_to_gateway, sni)
        if err and not c.is_ip(host):
            f.error(p, err)
            all_valid = False
        elif not err and not applies_to_gateway and host == "*":
            f.error(p, "wildcard host * is not allowed for virtual services bound to the mesh gateway; "
                       "list the hosts or bind the virtual service to a gateway")
            all_valid = False
    if not all_valid:
        return
    hosts = list(spec.hosts)
    for i, a in enumerate(hosts):
        for b in hosts[i + 1:]:
            if c.host_matches(a, b):
                f.error(at("spec.hosts", i), f"duplicate hosts in virtual service: {a} & {b}")


def _check_l4_match(match: Any, path: str, f: Findings) -> None:
    for i, subnet in enumerate(match.destination_subnets):
        c.check_ip_or_cidr(subnet, at(at(path, "destinationSubnets"), i), f)
    if match.port:
        c.check_port(match.port, at(path, "port"), f)
    c.check_labels(match.source_labels, at(path, "sourceLabels"), f)
    check_gateway_names(match.gateways, at(path, "gateways"), f)
    if match.source_namespace:
        c.check_dns1123_label(match.source_namespace, at(path, "sourceNamespace"), f, "sourceNamespace")


def _check_tls_route(route: Any, spec: Any, applies_to_gateway: bool, path: str, f: Findings) -> None:
    if not route.match:
        f.error(at(path, "match"), "TLS route must have at least one match condition (with sniHosts)")
    for j, match in enumerate(route.match):
        mp = at(at(path, "match"), j)
        if not match.sni_hosts:
            f.error(at(mp, "sniHosts"), "TLS match must have at least one SNI host")
        for k, sni in enumerate(match.sni_hosts):
            _check_sni_host(sni, spec, applies_to_gateway, at(at(mp, "sniHosts"), k), f)
        _check_l4_match(match, mp, f)
    if not route.route:
        f.error(at(path, "route"), "TLS route is required: add at least one destination")
    check_route_destinations(route.route, at(path, "route"), f)


def _check_sni_host(sni: str, spec: Any, applies_to_gateway: bool, path: str, f: Findings) -> None:
    err = _host_error(sni, applies_to_gateway, True)
    if err:
        if c.is_ip(sni):
            f.warn(path, f"using an IP address ({sni!r}) goes against SNI spec and most clients do not support this")
        else:
            f.error(path, err)
        return
    if not any(c.host_subset_of(sni, h) for h in spec.hosts):
        hosts = ", ".join(spec.hosts)
        f.error(path, f"SNI host {sni!r} is not a compatible subset of any of the virtual service hosts: [{hosts}]")


def _check_tcp_route(route: Any, path: str, f: Findings) -> None:
    for j, match in enumerate(route.match):
        _check_l4_match(match, at(at(path, "match"), j), f)
    if not route.route:
        f.error(at(path, "route"), "TCP route is required: add at least one destination")
    check_route_destinations(route.route, at(path, "route"), f)


# ---------------------------------------------------------------- unreachable rules (warnings)

def _route_name(route: Any, i: int, named: bool) -> str:
    name = getattr(route, "name", None) if named else None
    return f'"{name}"' if name else f"#{i}"


def _match_key(match: Any) -> str:
    data = match.to_dict()
    data.pop("name", None)
    return repr(sorted(data.items(), key=lambda kv: kv[0]))


def warn_unreachable_rules(routes: Any, path: str, f: Findings, *, named: bool = False) -> None:
    """Istio's analyzeUnreachable*Rules: rules after a catch-all, and repeated matches."""
    seen: dict[str, int] = {}
    catch_all = -1
    for i, route in enumerate(routes):
        rp, rn = at(path, i), _route_name(route, i, named)
        if not route.match:
            if catch_all >= 0:
                f.warn(rp, f"virtualService rule {rn} not used (only the last rule can have no matches)")
            catch_all = i
            continue
        if catch_all >= 0:
            f.warn(rp, f"virtualService rule {rn} not used (route without matches defined before)")
            continue
        duplicates = 0
        for j, match in enumerate(route.match):
            mk = _match_key(match)
            if mk in seen:
                dup = seen[mk]
                mname = getattr(match, "name", None) if named else None
                mn = f'"{mname}"' if mname else f"#{j}"
                f.warn(at(at(rp, "match"), j), f"virtualService rule {rn} match {mn} is not used "
                       f"(duplicate/overlapping match in rule {_route_name(routes[dup], dup, named)})")
                duplicates += 1
            else:
                seen[mk] = i
        if duplicates == len(route.match):
            f.warn(rp, f"virtualService rule {rn} not used (all matches used by prior rules)")


__all__ = ["validate_virtual_service", "warn_unreachable_rules"]
