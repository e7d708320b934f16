"""The pure-Python certificate reader against `cryptography` as the oracle: CA-issued chains,
hand-built certificates of every shape, RFC 4514 escaping, and malformed input → ValueError."""
import contextlib
import datetime as dt
import ipaddress
import random

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from isthmus.citadel.pki.authority import CertificateAuthority
from isthmus.citadel.pki.csr import check_csr, make_csr
from isthmus.citadel.pki.der import CertInfo, parse_certificate, parse_pem
from isthmus.citadel.pki.keys import KeyType
from isthmus.citadel.pki.policy import IssuancePolicy
from isthmus.citadel.pki.store import PluginSource, SelfSignedSource

from .helpers import ALICE, write_plugin_cacerts

UTC = dt.UTC
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def der_of(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def assert_matches(info: CertInfo, cert: x509.Certificate) -> None:
    assert info.der == der_of(cert)
    assert info.serial == cert.serial_number
    assert info.not_before == cert.not_valid_before_utc.timestamp()
    assert info.not_after == cert.not_valid_after_utc.timestamp()
    assert info.issuer_der == cert.issuer.public_bytes()
    assert info.subject_der == cert.subject.public_bytes()
    assert info.subject == cert.subject.rfc4514_string()
    assert info.self_issued == (cert.issuer == cert.subject)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris, dns = san.get_values_for_type(x509.UniformResourceIdentifier), san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        uris, dns = [], []
    assert info.uri_sans == tuple(uris)
    assert info.dns_sans == tuple(dns)


def check(cert: x509.Certificate) -> CertInfo:
    info = parse_certificate(der_of(cert))
    assert_matches(info, cert)
    return info


def build(subject: x509.Name | None = None, *, key=EC_KEY, issuer: x509.Name | None = None, serial: int = 1,
          not_before=dt.datetime(2024, 1, 1, tzinfo=UTC), not_after=dt.datetime(2034, 1, 1, tzinfo=UTC),
          sans: list[x509.GeneralName] | None = None) -> x509.Certificate:
    subject = subject if subject is not None else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer or subject)
               .public_key(key.public_key()).serial_number(serial)
               .not_valid_before(not_before).not_valid_after(not_after))
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256())


# --- certificates from the project's own CA ---------------------------------------------------

@pytest.mark.parametrize("key_type", list(KeyType))
def test_self_signed_ca_chain(tmp_path, key_type):
    ca = CertificateAuthority(SelfSignedSource(tmp_path, "cluster.local", key_type), IssuancePolicy())
    csr = check_csr(make_csr(key_type.generate(), ALICE), ALICE)
    chain = ca.sign_workload(csr, ALICE, 3600)
    infos = parse_pem("".join(chain))
    assert len(infos) == len(chain) == 2
    for info, pem in zip(infos, chain, strict=True):
        assert_matches(info, x509.load_pem_x509_certificate(pem.encode()))
    leaf, root = infos
    assert leaf.uri_sans == (ALICE.uri,) and leaf.dns_sans == () and leaf.subject == ""
    assert leaf.issuer_der == root.subject_der and not leaf.self_issued
    assert root.self_issued and root.subject == "CN=Isthmus root CA,O=cluster.local"


def test_plugin_intermediate_chain_and_serving_cert(tmp_path):
    write_plugin_cacerts(tmp_path / "cacerts")
    ca = CertificateAuthority(PluginSource(tmp_path / "cacerts", "cluster.local"), IssuancePolicy())
    chain = ca.issue_serving(KeyType.EC_P256.generate(), 3600, uris=(ALICE.uri,),
                             dns_names=("citadel.isthmus-system.svc", "citadel"), ips=("127.0.0.1",))
    infos = parse_pem(b"".join(p.encode() for p in chain))
    assert len(infos) == 3
    for info, pem in zip(infos, chain, strict=True):
        assert_matches(info, x509.load_pem_x509_certificate(pem.encode()))
    leaf, inter, root = infos
    assert leaf.dns_sans == ("citadel.isthmus-system.svc", "citadel")  # the IP SAN is skipped
    assert inter.subject == "CN=Mesh intermediate,O=cluster.local" and not inter.self_issued
    assert root.subject == "CN=Corp root CA,O=cluster.local" and root.self_issued


# --- certificates built here ------------------------------------------------------------------

@pytest.mark.parametrize("key", [EC_KEY, rsa.generate_private_key(public_exponent=65537, key_size=2048)],
                         ids=["ec", "rsa"])
def test_key_types(key):
    check(build(key=key, sans=[x509.DNSName("a.example")]))


def test_no_san_extension():
    info = check(build())
    assert info.uri_sans == () and info.dns_sans == ()


def test_dns_and_uri_sans_in_order_other_kinds_skipped():
    info = check(build(sans=[x509.DNSName("b.example"), x509.UniformResourceIdentifier("spiffe://td/ns/a/sa/b"),
                             x509.IPAddress(ipaddress.ip_address("10.0.0.1")), x509.RFC822Name("x@y.z"),
                             x509.DNSName("*.a.example"), x509.UniformResourceIdentifier("https://x/y"),
                             x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "d")]))]))
    assert info.dns_sans == ("b.example", "*.a.example")
    assert info.uri_sans == ("spiffe://td/ns/a/sa/b", "https://x/y")


@pytest.mark.parametrize("not_before, not_after", [
    (dt.datetime(2024, 2, 29, 12, 30, 59, tzinfo=UTC), dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)),
    (dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC), dt.datetime(2050, 1, 1, tzinfo=UTC)),  # → GeneralizedTime
    (dt.datetime(2051, 6, 1, tzinfo=UTC), dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    (dt.datetime(1950, 1, 1, tzinfo=UTC), dt.datetime(1999, 12, 31, tzinfo=UTC)),  # UTCTime 50-99 → 19YY
])
def test_validity_utc_and_generalized_time(not_before, not_after):
    info = check(build(not_before=not_before, not_after=not_after))
    assert (info.not_before, info.not_after) == (not_before.timestamp(), not_after.timestamp())


@pytest.mark.parametrize("serial", [1, 127, 128, 255, 256, 2**63, 2**127 + 12345, 2**159 - 1])
def test_serials(serial):
    assert check(build(serial=serial)).serial == serial


def name(*attrs) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value, *rest) for oid, value, *rest in attrs])


@pytest.mark.parametrize("subject, expected", [
    (name((NameOID.COUNTRY_NAME, "US"), (NameOID.STATE_OR_PROVINCE_NAME, "CA"),
          (NameOID.LOCALITY_NAME, "SF"), (NameOID.ORGANIZATION_NAME, "Acme"),
          (NameOID.ORGANIZATIONAL_UNIT_NAME, "Mesh"), (NameOID.COMMON_NAME, "istiod")),
     "CN=istiod,OU=Mesh,O=Acme,L=SF,ST=CA,C=US"),
    (name((NameOID.DOMAIN_COMPONENT, "com"), (NameOID.DOMAIN_COMPONENT, "example"),
          (NameOID.USER_ID, "u1"), (NameOID.STREET_ADDRESS, "1 Main St")),
     "STREET=1 Main St,UID=u1,DC=example,DC=com"),
    (name((NameOID.EMAIL_ADDRESS, "ops@example.com"), (NameOID.SERIAL_NUMBER, "42")),
     "2.5.4.5=42,1.2.840.113549.1.9.1=ops@example.com"),
    (name((NameOID.COMMON_NAME, 'a,b+c"d\\e;f<g>h=i')),
     'CN=a\\,b\\+c\\"d\\\\e\\;f\\<g\\>h=i'),
    (name((NameOID.COMMON_NAME, "#hash"), (NameOID.ORGANIZATION_NAME, " lead and trail "),
          (NameOID.ORGANIZATIONAL_UNIT_NAME, "a#b"), (NameOID.LOCALITY_NAME, "nul\0")),
     "L=nul\\00,OU=a#b,O=\\ lead and trail\\ ,CN=\\#hash"),
    (name((NameOID.ORGANIZATION_NAME, " "), (NameOID.ORGANIZATIONAL_UNIT_NAME, "")),
     "OU=,O=\\ "),  # a lone space is escaped as trailing, not leading (as cryptography does)
    (name((NameOID.COMMON_NAME, "héllo ✓ 𝄞")), "CN=héllo ✓ 𝄞"),
    (name((NameOID.COMMON_NAME, "bmp ✓", _ASN1Type.BMPString)), "CN=bmp ✓"),
    (name((NameOID.COMMON_NAME, "universal 𝄞", _ASN1Type.UniversalString)), "CN=universal 𝄞"),
    (name((NameOID.COMMON_NAME, "t61", _ASN1Type.T61String)), "CN=t61"),
    (name((NameOID.X500_UNIQUE_IDENTIFIER, b"\x00\xab", _ASN1Type.BitString)), "2.5.4.45=#00ab"),
    (x509.Name([x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "web"),
                                                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "a+b"),
                                                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme")]),
                x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")])]),
     "C=DE,CN=web+OU=a\\+b+O=Acme"),  # within a RDN: DER SET order (by encoding)
    (x509.Name([]), ""),
], ids=["common", "dc-uid-street", "dotted", "specials", "leading-trailing", "lone-space", "utf8", "bmp",
        "universal", "t61", "bitstring", "multi-valued-rdn", "empty"])
def test_subject_rfc4514(subject, expected):
    issuer = name((NameOID.COMMON_NAME, "issuer"))
    info = check(build(subject, issuer=issuer))
    assert info.subject == expected
    assert not info.self_issued


# --- PEM --------------------------------------------------------------------------------------

def test_parse_pem_all_blocks_in_order_str_or_bytes():
    certs = [build(serial=n) for n in (1, 2, 3)]
    pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in certs]
    text = "leading text\n" + pems[0] + "\n# comment\n" + pems[1] + pems[2].replace("\n", "\r\n") + "trailer"
    assert [i.serial for i in parse_pem(text)] == [1, 2, 3]
    assert [i.serial for i in parse_pem(text.encode())] == [1, 2, 3]
    key = EC_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption()).decode()
    assert [i.serial for i in parse_pem(key + pems[1])] == [2]  # other block types are skipped


@pytest.mark.parametrize("pem, words", [
    ("", "no PEM CERTIFICATE block"),
    ("hello", "no PEM CERTIFICATE block"),
    ("-----BEGIN CERTIFICATE-----\nAA!A\n-----END CERTIFICATE-----\n", "bad base64"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "PEM certificate #1"),
])
def test_parse_pem_errors(pem, words):
    with pytest.raises(ValueError, match=words):
        parse_pem(pem)


def test_parse_pem_names_the_bad_block():
    good = build().public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(ValueError, match="PEM certificate #2"):
        parse_pem(good + "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n")


# --- malformed DER ----------------------------------------------------------------------------

def tlv(tag: int, body: bytes) -> bytes:
    n, size = len(body), (len(body).bit_length() + 7) // 8
    length = bytes([n]) if n < 0x80 else bytes([0x80 | size]) + n.to_bytes(size, "big")
    return bytes([tag]) + length + body


SPKI = EC_KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
ALG = tlv(0x30, bytes.fromhex("06082a8648ce3d040302"))  # ecdsa-with-SHA256
NAME = tlv(0x30, tlv(0x31, tlv(0x30, bytes.fromhex("0603550403") + tlv(0x0C, b"x"))))


def synthetic(*, version: bytes = tlv(0xA0, tlv(0x02, b"\x02")), serial: bytes = tlv(0x02, b"\x01"),
              not_before: bytes = tlv(0x17, b"240101000000Z"), not_after: bytes = tlv(0x17, b"340101000000Z"),
              subject: bytes = NAME, extensions: bytes = b"") -> bytes:
    tbs = tlv(0x30, version + serial + ALG + NAME + tlv(0x30, not_before + not_after) + subject + SPKI + extensions)
    return tlv(0x30, tbs + ALG + tlv(0x03, b"\x00\x30\x00"))


def san_ext(*names: bytes) -> bytes:
    return tlv(0x30, bytes.fromhex("0603551d11") + tlv(0x04, tlv(0x30, b"".join(names))))


def test_synthetic_certificate_agrees_with_cryptography():
    der = synthetic(extensions=tlv(0xA3, tlv(0x30, san_ext(tlv(0x86, b"spiffe://td/ns/a/sa/b"), tlv(0x82, b"d")))))
    info = parse_certificate(der)
    assert_matches(info, x509.load_der_x509_certificate(der))
    assert info.uri_sans == ("spiffe://td/ns/a/sa/b",) and info.dns_sans == ("d",) and info.self_issued


def test_v1_certificate_without_version_field():
    der = synthetic(version=b"")
    assert x509.load_der_x509_certificate(der).version == x509.Version.v1
    assert parse_certificate(der).serial == 1


def test_non_ascii_sans_read_as_utf8_like_cryptography():
    sans = san_ext(tlv(0x86, "spiffe://tö".encode()), tlv(0x82, "é.x".encode()))
    der = synthetic(extensions=tlv(0xA3, tlv(0x30, sans)))
    info = parse_certificate(der)
    assert_matches(info, x509.load_der_x509_certificate(der))
    assert info.uri_sans == ("spiffe://tö",) and info.dns_sans == ("é.x",)


@pytest.mark.parametrize("time, year", [
    (tlv(0x17, b"491231235959Z"), 2049), (tlv(0x17, b"500101000000Z"), 1950),
    (tlv(0x17, b"000101000000Z"), 2000), (tlv(0x17, b"991231235959Z"), 1999),
    (tlv(0x18, b"19491231235959Z"), 1949), (tlv(0x18, b"18000101000000Z"), 1800),  # the builder refuses these
])
def test_time_century(time, year):
    der = synthetic(not_before=time)
    info = parse_certificate(der)
    assert dt.datetime.fromtimestamp(info.not_before, UTC).year == year
    assert info.not_before == x509.load_der_x509_certificate(der).not_valid_before_utc.timestamp()


@pytest.mark.parametrize("der, words", [
    (b"", "truncated"),
    (b"\x30", "truncated"),
    (b"\x30\x80\x00\x00", "indefinite length"),
    (b"\x30\x81\x05\x02\x01\x01\x02\x00", "non-minimal DER length"),
    (b"\x30\x05\x02\x01", "overruns"),
    (b"\x02\x01\x01", "expected one SEQUENCE"),
    (synthetic() + b"\x00", "expected one SEQUENCE spanning the input"),
    (tlv(0x30, tlv(0x30, b"") + ALG), "expected tbsCertificate, signatureAlgorithm, signatureValue"),
    (synthetic(version=tlv(0xA0, tlv(0x02, b"\x01"))), "version: 1 is not X.509 v3"),
    (synthetic(version=tlv(0xA0, tlv(0x02, b"\x00"))), "version: 0 .* v1 certificate has no version field"),
    (synthetic(serial=tlv(0x02, b"")), "serial: empty"),
    (synthetic(serial=tlv(0x04, b"\x01")), "expected serial"),
    (synthetic(not_before=tlv(0x17, b"2401010000Z")), "notBefore: expected UTCTime"),
    (synthetic(not_after=tlv(0x18, b"20341301000000Z")), "notAfter: .* is not a valid time"),
    (synthetic(not_after=tlv(0x18, b"20340101000000.5Z")), "notAfter: expected"),
    (synthetic(not_after=tlv(0x04, b"340101000000Z")), "notAfter: expected"),
    (synthetic(subject=tlv(0x30, tlv(0x30, b""))), "expected a SET"),
    (synthetic(subject=tlv(0x30, tlv(0x31, b""))), "empty RelativeDistinguishedName"),
    (synthetic(subject=tlv(0x30, tlv(0x31, tlv(0x30, tlv(0x0C, b"x"))))), "AttributeTypeAndValue"),
    (synthetic(subject=tlv(0x30, tlv(0x31, tlv(0x30, bytes.fromhex("06025584") + tlv(0x0C, b"x"))))),
     "OBJECT IDENTIFIER"),
    (synthetic(subject=tlv(0x30, tlv(0x31, tlv(0x30, bytes.fromhex("060455808003") + tlv(0x0C, b"x"))))),
     "non-minimal arc"),
    (synthetic(subject=tlv(0x30, tlv(0x31, tlv(0x30, bytes.fromhex("0603550403") + tlv(0x0C, b"\xff"))))),
     "not valid utf-8"),
    (synthetic(extensions=tlv(0xA3, tlv(0x30, san_ext() + san_ext()))), "appears twice"),
    (synthetic(extensions=tlv(0xA3, tlv(0x30, tlv(0x30, bytes.fromhex("0603551d11"))))), "expected extnID"),
    (synthetic(extensions=tlv(0xA3, tlv(0x30, san_ext(tlv(0x86, b"spiffe://\xff"))))), "not valid UTF-8"),
    (synthetic(extensions=tlv(0xA3, tlv(0x30, tlv(0x30, bytes.fromhex("0603551d11") + tlv(0x04, b"\x02\x00"))))),
     "subjectAltName: expected one SEQUENCE"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_malformed_raises_value_error(der, words):
    with pytest.raises(ValueError, match=words):
        parse_certificate(der)


def test_every_truncation_and_random_corruption_is_a_value_error():
    der = der_of(build(sans=[x509.DNSName("a.example"), x509.UniformResourceIdentifier("spiffe://td/ns/a/sa/b")]))
    for n in range(len(der)):
        with pytest.raises(ValueError):
            parse_certificate(der[:n])
    rng = random.Random(4514)
    for _ in range(3000):
        corrupt = bytearray(der)
        for _ in range(rng.randint(1, 4)):
            corrupt[rng.randrange(len(corrupt))] = rng.randrange(256)
        with contextlib.suppress(ValueError):
            parse_certificate(bytes(corrupt))
