"""Building certificates (pure over keys and times): roots, intermediates, workload leaves.

A workload leaf carries only its SPIFFE URI (critical SAN, empty subject, as Istio's),
a random 128-bit serial, digitalSignature+keyEncipherment, serverAuth+clientAuth.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import math
import secrets

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from isthmus.citadel.pki.keys import PrivateKey, signature_hash

def random_serial() -> int:
    """A random, positive 128-bit serial number (RFC 5280 allows up to 20 octets)."""
    while True:
        serial = secrets.randbits(128)
        if serial:
            return serial


def utc(ts: float) -> dt.datetime:
    """X.509 times have whole seconds: round down (use `math.ceil` first to round up)."""
    return dt.datetime.fromtimestamp(math.floor(ts), tz=dt.timezone.utc)


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def load_certs(data: bytes, source: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValueError(f"{source}: no PEM certificates ({exc})") from exc
    return certs


def _ca_extensions(builder: x509.CertificateBuilder, key: PrivateKey, issuer_key: PrivateKey,
                   path_length: int | None) -> x509.CertificateBuilder:
    return (builder
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                           critical=False))


def ca_name(trust_domain: str, common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def create_root(key: PrivateKey, trust_domain: str, now: float, *, days: int = 3650,
                common_name: str = "Isthmus root CA") -> x509.Certificate:
    name = ca_name(trust_domain, common_name)
    builder = (x509.CertificateBuilder()
               .subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(random_serial())
               .not_valid_before(utc(now - 3600)).not_valid_after(utc(now + days * 86400)))
    return _ca_extensions(builder, key, key, None).sign(key, signature_hash(key))


def create_intermediate(key: PrivateKey, issuer_key: PrivateKey, issuer_cert: x509.Certificate,
                        trust_domain: str, now: float, *, days: int = 1825,
                        common_name: str = "Isthmus intermediate CA") -> x509.Certificate:
    builder = (x509.CertificateBuilder()
               .subject_name(ca_name(trust_domain, common_name)).issuer_name(issuer_cert.subject)
               .public_key(key.public_key()).serial_number(random_serial())
               .not_valid_before(utc(now - 3600)).not_valid_after(utc(now + days * 86400)))
    return _ca_extensions(builder, key, issuer_key, 0).sign(issuer_key, signature_hash(issuer_key))


def issue_leaf(public_key, issuer_key: PrivateKey, issuer_cert: x509.Certificate, *,
               uris: tuple[str, ...] = (), dns_names: tuple[str, ...] = (), ips: tuple[str, ...] = (),
               not_before: float, not_after: float) -> x509.Certificate:
    """A leaf for `public_key`. NotAfter never exceeds the issuer's own NotAfter."""
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
    sans += [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    end = min(utc(math.ceil(not_after)), issuer_cert.not_valid_after_utc)  # at least the TTL
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([])).issuer_name(issuer_cert.subject)
               .public_key(public_key).serial_number(random_serial())
               .not_valid_before(utc(not_before)).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                            content_commitment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=False, crl_sign=False,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                     ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                              critical=False)
               # Empty subject: the SAN is the identity and must be critical (RFC 5280 4.2.1.6).
               .add_extension(x509.SubjectAlternativeName(sans), critical=True))
    return builder.sign(issuer_key, signature_hash(issuer_key))


def is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def spiffe_uris(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.UniformResourceIdentifier)
