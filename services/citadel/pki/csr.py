"""The CSR rules (pure): a workload may ask for exactly its own SPIFFE identity.

`check_csr(pem, caller)` returns the parsed request or raises `Rejected` naming the
rule that failed: parseable PEM, valid self-signature, strong key (EC >= P-256,
RSA >= 2048), no CA:true, exactly one URI SAN equal to the caller's SPIFFE id and no
other SAN — except the DNS names `policy.allowed_dns_names(caller)` grants (istiod's).
"""
from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID

from isthmus.citadel.errors import Rejected, denied
from isthmus.citadel.pki.keys import PrivateKey, signature_hash
from isthmus.citadel.pki.policy import allowed_dns_names
from isthmus.citadel.spiffe import SpiffeId

ALLOWED_CURVES = {"secp256r1": 256, "secp384r1": 384, "secp521r1": 521}
MIN_RSA_BITS = 2048


def parse_csr(csr_pem: str | bytes) -> x509.CertificateSigningRequest:
    data = csr_pem.encode() if isinstance(csr_pem, str) else csr_pem
    if not data.strip():
        raise Rejected("csr_missing", "csr: empty; send a PEM-encoded PKCS#10 certificate request")
    try:
        return x509.load_pem_x509_csr(data)
    except ValueError as exc:
        raise Rejected("csr_malformed", f"csr: not a PEM-encoded PKCS#10 certificate request ({exc})") from exc


def check_key(csr: x509.CertificateSigningRequest) -> None:
    try:
        key = csr.public_key()
    except (ValueError, TypeError) as exc:
        raise Rejected("csr_weak_key", f"csr: unreadable public key ({exc})") from exc
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ALLOWED_CURVES:
            raise Rejected("csr_weak_key", f"csr: EC curve {key.curve.name} not allowed; use P-256 or stronger "
                           f"({', '.join(ALLOWED_CURVES)})")
        return
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise Rejected("csr_weak_key", f"csr: RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} required")
        return
    raise Rejected("csr_weak_key", f"csr: {type(key).__name__} keys are not supported; use ECDSA P-256 or RSA 2048")


def check_csr(csr_pem: str | bytes, caller: SpiffeId) -> x509.CertificateSigningRequest:
    """Parse and validate a CSR for `caller`; raise `Rejected` with the failing rule."""
    csr = parse_csr(csr_pem)
    check_key(csr)
    if not csr.is_signature_valid:
        raise Rejected("csr_bad_signature", "csr: signature does not verify with the CSR's own public key")
    exts = csr.extensions
    try:
        bc = exts.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
        if bc.ca:
            raise denied("csr_ca_requested", "csr: requests CA:true; workloads may only get leaf certificates")
    except x509.ExtensionNotFound:
        pass
    try:
        san = exts.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        raise Rejected("csr_no_san", f"csr: no subjectAltName; it must hold exactly the URI {caller.uri}") from None
    names = list(san)
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    allowed = allowed_dns_names(caller)
    extra = [n for n in names if not isinstance(n, x509.UniformResourceIdentifier)
             and not (isinstance(n, x509.DNSName) and n.value in allowed)]
    if len(uris) != 1 or extra:
        got = ", ".join(_describe(n) for n in names)
        if allowed:
            raise denied("csr_extra_san", f"csr: subjectAltName may hold only the URI {caller.uri} and the DNS "
                         f"names {', '.join(sorted(allowed))} (got {got})")
        raise denied("csr_extra_san", f"csr: subjectAltName must hold only the URI {caller.uri} (got {got})")
    if uris[0] != caller.uri:
        raise denied("csr_identity_mismatch",
                     f"csr: subjectAltName {uris[0]} is not the caller's identity {caller.uri}")
    return csr


def _describe(name: x509.GeneralName) -> str:
    kind = {x509.DNSName: "DNS", x509.UniformResourceIdentifier: "URI", x509.IPAddress: "IP",
            x509.RFC822Name: "email"}.get(type(name), type(name).__name__)
    return f"{kind}:{name.value}"


def make_csr(key: PrivateKey, identity: SpiffeId, dns_names: tuple[str, ...] = ()) -> str:
    """The CSR a workload sends: empty subject, its SPIFFE URI as the SAN (plus `dns_names`,
    which only istiod may ask for)."""
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.uri)]
    sans += [x509.DNSName(d) for d in dns_names]
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([]))
           .add_extension(x509.SubjectAlternativeName(sans), critical=True)
           .sign(key, signature_hash(key)))
    return csr.public_bytes(serialization.Encoding.PEM).decode()
