"""Key material in the data dir, the issued leaf's shape, plug-in intermediates, rotation."""
import stat
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from isthmus.citadel.clock import FakeClock
from isthmus.citadel.pki.authority import CertificateAuthority
from isthmus.citadel.pki.csr import check_csr, make_csr
from isthmus.citadel.pki.issue import cert_pem, create_root
from isthmus.citadel.pki.keys import KeyType
from isthmus.citadel.pki.policy import IssuancePolicy
from isthmus.citadel.pki.store import PluginSource, SelfSignedSource, resolve_trust_domain

from .helpers import ALICE, write_plugin_cacerts


def sign(ca: CertificateAuthority, ttl: int = 3600, identity=ALICE) -> list[x509.Certificate]:
    csr = check_csr(make_csr(KeyType.EC_P256.generate(), identity), identity)
    return [x509.load_pem_x509_certificate(p.encode()) for p in ca.sign_workload(csr, identity, ttl)]


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("key_type, key_class", [(KeyType.EC_P256, ec.EllipticCurvePublicKey),
                                                  (KeyType.RSA_2048, rsa.RSAPublicKey)])
def test_root_created_once_with_private_key_0600(tmp_path, key_type, key_class):
    ca = CertificateAuthority(SelfSignedSource(tmp_path, "cluster.local", key_type), IssuancePolicy())
    root = ca.material.signing_cert
    assert isinstance(root.public_key(), key_class)
    assert mode(tmp_path / "root-key.pem") == 0o600
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # a restart reuses it
    again = CertificateAuthority(SelfSignedSource(tmp_path, "cluster.local", key_type), IssuancePolicy())
    assert again.material.signing_cert == root


def test_trust_domain_is_fixed_at_first_use(tmp_path):
    assert resolve_trust_domain(tmp_path, None) == "cluster.local"
    assert resolve_trust_domain(tmp_path, "cluster.local") == "cluster.local"
    with pytest.raises(ValueError, match="belongs to trust domain 'cluster.local', not 'corp.example'"):
        resolve_trust_domain(tmp_path, "corp.example")


def test_leaf_shape(tmp_path):
    clock = FakeClock(start=float(int(time.time())))
    ca = CertificateAuthority(SelfSignedSource(tmp_path, "cluster.local"), IssuancePolicy(), clock)
    leaf, root = sign(ca, ttl=7200)
    assert leaf.subject == x509.Name([])
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical and list(san.value) == [x509.UniformResourceIdentifier(ALICE.uri)]
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment and not ku.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    now = int(clock.time())
    assert leaf.not_valid_before_utc.timestamp() == now - 60          # backdated for clock skew
    assert leaf.not_valid_after_utc.timestamp() == now + 7200         # TTL from now
    leaf.verify_directly_issued_by(root)


def test_serials_are_random_128_bit(tmp_path):
    ca = CertificateAuthority(SelfSignedSource(tmp_path, "cluster.local"), IssuancePolicy())
    serials = [sign(ca)[0].serial_number for _ in range(20)]
    assert len(set(serials)) == 20
    assert all(0 < s < 2**128 for s in serials)
    assert max(s.bit_length() for s in serials) > 120


def test_plugin_intermediate_chain_ends_at_its_root(tmp_path):
    root, inter = write_plugin_cacerts(tmp_path / "cacerts")
    ca = CertificateAuthority(PluginSource(tmp_path / "cacerts", "cluster.local"), IssuancePolicy())
    leaf, got_inter, got_root = sign(ca)
    assert (got_inter, got_root) == (inter, root)
    leaf.verify_directly_issued_by(inter)
    assert ca.bundle.roots == (ca.material.chain_pems[-1],)


def test_plugin_without_cert_chain_file_finds_root(tmp_path):
    root, inter = write_plugin_cacerts(tmp_path / "cacerts")
    (tmp_path / "cacerts" / "cert-chain.pem").unlink()
    ca = CertificateAuthority(PluginSource(tmp_path / "cacerts", "cluster.local"), IssuancePolicy())
    assert ca.material.chain == (inter, root)


def test_plugin_rejects_mismatched_key(tmp_path):
    write_plugin_cacerts(tmp_path / "a")
    write_plugin_cacerts(tmp_path / "b")
    (tmp_path / "a" / "ca-key.pem").write_bytes((tmp_path / "b" / "ca-key.pem").read_bytes())
    with pytest.raises(ValueError, match="private key does not match"):
        PluginSource(tmp_path / "a", "cluster.local").load(time.time())


def test_plugin_rejects_chain_to_unrelated_root(tmp_path):
    write_plugin_cacerts(tmp_path / "a")
    write_plugin_cacerts(tmp_path / "b")
    (tmp_path / "a" / "cert-chain.pem").unlink()
    (tmp_path / "a" / "root-cert.pem").write_bytes((tmp_path / "b" / "root-cert.pem").read_bytes())
    with pytest.raises(ValueError, match="no certificate in root-cert.pem signed"):
        PluginSource(tmp_path / "a", "cluster.local").load(time.time())


def test_plugin_reports_missing_files(tmp_path):
    (tmp_path / "cacerts").mkdir()
    with pytest.raises(ValueError, match="ca-cert.pem missing"):
        PluginSource(tmp_path / "cacerts", "cluster.local").load(time.time())


def test_rotation_keeps_old_root_in_bundle_and_both_chains_verify(tmp_path):
    source = SelfSignedSource(tmp_path, "cluster.local")
    ca = CertificateAuthority(source, IssuancePolicy())
    old_leaf, old_root = sign(ca)
    assert not ca.refresh()  # nothing changed yet
    new_root = source.rotate(time.time())
    assert ca.refresh()
    new_leaf, signing_root = sign(ca)
    assert signing_root == new_root != old_root
    bundle = [x509.load_pem_x509_certificate(p.encode()) for p in ca.bundle.roots]
    assert bundle == [new_root, old_root]
    old_leaf.verify_directly_issued_by(bundle[1])
    new_leaf.verify_directly_issued_by(bundle[0])
    assert mode(tmp_path / "root-key.pem") == 0o600


def test_expired_roots_leave_the_bundle(tmp_path):
    source = SelfSignedSource(tmp_path, "cluster.local")
    current = source.load(time.time()).signing_cert
    short_lived = create_root(KeyType.EC_P256.generate(), "cluster.local", time.time(), days=1)
    (tmp_path / "previous-roots.pem").write_text(cert_pem(short_lived))
    assert len(source.load(time.time()).bundle.roots) == 2
    assert source.load(time.time() + 2 * 86400).bundle.roots == (cert_pem(current),)


def test_broken_new_material_keeps_the_old(tmp_path):
    ca = CertificateAuthority(SelfSignedSource(tmp_path, "cluster.local"), IssuancePolicy())
    before = ca.material
    (tmp_path / "root-cert.pem").write_text("garbage")
    assert not ca.refresh()
    assert ca.material is before
    sign(ca)


def test_leaf_never_outlives_its_issuer(tmp_path):
    write_plugin_cacerts(tmp_path / "cacerts")
    ca = CertificateAuthority(PluginSource(tmp_path / "cacerts", "cluster.local"),
                              IssuancePolicy(max_ttl=10 * 365 * 86400))
    leaf, inter, _ = sign(ca, ttl=9 * 365 * 86400)
    assert leaf.not_valid_after_utc == inter.not_valid_after_utc
