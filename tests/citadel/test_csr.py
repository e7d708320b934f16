"""Every CSR rule, without sockets: which request is refused, with which code and reason."""
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from isthmus.citadel.errors import Rejected
from isthmus.citadel.pki.csr import check_csr, make_csr
from isthmus.citadel.pki.keys import KeyType

from .helpers import ALICE, BOB, build_csr, small_curve_key, tamper_signature


@pytest.mark.parametrize("key_type", list(KeyType))
def test_make_csr_passes_for_its_identity(key_type):
    csr = check_csr(make_csr(key_type.generate(), ALICE), ALICE)
    assert csr.is_signature_valid


def rejected(csr_pem, caller=ALICE) -> Rejected:
    with pytest.raises(Rejected) as info:
        check_csr(csr_pem, caller)
    return info.value


@pytest.mark.parametrize("csr, reason, code, words", [
    ("", "csr_missing", "INVALID_ARGUMENT", "empty"),
    ("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
     "csr_malformed", "INVALID_ARGUMENT", "not a PEM-encoded PKCS#10"),
    ("hello", "csr_malformed", "INVALID_ARGUMENT", "not a PEM"),
])
def test_unparseable(csr, reason, code, words):
    err = rejected(csr)
    assert (err.reason, err.code) == (reason, code)
    assert words in str(err)


def test_bad_signature():
    err = rejected(tamper_signature(build_csr(uris=[ALICE.uri])))
    assert (err.reason, err.code) == ("csr_bad_signature", "INVALID_ARGUMENT")


@pytest.mark.parametrize("key, words", [
    (small_curve_key, "curve secp224r1 not allowed"),
    (lambda: rsa.generate_private_key(65537, 1024), "RSA key of 1024 bits"),
    (ed25519.Ed25519PrivateKey.generate, "not supported"),
])
def test_weak_or_unsupported_keys(key, words):
    pem = build_csr(key(), uris=[ALICE.uri])
    err = rejected(pem)
    assert (err.reason, err.code) == ("csr_weak_key", "INVALID_ARGUMENT")
    assert words in str(err)


def test_p384_and_rsa_3072_are_strong_enough():
    from cryptography.hazmat.primitives.asymmetric import ec
    check_csr(build_csr(ec.generate_private_key(ec.SECP384R1()), uris=[ALICE.uri]), ALICE)
    check_csr(build_csr(rsa.generate_private_key(65537, 3072), uris=[ALICE.uri]), ALICE)


def test_ca_true_is_denied():
    err = rejected(build_csr(uris=[ALICE.uri], ca=True))
    assert (err.reason, err.code) == ("csr_ca_requested", "PERMISSION_DENIED")
    # CA:false is harmless
    check_csr(build_csr(uris=[ALICE.uri], ca=False), ALICE)


def test_no_san():
    err = rejected(build_csr(san=False))
    assert (err.reason, err.code) == ("csr_no_san", "INVALID_ARGUMENT")
    assert ALICE.uri in str(err)


@pytest.mark.parametrize("uris, dns", [
    ([ALICE.uri], ["alice.team-a.svc"]),
    ([ALICE.uri, BOB.uri], []),
    ([], ["alice.team-a.svc"]),
])
def test_other_sans_are_denied(uris, dns):
    err = rejected(build_csr(uris=uris, dns=dns))
    assert (err.reason, err.code) == ("csr_extra_san", "PERMISSION_DENIED")
    assert "must hold only the URI" in str(err)


@pytest.mark.parametrize("uri", [
    BOB.uri,                                              # another namespace and account
    "spiffe://cluster.local/ns/team-a/sa/mallory",        # same namespace, other account
    "spiffe://other.domain/ns/team-a/sa/alice",           # other trust domain
    "spiffe://cluster.local/ns/team-a/sa/alice/",         # not exactly equal
])
def test_identity_mismatch_is_denied(uri):
    err = rejected(build_csr(uris=[uri]))
    assert (err.reason, err.code) == ("csr_identity_mismatch", "PERMISSION_DENIED")
    assert f"not the caller's identity {ALICE.uri}" in str(err)
