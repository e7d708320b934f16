"""A small X.509 certificate reader in pure Python (no `cryptography`), for the sidecar.

`parse_certificate(der)` / `parse_pem(pem)` return `CertInfo`: serial, validity, raw
issuer/subject Names, the subject as `Name.rfc4514_string()` prints it, and the URI and
DNS subjectAltNames. Signatures are not checked. Malformed input raises ValueError.
"""
from __future__ import annotations

import binascii
import datetime as dt
import re
from dataclasses import dataclass
from typing import NamedTuple

_SEQUENCE, _SET, _INTEGER, _BIT_STRING, _OCTET_STRING, _OID, _BOOLEAN = 0x30, 0x31, 0x02, 0x03, 0x04, 0x06, 0x01
_UTC_TIME, _GENERALIZED_TIME = 0x17, 0x18
_BMP_STRING, _UNIVERSAL_STRING = 0x1E, 0x1C
_VERSION, _EXTENSIONS = 0xA0, 0xA3  # [0] and [3] EXPLICIT in TBSCertificate
_SAN_DNS, _SAN_URI = 0x82, 0x86  # GeneralName [2] dNSName, [6] uniformResourceIdentifier (IMPLICIT IA5String)
_SUBJECT_ALT_NAME = "2.5.29.17"

# The short names cryptography's rfc4514_string() uses; every other type prints as its dotted OID.
_SHORT_NAMES = {"2.5.4.3": "CN", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
                "2.5.4.6": "C", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC",
                "0.9.2342.19200300.100.1.1": "UID"}
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "+": "\\+", ",": "\\,", ";": "\\;", "<": "\\<",
                          ">": "\\>", "\0": "\\00"})
_PEM_BLOCK = re.compile(rb"-----BEGIN (X509 CERTIFICATE|CERTIFICATE)-----([^-]*)-----END \1-----")
_WHITESPACE = re.compile(rb"\s+")
_UTC_FORMAT = re.compile(r"[0-9]{12}Z")
_GENERALIZED_FORMAT = re.compile(r"[0-9]{14}Z")


@dataclass(frozen=True, slots=True)
class CertInfo:
    der: bytes
    serial: int
    not_before: float  # POSIX seconds
    not_after: float
    issuer_der: bytes  # the Name TLVs, as encoded
    subject_der: bytes
    subject: str  # RFC 4514, most specific RDN first
    uri_sans: tuple[str, ...]
    dns_sans: tuple[str, ...]

    @property
    def self_issued(self) -> bool:
        return self.subject_der == self.issuer_der


def parse_pem(pem: bytes | str) -> list[CertInfo]:
    """Every CERTIFICATE block in `pem`, in order; ValueError if there is none or one is bad."""
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else bytes(pem)
    certs = []
    for n, block in enumerate(_PEM_BLOCK.finditer(data)):
        try:
            der = binascii.a2b_base64(_WHITESPACE.sub(b"", block.group(2)), strict_mode=True)
        except binascii.Error as exc:
            raise ValueError(f"PEM certificate #{n + 1}: bad base64 ({exc})") from None
        try:
            certs.append(parse_certificate(der))
        except ValueError as exc:
            raise ValueError(f"PEM certificate #{n + 1}: {exc}") from None
    if not certs:
        raise ValueError("no PEM CERTIFICATE block found")
    return certs


def parse_certificate(der: bytes) -> CertInfo:
    """One DER-encoded X.509 certificate → CertInfo; ValueError names what is malformed."""
    der = bytes(der)
    cert = _tlv(der, 0, len(der))
    if cert.tag != _SEQUENCE or cert.end != len(der):
        raise ValueError("not a DER certificate: expected one SEQUENCE spanning the input")
    parts = _children(der, cert)
    if [p.tag for p in parts] != [_SEQUENCE, _SEQUENCE, _BIT_STRING]:
        raise ValueError("certificate: expected tbsCertificate, signatureAlgorithm, signatureValue")
    fields = _children(der, parts[0])
    if fields and fields[0].tag == _VERSION:
        _check_version(der, fields.pop(0))
    if [f.tag for f in fields[:6]] != [_INTEGER] + [_SEQUENCE] * 5:
        raise ValueError("tbsCertificate: expected serial, signature, issuer, validity, subject, "
                         "subjectPublicKeyInfo")
    serial, _, issuer, validity, subject, _ = fields[:6]
    if serial.start == serial.end:
        raise ValueError("serial: empty INTEGER")
    _rdns(der, issuer)  # only to check that it is a well-formed Name
    times = _children(der, validity)
    if len(times) != 2:
        raise ValueError("validity: expected notBefore and notAfter")
    uris: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    extensions = [f for f in fields[6:] if f.tag == _EXTENSIONS]
    if extensions:
        san = _extension(der, extensions[0], _SUBJECT_ALT_NAME)
        if san is not None:
            uris, dns = _general_names(der, san)
    return CertInfo(der=der, serial=int.from_bytes(der[serial.start:serial.end], "big", signed=True),
                    not_before=_time(der, times[0], "notBefore"), not_after=_time(der, times[1], "notAfter"),
                    issuer_der=der[issuer.begin:issuer.end], subject_der=der[subject.begin:subject.end],
                    subject=_rfc4514(der, subject), uri_sans=uris, dns_sans=dns)


class _Element(NamedTuple):
    tag: int  # the identifier octet; high tag numbers as (octet << 24 | number), matching no tag used here
    begin: int  # where the tag is
    start: int  # where the value is
    end: int


def _tlv(data: bytes, pos: int, end: int) -> _Element:
    """The DER element at data[pos:end]."""
    begin = pos
    if end - pos < 2:
        raise ValueError(f"truncated DER element at offset {pos}")
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:
        number = 0
        while True:
            if pos >= end:
                raise ValueError(f"truncated DER tag at offset {begin}")
            octet = data[pos]
            pos += 1
            number = number << 7 | octet & 0x7F
            if not octet & 0x80:
                break
        tag = tag << 24 | number
    if pos >= end:
        raise ValueError(f"truncated DER length at offset {pos}")
    length = data[pos]
    pos += 1
    if length & 0x80:
        size = length & 0x7F
        if size == 0:
            raise ValueError(f"indefinite length at offset {pos - 1} (not DER)")
        if size > 4 or pos + size > end or data[pos] == 0:
            raise ValueError(f"bad DER length at offset {pos - 1}")
        length = int.from_bytes(data[pos:pos + size], "big")
        if length < 0x80:
            raise ValueError(f"non-minimal DER length at offset {pos - 1}")
        pos += size
    if pos + length > end:
        raise ValueError(f"DER element at offset {begin} overruns its container ({length} bytes)")
    return _Element(tag, begin, pos, pos + length)


def _children(data: bytes, parent: _Element) -> list[_Element]:
    out, pos = [], parent.start
    while pos < parent.end:
        out.append(_tlv(data, pos, parent.end))
        pos = out[-1].end
    return out


def _check_version(data: bytes, element: _Element) -> None:
    inner = _children(data, element)
    if len(inner) != 1 or inner[0].tag != _INTEGER:
        raise ValueError("version: expected an INTEGER")
    version = int.from_bytes(data[inner[0].start:inner[0].end], "big", signed=True)
    if version != 2:  # v1 (0) is the DEFAULT, so DER leaves it out; v2 (1) is not supported (as cryptography)
        raise ValueError(f"version: {version} is not X.509 v3 (2); a v1 certificate has no version field")


def _time(data: bytes, element: _Element, what: str) -> float:
    text = data[element.start:element.end].decode("ascii", "replace")
    if element.tag == _UTC_TIME and _UTC_FORMAT.fullmatch(text):
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif not (element.tag == _GENERALIZED_TIME and _GENERALIZED_FORMAT.fullmatch(text)):
        raise ValueError(f"{what}: expected UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ "
                         f"(got tag 0x{element.tag:02x} {text!r})")
    try:
        return dt.datetime(int(text[:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]),
                           int(text[12:14]), tzinfo=dt.UTC).timestamp()
    except ValueError as exc:
        raise ValueError(f"{what}: {text!r} is not a valid time ({exc})") from None


def _oid(data: bytes, element: _Element) -> str:
    body = data[element.start:element.end]
    if not body or body[-1] & 0x80:
        raise ValueError(f"bad OBJECT IDENTIFIER at offset {element.begin}")
    arcs, value, arc_start = [], 0, True
    for octet in body:
        if arc_start and octet == 0x80:
            raise ValueError(f"bad OBJECT IDENTIFIER at offset {element.begin} (non-minimal arc)")
        value = value << 7 | octet & 0x7F
        arc_start = not octet & 0x80
        if arc_start:
            if not arcs:  # the first octets hold two arcs: 40 * X + Y
                arcs.append(min(value // 40, 2))
                value -= 40 * arcs[0]
            arcs.append(value)
            value = 0
    return ".".join(map(str, arcs))


def _extension(data: bytes, element: _Element, wanted: str) -> _Element | None:
    """The extnValue OCTET STRING of extension `wanted` in the [3] Extensions, or None."""
    inner = _children(data, element)
    if len(inner) != 1 or inner[0].tag != _SEQUENCE:
        raise ValueError("extensions: expected a SEQUENCE")
    found, seen = None, set()
    for ext in _children(data, inner[0]):
        parts = _children(data, ext) if ext.tag == _SEQUENCE else []
        if len(parts) == 3 and parts[1].tag == _BOOLEAN:
            del parts[1]
        if len(parts) != 2 or parts[0].tag != _OID or parts[1].tag != _OCTET_STRING:
            raise ValueError(f"extension at offset {ext.begin}: expected extnID, critical, extnValue")
        oid = _oid(data, parts[0])
        if oid in seen:
            raise ValueError(f"extension {oid} appears twice")
        seen.add(oid)
        if oid == wanted:
            found = parts[1]
    return found


def _general_names(data: bytes, value: _Element) -> tuple[tuple[str, ...], tuple[str, ...]]:
    names = _tlv(data, value.start, value.end)
    if names.tag != _SEQUENCE or names.end != value.end:
        raise ValueError("subjectAltName: expected one SEQUENCE of GeneralName")
    uris, dns = [], []
    for name in _children(data, names):
        if name.tag in (_SAN_URI, _SAN_DNS):
            try:  # IA5String, but read as UTF-8 (as cryptography does, for the certificates out there)
                text = data[name.start:name.end].decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"subjectAltName: name at offset {name.begin} is not valid UTF-8") from None
            (uris if name.tag == _SAN_URI else dns).append(text)
    return tuple(uris), tuple(dns)


def _rdns(data: bytes, name: _Element) -> list[list[tuple[str, _Element]]]:
    """A Name's RDNs as [(attribute type OID, value element), ...], checking the structure."""
    rdns = []
    for rdn in _children(data, name):
        if rdn.tag != _SET:
            raise ValueError(f"name: expected a SET (RelativeDistinguishedName) at offset {rdn.begin}")
        attributes = []
        for atv in _children(data, rdn):
            parts = _children(data, atv) if atv.tag == _SEQUENCE else []
            if len(parts) != 2 or parts[0].tag != _OID:
                raise ValueError(f"name: expected an AttributeTypeAndValue at offset {atv.begin}")
            attributes.append((_oid(data, parts[0]), parts[1]))
        if not attributes:
            raise ValueError(f"name: empty RelativeDistinguishedName at offset {rdn.begin}")
        rdns.append(attributes)
    return rdns


def _rfc4514(data: bytes, name: _Element) -> str:
    """Name → RFC 4514: RDNs last to first, joined by ','; attributes in a RDN joined by '+'."""
    return ",".join("+".join(f"{_SHORT_NAMES.get(oid, oid)}={_escape(_attribute_value(data, value))}"
                             for oid, value in rdn) for rdn in reversed(_rdns(data, name)))


def _attribute_value(data: bytes, element: _Element) -> str | bytes:
    """As cryptography decodes it: BIT STRING → bytes, BMP/Universal → UTF-16/32, else UTF-8."""
    raw = data[element.start:element.end]
    if element.tag == _BIT_STRING:
        return raw
    codec = {_BMP_STRING: "utf-16-be", _UNIVERSAL_STRING: "utf-32-be"}.get(element.tag, "utf-8")
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        raise ValueError(f"name: attribute value at offset {element.begin} is not valid {codec}") from None


def _escape(value: str | bytes) -> str:
    """RFC 4514 section 2.4 escaping, character for character as cryptography does it."""
    if not value:
        return ""
    if isinstance(value, bytes):
        return "#" + value.hex()
    value = value.translate(_ESCAPES)
    if value[0] == "#" or (value[0] == " " and len(value) > 1):
        value = "\\" + value
    if value[-1] == " ":
        value = value[:-1] + "\\ "
    return value
