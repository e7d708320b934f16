"""Gateway semantic checks (Istio's ValidateGateway) and server TLS rules Sidecar reuses.

`validate_gateway(spec, obj, f)` records findings; `check_server_tls` is Istio's
validateTLSOptions for ServerTLSSettings (an unset mode means PASSTHROUGH, as in the proto).
"""
from __future__ import annotations

from typing import Any

from isthmus.shared.config.validation import common as c
from isthmus.shared.config.validation.report import Findings, at

GATEWAY_SEMANTICS_ANNOTATION = "internal.istio.io/gateway-semantics"
VALID_CIPHER_SUITES = frozenset({
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA", "AES256-SHA", "DES-CBC3-SHA",
})


def validate_gateway(spec: Any, obj: Any, f: Findings) -> None:
    gateway_semantics = obj.annotations.get(GATEWAY_SEMANTICS_ANNOTATION) == "gateway"
    if not gateway_semantics and not c.is_dns1123_label(obj.name):
        f.error("metadata.name", f"invalid gateway name {obj.name!r}: a Gateway name must be a DNS-1123 "
                                 "label (no dots), as VirtualServices refer to it as <namespace>/<name>")
    c.check_labels(spec.selector, "spec.selector", f)
    if not spec.servers:
        f.error("spec.servers", "gateway must have at least one server")
    port_names: dict[str, int] = {}
    for i, server in enumerate(spec.servers):
        p = at("spec.servers", i)
        _check_server(server, p, f)
        if server.port is None:
            continue
        name = server.port.name or ""
        if name in port_names:
            f.error(at(at(p, "port"), "name"), f"port names in servers must be unique: duplicate name "
                                                f"{name} (also servers[{port_names[name]}])")
        port_names.setdefault(name, i)
        protocol = (server.port.protocol or "").upper()
        if protocol not in c.HTTP_PROTOCOLS and server.tls is not None and server.tls.https_redirect:
            f.warn(at(at(p, "tls"), "httpsRedirect"), "tls.httpsRedirect should only be used with http servers")


def _check_server(server: Any, path: str, f: Findings) -> None:
    if not server.hosts:
        f.error(at(path, "hosts"), "server config must contain at least one host, e.g. '*' or 'ns/*.example.com'")
    for j, host in enumerate(server.hosts):
        c.check_namespaced_host(host, at(at(path, "hosts"), j), f, gateway=True)
    port_ok = _check_server_port(server.port, server.bind or "", at(path, "port"), f)
    _check_server_bind(server, path, f)
    check_server_tls(server.tls, at(path, "tls"), f)
    if not port_ok:
        return
    protocol = server.port.protocol.upper()
    if protocol in c.TLS_PROTOCOLS and server.tls is None:
        f.error(at(path, "tls"), f"server must have TLS settings for HTTPS/TLS protocols (port protocol {protocol})")
    elif protocol not in c.TLS_PROTOCOLS and server.tls is not None:
        if protocol not in c.HTTP_PROTOCOLS:
            f.error(at(path, "tls"), "server cannot have TLS settings for non HTTPS/TLS ports")
        elif not _is_passthrough(server.tls) or server.tls.ca_certificates or server.tls.private_key \
                or server.tls.server_certificate:
            f.error(at(path, "tls"), "server cannot have TLS settings for plain text HTTP ports "
                                     "(only tls.httpsRedirect is allowed)")


def _is_passthrough(tls: Any) -> bool:
    return (tls.mode or "PASSTHROUGH") in ("PASSTHROUGH", "AUTO_PASSTHROUGH")


def _check_server_port(port: Any, bind: str, path: str, f: Findings) -> bool:
    """Port is required, with a known protocol, a name, and a number unless bound to a unix socket."""
    if port is None:
        f.error(path, "port is required")
        return False
    ok = True
    if not port.protocol or port.protocol.upper() not in c.PROTOCOLS:
        f.error(at(path, "protocol"), f"invalid protocol {port.protocol!r}, supported protocols are HTTP, "
                                      "HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, MONGO, REDIS, MYSQL")
        ok = False
    if (port.number or 0) > 0 or not bind.startswith(c.UNIX_PREFIX):
        ok = c.check_port(port.number or 0, at(path, "number"), f) and ok
    if port.target_port:
        f.error(at(path, "targetPort"), "targetPort has no impact on Gateways; remove it")
        ok = False
    if not port.name:
        f.error(at(path, "name"), "port name must be set")
        ok = False
    return ok


def _check_server_bind(server: Any, path: str, f: Findings) -> None:
    bind = server.bind or ""
    if bind.startswith(c.UNIX_PREFIX):
        c.check_unix_address(bind.removeprefix(c.UNIX_PREFIX), at(path, "bind"), f)
        if server.port is not None and server.port.number:
            f.error(at(at(path, "port"), "number"), "port number must be 0 for unix domain socket")
    elif bind:
        c.check_ip(bind, at(path, "bind"), f)


def check_server_tls(tls: Any, path: str, f: Findings) -> None:
    """Istio's validateTLSOptions: certificate sources per mode, ciphers, CRL."""
    if tls is None:
        return
    mode = tls.mode or "PASSTHROUGH"
    _check_ciphers(tls, path, f)
    if mode == "ISTIO_MUTUAL":
        for field, value in (("serverCertificate", tls.server_certificate), ("privateKey", tls.private_key),
                             ("caCertificates", tls.ca_certificates), ("tlsCertificates", tls.tls_certificates),
                             ("credentialName", tls.credential_name), ("credentialNames", tls.credential_names)):
            if value:
                f.error(at(path, field), f"ISTIO_MUTUAL TLS cannot have associated {field}")
        return
    if mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH") and any(
            (tls.ca_crl, tls.server_certificate, tls.private_key, tls.ca_certificates, tls.tls_certificates,
             tls.credential_name, tls.credential_names)):
        f.warn(path, f"{mode} mode does not use certificates, they will be ignored")
    sources = sum(bool(s) for s in ((tls.server_certificate and tls.private_key), tls.credential_name,
                                    tls.credential_names, tls.tls_certificates))
    if sources > 1:
        f.error(path, "only one of credentialName, credentialNames, serverCertificate/privateKey, "
                      "tlsCertificates should be specified")
    terminating = mode in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL")
    if terminating and not (tls.credential_name or tls.credential_names):
        _check_local_certs(tls, mode, path, f)
    if tls.ca_crl:
        if tls.credential_name:
            f.error(at(path, "caCrl"), "CRL is not supported with credentialName. CRL has to be specified "
                                       "in the credential")
        if mode == "SIMPLE":
            f.error(at(path, "caCrl"), "CRL is not supported with SIMPLE TLS")


def _check_local_certs(tls: Any, mode: str, path: str, f: Findings) -> None:
    prefix = "SIMPLE TLS" if mode == "SIMPLE" else "MUTUAL TLS"
    if mode != "SIMPLE" and not tls.ca_certificates:
        f.error(at(path, "caCertificates"), f"{prefix} requires a client CA bundle (or set credentialName)")
    if len(tls.tls_certificates) > 2:
        f.warn(at(path, "tlsCertificates"), f"{prefix} can support up to 2 server certificates")
    certs = [(at(at(path, "tlsCertificates"), i), cert) for i, cert in enumerate(tls.tls_certificates)] \
        or [(path, tls)]
    for p, cert in certs:
        if not cert.server_certificate:
            f.error(at(p, "serverCertificate"), f"{prefix} requires a server certificate (or set credentialName)")
        if not cert.private_key:
            f.error(at(p, "privateKey"), f"{prefix} requires a private key (or set credentialName)")


def _check_ciphers(tls: Any, path: str, f: Findings) -> None:
    if tls.min_protocol_version in ("TLSV1_0", "TLSV1_1") and not tls.cipher_suites:
        f.warn(at(path, "minProtocolVersion"), "TLS version below TLSV1_2 require setting compatible ciphers "
                                               "as by default they no longer include compatible ciphers")
    seen: set[str] = set()
    invalid, duplicate = [], []
    for cipher in tls.cipher_suites:
        if cipher not in VALID_CIPHER_SUITES:
            invalid.append(cipher)
        elif cipher in seen:
            duplicate.append(cipher)
        seen.add(cipher)
    if invalid:
        f.warn(at(path, "cipherSuites"), f"ignoring invalid cipher suites: {sorted(set(invalid))}")
    if duplicate:
        f.warn(at(path, "cipherSuites"), f"ignoring duplicate cipher suites: {sorted(set(duplicate))}")


__all__ = ["validate_gateway", "check_server_tls"]
