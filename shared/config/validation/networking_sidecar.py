"""Sidecar semantic checks (Istio's ValidateSidecar).

`validate_sidecar(spec, obj, f)`: ingress listeners (port, bind, defaultEndpoint, TLS,
pools), egress listeners (`ns/host` hosts, one catch-all last, unique ports/sockets) and
the outbound traffic policy.
"""
from __future__ import annotations

from typing import Any

from isthmus.shared.config.validation import common as c
from isthmus.shared.config.validation.networking_gateway import check_server_tls
from isthmus.shared.config.validation.networking_http import check_destination
from isthmus.shared.config.validation.networking_policy import check_connection_pool
from isthmus.shared.config.validation.report import Findings, at

DEFAULT_ENDPOINT_HOSTS = ("", "127.0.0.1", "0.0.0.0", "::1", "::")


def validate_sidecar(spec: Any, obj: Any, f: Findings) -> None:
    c.check_workload_selector(spec.workload_selector, "spec.workloadSelector", f, subject="workloads")
    if not (spec.egress or spec.ingress or spec.outbound_traffic_policy or spec.inbound_connection_pool):
        f.error("spec", "sidecar: empty configuration provided; set egress, ingress or outboundTrafficPolicy")
        return
    ports: set[int] = set()
    for i, ingress in enumerate(spec.ingress):
        _check_ingress(ingress, at("spec.ingress", i), ports, f)
    check_connection_pool(spec.inbound_connection_pool, "spec.inboundConnectionPool", f)
    _check_egress_listeners(spec.egress, obj.namespace, f)
    _check_outbound_policy(spec.outbound_traffic_policy, "spec.outboundTrafficPolicy", f)


def _check_port(port: Any, path: str, f: Findings, *, allow_zero: bool = False) -> None:
    if port.name:
        c.check_dns1123_label(port.name, at(path, "name"), f, "port name")
    c.check_protocol(port.protocol, at(path, "protocol"), f)
    if not (allow_zero and not port.number):
        c.check_port(port.number or 0, at(path, "number"), f)
    if port.target_port:
        f.error(at(path, "targetPort"), "targetPort has no impact on Sidecars; remove it")


def _check_ingress(ingress: Any, path: str, ports: set[int], f: Findings) -> None:
    if ingress.port is None:
        f.error(at(path, "port"), "sidecar: port is required for ingress listeners")
        return
    _check_port(ingress.port, at(path, "port"), f)
    if ingress.bind:
        c.check_ip(ingress.bind, at(path, "bind"), f)
    number = ingress.port.number or 0
    if number in ports:
        f.error(at(at(path, "port"), "number"), f"sidecar: ports on IP bound listeners must be unique (port {number})")
    ports.add(number)
    if ingress.default_endpoint:
        _check_default_endpoint(ingress.default_endpoint, at(path, "defaultEndpoint"), f)
    if ingress.tls is not None:
        _check_ingress_tls(ingress, at(path, "tls"), f)
    check_connection_pool(ingress.connection_pool, at(path, "connectionPool"), f)
    protocol = (ingress.port.protocol or "").upper()
    if ingress.connection_pool is not None and ingress.connection_pool.http is not None \
            and protocol not in c.HTTP_PROTOCOLS:
        f.warn(at(at(path, "connectionPool"), "http"),
               f"sidecar: HTTP connection pool settings are configured for port {number} but its protocol is "
               f"not HTTP ({ingress.port.protocol}); only TCP settings will apply")


def _check_default_endpoint(endpoint: str, path: str, f: Findings) -> None:
    """127.0.0.1:PORT, 0.0.0.0:PORT, [::1]:PORT, [::]:PORT, :PORT or unix:///path."""
    if endpoint.startswith(c.UNIX_PREFIX):
        c.check_unix_address(endpoint.removeprefix(c.UNIX_PREFIX), path, f)
        return
    host, sep, port = endpoint.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        sep = ""
    if not sep:
        f.error(path, f"sidecar: defaultEndpoint {endpoint!r} must be of form 127.0.0.1:<port>, 0.0.0.0:<port>, "
                      "[::1]:<port>, [::]:<port> or unix:///path")
        return
    if host not in DEFAULT_ENDPOINT_HOSTS:
        f.error(path, "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, "
                      f"[::]:<port>, unix://filepath or unset (got {endpoint!r})")
    if not port.isdigit():
        f.error(path, f"sidecar: defaultEndpoint port ({port}) is not a number")
    else:
        c.check_port(int(port), path, f)


def _check_ingress_tls(ingress: Any, path: str, f: Findings) -> None:
    tls = ingress.tls
    unsupported = (("subjectAltNames", tls.subject_alt_names), ("httpsRedirect", tls.https_redirect),
                   ("credentialName", tls.credential_name), ("credentialNames", tls.credential_names),
                   ("tlsCertificates", tls.tls_certificates))
    for field, value in unsupported:
        if value:
            f.error(at(path, field), f"sidecar: {field} is not supported in sidecar ingress tls")
    if tls.mode in ("ISTIO_MUTUAL", "AUTO_PASSTHROUGH"):
        f.error(at(path, "mode"), f"configuration is invalid: cannot set mode to {tls.mode} in sidecar ingress tls")
    if (ingress.port.protocol or "").upper() not in c.TLS_PROTOCOLS:
        f.error(path, "server cannot have TLS settings for non HTTPS/TLS ports")
    check_server_tls(tls, path, f)


def _check_egress_listeners(egress: Any, namespace: str, f: Findings) -> None:
    ports: set[int] = set()
    sockets: set[str] = set()
    catch_all = False
    for i, listener in enumerate(egress):
        p = at("spec.egress", i)
        if listener.port is None:
            if catch_all:
                f.error(p, "sidecar: egress can have only one listener with empty port")
                continue
            if i == len(egress) - 1:
                catch_all = True
            else:
                f.error(p, "sidecar: the egress listener with empty port should be the last listener in the list")
        else:
            _check_egress_port(listener, p, ports, sockets, f)
        _check_egress_hosts(listener.hosts, namespace, at(p, "hosts"), f)


def _check_egress_port(listener: Any, path: str, ports: set[int], sockets: set[str], f: Findings) -> None:
    port, bind = listener.port, listener.bind or ""
    _check_port(port, at(path, "port"), f, allow_zero=True)
    if not port.number:  # a unix domain socket listener
        if not bind.startswith(c.UNIX_PREFIX):
            f.error(at(path, "bind"), "sidecar: ports with 0 value must have a unix domain socket bind address")
        else:
            c.check_unix_address(bind.removeprefix(c.UNIX_PREFIX), at(path, "bind"), f)
        if listener.capture_mode not in (None, "DEFAULT", "NONE"):
            f.error(at(path, "captureMode"),
                    "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners")
        if bind in sockets:
            f.error(at(path, "bind"), "sidecar: unix domain socket values for listeners must be unique")
        sockets.add(bind)
        return
    if bind:
        c.check_ip(bind, at(path, "bind"), f)
    if port.number in ports:
        f.error(at(at(path, "port"), "number"),
                f"sidecar: ports on IP bound listeners must be unique (port {port.number})")
    ports.add(port.number)


def _check_egress_hosts(hosts: Any, namespace: str, path: str, f: Findings) -> None:
    if not hosts:
        f.error(path, "sidecar: egress listener must contain at least one host, e.g. './*' or 'istio-system/*'")
        return
    by_ns: dict[str, set[str]] = {}
    for j, host in enumerate(hosts):
        p = at(path, j)
        ns, sep, name = host.partition("/")
        if sep:
            ns = namespace if ns == "." else ns
            names = by_ns.setdefault(ns, set())
            if (name != "*" and (name in names or "*" in names)) or (name == "*" and names):
                f.warn(p, f"duplicated egress host: {host}")
            names.add(name)
        c.check_namespaced_host(host, p, f)
    if "*" in by_ns.get("*", set()) and len(by_ns) != 1:
        f.warn(path, "`*/*` host selects all resources, no other hosts can be added")


def _check_outbound_policy(policy: Any, path: str, f: Findings) -> None:
    if policy is None or policy.egress_proxy is None:
        return
    proxy, pp = policy.egress_proxy, at(path, "egressProxy")
    if (policy.mode or "REGISTRY_ONLY") != "ALLOW_ANY":
        f.error(pp, "sidecar: egressProxy must be set only with ALLOW_ANY outboundTrafficPolicy mode")
        return
    if not c.check_fqdn(proxy.host, at(pp, "host"), f):
        return
    if proxy.port is None:
        f.error(at(pp, "port"), "sidecar: egressProxy port must be set")
        return
    check_destination(proxy, pp, f)


__all__ = ["validate_sidecar"]
