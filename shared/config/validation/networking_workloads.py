"""ServiceEntry, WorkloadEntry and WorkloadGroup semantic checks (Istio's webhook rules).

`validate_service_entry`, `validate_workload_entry`, `validate_workload_group` take
`(spec, obj, f)`; `check_workload_entry` is shared by ServiceEntry endpoints.
"""
from __future__ import annotations

from typing import Any

from isthmus.shared.config.validation import common as c
from isthmus.shared.config.validation.report import Findings, at

L4_TCP_PROTOCOLS = frozenset({"TCP", "HTTPS", "TLS", "MONGO", "REDIS", "MYSQL"})


# ---------------------------------------------------------------- WorkloadEntry

def check_workload_entry(we: Any, path: str, f: Findings, *, service_ports: set[str] | None = None,
                         allow_fqdn: bool = True) -> None:
    """Istio's validateWorkloadEntry: address (IP, FQDN or unix socket), named ports, labels."""
    addr = we.address or ""
    if not addr:
        if not we.network:
            f.error(at(path, "address"), "address is required (an IP, a hostname or unix://path)")
            return
        f.warn(at(path, "address"), f"address is unset with network {we.network!r}")
    unix = addr.startswith(c.UNIX_PREFIX)
    if unix:
        c.check_unix_address(addr.removeprefix(c.UNIX_PREFIX), at(path, "address"), f)
        if we.ports:
            f.error(at(path, "ports"), f"unix endpoint {addr} must not include ports")
    elif addr and not c.is_ip(addr):
        if not allow_fqdn:
            f.error(at(path, "address"), f"endpoint address {addr!r} is not a valid IP address "
                                         "(resolution STATIC needs IP addresses or unix:// sockets)")
        elif c.fqdn_error(addr):
            f.error(at(path, "address"), f"endpoint address {addr!r} is not a valid FQDN or an IP address")
    for name, port in we.ports.items():
        p = c.key(at(path, "ports"), name)
        if service_ports is not None and name not in service_ports:
            known = ", ".join(sorted(service_ports)) or "none"
            f.error(p, f"endpoint port {name!r} is not defined by the service entry (ports: {known})")
        c.check_dns1123_label(name, p, f, "port name")
        c.check_port(port, p, f)
    c.check_labels(we.labels, at(path, "labels"), f)
    if we.service_account and not (len(we.service_account) <= 253
                                   and c.DNS1123_SUBDOMAIN.match(we.service_account)):
        f.error(at(path, "serviceAccount"), f"invalid service account name {we.service_account!r}: "
                                            "a DNS-1123 subdomain (lowercase alphanumeric, '-' or '.')")
    if unix and service_ports is not None and len(service_ports) != 1:
        f.error(path, "exactly 1 service port required for unix endpoints")


def validate_workload_entry(spec: Any, obj: Any, f: Findings) -> None:
    check_workload_entry(spec, "spec", f)


# ---------------------------------------------------------------- WorkloadGroup

def validate_workload_group(spec: Any, obj: Any, f: Findings) -> None:
    if spec.template is None:
        f.error("spec.template", "template is required")
    else:
        _check_template(spec.template, "spec.template", f)
    if spec.metadata is not None:
        c.check_labels(spec.metadata.labels, "spec.metadata.labels", f)
        for name in spec.metadata.annotations:
            err = c.label_key_error(name)
            if err:
                f.error(c.key("spec.metadata.annotations", name), err.replace("label key", "annotation key"))
    _check_probe(spec.probe, "spec.probe", f)


def _check_template(template: Any, path: str, f: Findings) -> None:
    """A WorkloadEntry template; the address comes from each workload as it registers."""
    if template.address:
        f.warn(at(path, "address"), "address in a WorkloadGroup template is replaced by each registering "
                                    "workload's own address; remove it")
    for name, port in template.ports.items():
        p = c.key(at(path, "ports"), name)
        c.check_dns1123_label(name, p, f, "port name")
        c.check_port(port, p, f)
    c.check_labels(template.labels, at(path, "labels"), f)
    if template.service_account and not c.DNS1123_SUBDOMAIN.match(template.service_account):
        f.error(at(path, "serviceAccount"), f"invalid service account name {template.service_account!r}: "
                                            "a DNS-1123 subdomain (lowercase alphanumeric, '-' or '.')")


def _check_probe(probe: Any, path: str, f: Findings) -> None:
    """Istio's validateReadinessProbe: one method, non-negative periods and thresholds."""
    if probe is None:
        return
    for field in ("periodSeconds", "initialDelaySeconds", "timeoutSeconds", "successThreshold",
                  "failureThreshold"):
        attr = "".join("_" + ch.lower() if ch.isupper() else ch for ch in field)
        c.check_non_negative(getattr(probe, attr), at(path, field), f)
    methods = [m for m in ("http_get", "tcp_socket", "exec", "grpc") if getattr(probe, m) is not None]
    if not methods:
        f.error(path, "probe needs one health check method: httpGet, tcpSocket, exec or grpc")
        return
    if probe.http_get is not None:
        hp = at(path, "httpGet")
        c.check_port(probe.http_get.port or 0, at(hp, "port"), f)
        if probe.http_get.scheme not in (None, "", "HTTP", "HTTPS"):
            f.error(at(hp, "scheme"), f'httpGet.scheme must be one of "HTTPS", "HTTP" (got {probe.http_get.scheme!r})')
        for i, header in enumerate(probe.http_get.http_headers):
            c.check_probe_header_name(header.name, at(at(at(hp, "httpHeaders"), i), "name"), f)
    if probe.tcp_socket is not None:
        c.check_port(probe.tcp_socket.port or 0, at(at(path, "tcpSocket"), "port"), f)
    if probe.grpc is not None:
        c.check_port(probe.grpc.port or 0, at(at(path, "grpc"), "port"), f)
    if probe.exec is not None and not probe.exec.command:
        f.error(at(at(path, "exec"), "command"), "exec.command is required")


# ---------------------------------------------------------------- ServiceEntry

def validate_service_entry(spec: Any, obj: Any, f: Findings) -> None:
    resolution = spec.resolution or "NONE"
    c.check_workload_selector(spec.workload_selector, "spec.workloadSelector", f, subject="services")
    if spec.workload_selector is not None and spec.endpoints:
        f.error("spec", "only one of workloadSelector or endpoints is allowed in a ServiceEntry")
    _check_se_hosts(spec.hosts, f)
    _check_se_addresses(spec.addresses, resolution, f)
    port_names = _check_se_ports(spec.ports, f)
    if resolution == "NONE":
        if spec.endpoints:
            f.error("spec.endpoints", "no endpoints should be provided for resolution type NONE")
        if spec.workload_selector is not None:
            f.warn("spec.workloadSelector", "workloadSelector should not be set when resolution mode is NONE")
    elif resolution == "STATIC":
        for i, ep in enumerate(spec.endpoints):
            check_workload_entry(ep, at("spec.endpoints", i), f, service_ports=port_names, allow_fqdn=False)
    elif resolution in ("DNS", "DNS_ROUND_ROBIN"):
        _check_dns_resolution(spec, resolution, port_names, f)
    if resolution != "NONE" and len(spec.hosts) > 1:
        for i, port in enumerate(spec.ports):
            protocol = (port.protocol or "").upper()
            if protocol not in c.HTTP_PROTOCOLS and protocol not in c.TLS_PROTOCOLS:
                f.error(at(at("spec.ports", i), "protocol"), "multiple hosts provided with non-HTTP, non-TLS "
                        "ports: give each TCP service its own ServiceEntry, or use resolution NONE")
                break
    c.check_export_to(spec.export_to, obj.namespace, "spec.exportTo", f, service_entry=True)


def _check_se_hosts(hosts: Any, f: Findings) -> None:
    if not hosts:
        f.error("spec.hosts", "service entry must have at least one host")
    for i, host in enumerate(hosts):
        p = at("spec.hosts", i)
        if host == "*":
            f.error(p, "invalid host *: a ServiceEntry must name its hosts "
                       "(wildcards such as *.example.com are allowed)")
        elif c.check_wildcard_host(host, p, f) and (err := c.partial_wildcard_error(host)):
            f.warn(p, err)


def _check_se_addresses(addresses: Any, resolution: str, f: Findings) -> None:
    cidr = False
    for i, address in enumerate(addresses):
        cidr = cidr or "/" in address
        c.check_ip_or_cidr(address, at("spec.addresses", i), f)
    if cidr and resolution not in ("NONE", "STATIC"):
        f.error("spec.addresses",
                f"CIDR addresses are allowed only for NONE/STATIC resolution types (got {resolution})")


def _check_se_ports(ports: Any, f: Findings) -> set[str]:
    names: set[str] = set()
    numbers: set[int] = set()
    for i, port in enumerate(ports):
        p = at("spec.ports", i)
        if port.name in names:
            f.error(at(p, "name"), f"service entry port name {port.name!r} already defined")
        if port.number in numbers:
            f.error(at(p, "number"), f"service entry port {port.number} already defined")
        names.add(port.name or "")
        numbers.add(port.number or 0)
        c.check_dns1123_label(port.name, at(p, "name"), f, "port name")
        c.check_protocol(port.protocol, at(p, "protocol"), f)
        c.check_port(port.number or 0, at(p, "number"), f)
        if port.target_port:
            c.check_port(port.target_port, at(p, "targetPort"), f)
    return names


def _check_dns_resolution(spec: Any, resolution: str, port_names: set[str], f: Findings) -> None:
    if not spec.endpoints:
        for i, host in enumerate(spec.hosts):
            if host != "*" and c.fqdn_error(host):
                f.error(at("spec.hosts", i), f"hosts must be FQDN if no endpoints are provided for resolution "
                                             f"mode {resolution} (got {host!r}); add endpoints or use resolution NONE")
    if resolution == "DNS_ROUND_ROBIN" and len(spec.endpoints) > 1:
        f.error("spec.endpoints", f"there must only be 0 or 1 endpoint for resolution mode {resolution}")
    for i, ep in enumerate(spec.endpoints):
        p = at("spec.endpoints", i)
        if ep.address and not c.is_ip(ep.address) and c.fqdn_error(ep.address):
            f.error(at(p, "address"), f"endpoint address {ep.address!r} is not a valid FQDN or an IP address")
        c.check_labels(ep.labels, at(p, "labels"), f)
        for name, port in ep.ports.items():
            pp = c.key(at(p, "ports"), name)
            if name not in port_names:
                f.error(pp, f"endpoint port {name!r} is not defined by the service entry")
            c.check_dns1123_label(name, pp, f, "port name")
            c.check_port(port, pp, f)
    if spec.addresses and len(spec.hosts) > 1 and any(
            (p.protocol or "").upper() in L4_TCP_PROTOCOLS for p in spec.ports):
        f.warn("spec.hosts", "service entry can not have more than one host specified simultaneously "
                             "with address and tcp port")


__all__ = ["validate_service_entry", "validate_workload_entry", "validate_workload_group", "check_workload_entry"]
