"""The Kubernetes `Secret` (core `v1`) as Isthmus stores it: TLS credentials for gateways.

Istio reads a gateway's `credentialName` (and a DestinationRule's) from a Secret in
the gateway's namespace: `tls.crt`/`tls.key`/`ca.crt` (type `kubernetes.io/tls` or
`Opaque`), or the generic `cert`/`key`/`cacert`; a `NAME-cacert` Secret may hold the CA
alone. A Secret has no `spec`: its body (`type`, `data`, `stringData`, `immutable`) is
stored as the resource's spec, `stringData` folded into base64 `data` as the API server
does. `validate_secret` parses the PEMs (certificate and key must match);
`redacted_body` is what the CLI may print (never a private key).
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Mapping

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from isthmus.shared.config.spec import Spec, empty_map
from isthmus.shared.config.validation.report import Findings

TLS_TYPE = "kubernetes.io/tls"
OPAQUE_TYPE = "Opaque"
TYPES = (TLS_TYPE, OPAQUE_TYPE)
BODY_FIELDS = ("type", "data", "stringData", "immutable")
# (certificate, key, CA) key names Istio accepts, in the order it tries them.
KEY_SETS = (("tls.crt", "tls.key", "ca.crt"), ("cert", "key", "cacert"))
CA_KEYS = ("ca.crt", "cacert")
PRIVATE_KEY_KEYS = frozenset({"tls.key", "key"})
REDACTED = "REDACTED"

# Structural schema of the body (what the API server checks for a core/v1 Secret).
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "data": {"type": "object", "additionalProperties": {"type": "string", "format": "byte"}},
        "stringData": {"type": "object", "additionalProperties": {"type": "string"}},
        "immutable": {"type": "boolean"},
    },
}


@dataclass(frozen=True, slots=True)
class SecretSpec(Spec):
    type: str | None = None
    data: Mapping[str, str] = field(default_factory=empty_map)  # base64 values
    string_data: Mapping[str, str] = field(default_factory=empty_map)
    immutable: bool | None = None

    def value(self, key: str) -> bytes | None:
        """The decoded bytes under `key` (stringData wins, as the API server merges it), or None."""
        if key in self.string_data:
            return str(self.string_data[key]).encode()
        raw = self.data.get(key)
        if raw is None:
            return None
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return None


SecretSpec._FIELDS = (("type", "type", "s", None), ("data", "data", "m", None),
                      ("stringData", "string_data", "m", None), ("immutable", "immutable", "s", None))


@dataclass(frozen=True)
class TlsCredential:
    """What a gateway gets over SDS for one Secret: PEM bytes, any may be empty."""

    cert_chain: bytes = b""
    private_key: bytes = b""
    ca: bytes = b""


def credential(spec: SecretSpec) -> TlsCredential:
    """Istio's extraction order: `cert`/`key`/`cacert`, then `tls.crt`/`tls.key`/`ca.crt`;
    a CA-only Secret (`ca.crt` or `cacert`) has just the CA."""
    for cert_key, key_key, ca_key in reversed(KEY_SETS):
        cert, key = spec.value(cert_key), spec.value(key_key)
        if cert and key:
            return TlsCredential(cert, key, spec.value(ca_key) or b"")
    for ca_key in CA_KEYS:
        ca = spec.value(ca_key)
        if ca:
            return TlsCredential(ca=ca)
    return TlsCredential()


def normalize_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """As the API server stores it: `stringData` merged into base64 `data`, `type` defaulted to Opaque."""
    out = {k: v for k, v in body.items() if k != "stringData"}
    data = dict(out.get("data") or {})
    for k, v in (body.get("stringData") or {}).items():
        data[str(k)] = base64.b64encode(str(v).encode()).decode()
    if data:
        out["data"] = data
    out.setdefault("type", OPAQUE_TYPE)
    return out


def _certificates(pem: bytes, path: str, f: Findings) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        f.error(path, "is not a PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)")
        return []
    return certs


def _private_key(pem: bytes, path: str, f: Findings):
    try:
        return serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        f.error(path, "is not an unencrypted PEM private key (expected -----BEGIN PRIVATE KEY----- or "
                      "-----BEGIN RSA/EC PRIVATE KEY-----)")
        return None


def _public_bytes(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _field(spec: SecretSpec, key: str) -> str:
    """`data[tls.crt]` (or `stringData[...]`): the key names contain dots, so they are bracketed."""
    return f"{'stringData' if key in spec.string_data else 'data'}[{key}]"


def validate_secret(spec: SecretSpec, obj: Any, f: Findings) -> None:
    """A TLS credential Istio can read: the type is known, certificate and key parse and match,
    a CA parses. Values in `data` must be base64."""
    kind = spec.type or OPAQUE_TYPE
    if kind not in TYPES:
        f.error("type", f"unsupported Secret type {kind!r}: Isthmus stores Secrets as gateway TLS credentials "
                        f"({' or '.join(TYPES)})")
        return
    for key, raw in spec.data.items():
        if spec.value(key) is None and key not in spec.string_data:
            f.error(_field(spec, key), f"must be base64-encoded (got {str(raw)[:20]!r}...)")
    if f.errors:
        return
    present = set(spec.data) | set(spec.string_data)
    if kind == TLS_TYPE and not {"tls.crt", "tls.key"} <= present:
        f.error("data", "a kubernetes.io/tls Secret needs tls.crt and tls.key "
                        "(isthmus create secret tls NAME --cert FILE --key FILE)")
        return
    pairs = [(c, k) for c, k, _ in KEY_SETS if c in present or k in present]
    if not pairs and not any(k in present for k in CA_KEYS):
        f.error("data", "no TLS credential: set tls.crt and tls.key (and optionally ca.crt), "
                        "or cert and key (and optionally cacert), or only ca.crt for a CA Secret")
        return
    for cert_key, key_key in pairs:
        if cert_key not in present or key_key not in present:
            missing = key_key if cert_key in present else cert_key
            f.error(_field(spec, missing), f"required with {cert_key if missing == key_key else key_key}")
            continue
        certs = _certificates(spec.value(cert_key) or b"", _field(spec, cert_key), f)
        key = _private_key(spec.value(key_key) or b"", _field(spec, key_key), f)
        if certs and key is not None and _public_bytes(certs[0].public_key()) != _public_bytes(key.public_key()):
            f.error(_field(spec, key_key), f"does not match the certificate in {cert_key} "
                                           f"(subject {certs[0].subject.rfc4514_string()})")
    for ca_key in CA_KEYS:
        if ca_key in present:
            _certificates(spec.value(ca_key) or b"", _field(spec, ca_key), f)


def redacted_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body with every private key replaced by REDACTED (by key name, or by content)."""
    out = dict(body)
    for section in ("data", "stringData"):
        values = body.get(section)
        if not isinstance(values, Mapping):
            continue
        clean = {}
        for k, v in values.items():
            text = str(v)
            if section == "data":
                try:
                    text = base64.b64decode(text).decode(errors="replace")
                except (binascii.Error, ValueError):
                    pass
            clean[k] = REDACTED if k in PRIVATE_KEY_KEYS or "PRIVATE KEY" in text else v
        out[section] = clean
    return out
