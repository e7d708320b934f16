"""TLS contexts for the data plane, straight from a `WorkloadCert` in memory.

Python's `ssl` loads a certificate chain only from a path, so the key goes through an
anonymous in-memory file (memfd) that never touches a filesystem. `peer_identity`
reads the SPIFFE id a peer presented (TLS verifies the chain; SPIFFE authorization
is by URI SAN, not hostname).
"""
from __future__ import annotations

import os
import ssl

from cryptography import x509

from isthmus.citadel.certmanager import WorkloadCert
from isthmus.citadel.pki.issue import spiffe_uris
from isthmus.citadel.spiffe import SpiffeId, parse_spiffe_id


def _load_chain(ctx: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
    fd = os.memfd_create("isthmus-workload-cert", os.MFD_CLOEXEC)
    try:
        os.write(fd, chain_pem + b"\n" + key_pem)
        ctx.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def ssl_context(cert: WorkloadCert, *, server_side: bool) -> ssl.SSLContext:
    """Mutual TLS with the mesh identity: present `cert`, require a peer from the bundle."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=cert.roots_pem.decode())
    _load_chain(ctx, cert.cert_chain_pem, cert.key_pem)
    return ctx


def peer_identity(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> SpiffeId | None:
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    uris = spiffe_uris(x509.load_der_x509_certificate(der))
    return parse_spiffe_id(uris[0]) if len(uris) == 1 else None
