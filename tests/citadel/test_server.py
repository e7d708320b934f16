"""The CA over real gRPC on 127.0.0.1: issuance, every refusal's status code and metric,
health, trust bundle, mTLS renewal."""
import time

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from isthmus.citadel.pki.csr import make_csr
from isthmus.citadel.pki.keys import KeyType, key_pem
from isthmus.citadel.spiffe import SpiffeId
from isthmus.shared.protos import ca_pb2, ca_pb2_grpc
from isthmus.shared.service.grpc_client import RpcError, StatusCode

from .conftest import mint
from .helpers import ALICE, BOB, build_csr, small_curve_key, tamper_signature


def leaf_of(chain):
    return x509.load_pem_x509_certificate(chain[0].encode())


async def call(app, csr: str, token: str | None = None, ttl: int = 0):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        return await ca_pb2_grpc.IstioCertificateServiceStub(channel).CreateCertificate(
            ca_pb2.IstioCertificateRequest(csr=csr, validity_duration=ttl), metadata=metadata, timeout=5)


async def refused(app, csr: str, token: str | None, code: grpc.StatusCode, reason: str, words: str = ""):
    before = app.metrics.value("citadel_requests_rejected_total", reason=reason)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(app, csr, token)
    assert info.value.code() == code, info.value.details()
    assert words in info.value.details()
    assert app.metrics.value("citadel_requests_rejected_total", reason=reason) == before + 1
    return info.value.details()


async def test_issues_chain_leaf_first_root_last(citadel):
    resp = await call(citadel, make_csr(KeyType.EC_P256.generate(), ALICE), mint(citadel, ALICE), ttl=7200)
    leaf, root = [x509.load_pem_x509_certificate(p.encode()) for p in resp.cert_chain]
    assert root == citadel.authority.material.signing_cert
    assert list(resp.root_cert.ca_cert) == list(citadel.authority.bundle.roots)  # Istio's root_cert field
    leaf.verify_directly_issued_by(root)
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.UniformResourceIdentifier) == [ALICE.uri]
    lifetime = leaf.not_valid_after_utc.timestamp() - time.time()
    assert 7190 < lifetime <= 7201
    assert citadel.metrics.value("citadel_certs_signed_total", auth="jwt") == 1
    assert citadel.metrics.value("citadel_sign_seconds_count") == 1


@pytest.mark.parametrize("requested, expected", [(0, 86400), (5, 60), (400 * 86400, 90 * 86400)])
async def test_ttl_is_clamped(citadel, requested, expected):
    resp = await call(citadel, make_csr(KeyType.EC_P256.generate(), ALICE), mint(citadel, ALICE), ttl=requested)
    leaf = leaf_of(resp.cert_chain)
    assert abs(leaf.not_valid_after_utc.timestamp() - time.time() - expected) < 10


async def test_namespace_a_token_cannot_get_namespace_b(citadel):
    details = await refused(citadel, make_csr(KeyType.EC_P256.generate(), BOB), mint(citadel, ALICE),
                            grpc.StatusCode.PERMISSION_DENIED, "csr_identity_mismatch")
    assert BOB.uri in details and ALICE.uri in details


async def test_same_namespace_other_service_account_is_denied(citadel):
    mallory = SpiffeId("cluster.local", "team-a", "mallory")
    await refused(citadel, make_csr(KeyType.EC_P256.generate(), mallory), mint(citadel, ALICE),
                  grpc.StatusCode.PERMISSION_DENIED, "csr_identity_mismatch")


@pytest.mark.parametrize("csr, code, reason, words", [
    (lambda: "not a csr", grpc.StatusCode.INVALID_ARGUMENT, "csr_malformed", "PKCS#10"),
    (lambda: "", grpc.StatusCode.INVALID_ARGUMENT, "csr_missing", "empty"),
    (lambda: tamper_signature(build_csr(uris=[ALICE.uri])), grpc.StatusCode.INVALID_ARGUMENT,
     "csr_bad_signature", "signature"),
    (lambda: build_csr(small_curve_key(), uris=[ALICE.uri]), grpc.StatusCode.INVALID_ARGUMENT,
     "csr_weak_key", "P-256"),
    (lambda: build_csr(uris=[ALICE.uri], ca=True), grpc.StatusCode.PERMISSION_DENIED,
     "csr_ca_requested", "CA:true"),
    (lambda: build_csr(san=False), grpc.StatusCode.INVALID_ARGUMENT, "csr_no_san", "subjectAltName"),
    (lambda: build_csr(uris=[ALICE.uri], dns=["evil.example.com"]), grpc.StatusCode.PERMISSION_DENIED,
     "csr_extra_san", "DNS:evil.example.com"),
])
async def test_csr_refusals(citadel, csr, code, reason, words):
    await refused(citadel, csr(), mint(citadel, ALICE), code, reason, words)


async def test_negative_ttl_is_invalid(citadel):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(citadel, make_csr(KeyType.EC_P256.generate(), ALICE), mint(citadel, ALICE), ttl=-1)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("token, reason", [
    (lambda app: None, "no_credentials"),
    (lambda app: mint(app, ALICE, ttl=60, now=time.time() - 3600), "token_expired"),
    (lambda app: "garbage", "token_malformed"),
    (lambda app: _foreign_token(), "token_unknown_issuer"),
    (lambda app: _forged_token(app), "token_bad_signature"),
])
async def test_token_refusals_are_unauthenticated(citadel, token, reason):
    await refused(citadel, make_csr(KeyType.EC_P256.generate(), ALICE), token(citadel),
                  grpc.StatusCode.UNAUTHENTICATED, reason)


def _foreign_token() -> str:
    import tempfile
    from pathlib import Path

    from isthmus.citadel.authn.mesh_tokens import MeshTokenKey
    other = MeshTokenKey.load_or_create(Path(tempfile.mkdtemp()))
    return other.mint(SpiffeId("other.mesh", "team-a", "alice"), 3600, time.time())


def _forged_token(app) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec

    from isthmus.citadel.authn.mesh_tokens import MeshTokenKey
    return MeshTokenKey(ec.generate_private_key(ec.SECP256R1()), app.token_key.jwk).mint(ALICE, 3600, time.time())


async def test_health_and_trust_bundle(citadel, make_client):
    async with grpc.aio.insecure_channel(f"127.0.0.1:{citadel.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "istio.v1.auth.IstioCertificateService"):
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
    bundle = await make_client(citadel).trust_bundle()
    assert bundle.trust_domain == "cluster.local"
    assert bundle.roots == citadel.authority.bundle.roots and len(bundle.roots) == 1


async def renew_over_mtls(app, client, identity_key, chain, csr_identity):
    return await client.renew_with_certificate(
        make_csr(KeyType.EC_P256.generate(), csr_identity), 600, key_pem=key_pem(identity_key),
        chain_pem="".join(chain[:-1]).encode(), roots_pem=app.authority.bundle.pem().encode())


async def test_renewal_with_current_certificate_over_mtls(citadel, make_client):
    key = KeyType.EC_P256.generate()
    chain = await make_client(citadel, ALICE).create_certificate(make_csr(key, ALICE), 600)
    tokenless = make_client(citadel)
    renewed = await renew_over_mtls(citadel, tokenless, key, chain, ALICE)
    assert leaf_of(renewed).serial_number != leaf_of(chain).serial_number
    assert citadel.metrics.value("citadel_certs_signed_total", auth="mtls") == 1
    # the certificate proves ALICE only
    with pytest.raises(RpcError) as info:
        await renew_over_mtls(citadel, tokenless, key, chain, BOB)
    assert info.value.code == StatusCode.PERMISSION_DENIED


async def test_mtls_listener_refuses_certificates_from_another_ca(citadel, make_citadel, tmp_path, make_client):
    stranger = await make_citadel(data_dir=tmp_path / "stranger")
    key = KeyType.EC_P256.generate()
    chain = await make_client(stranger, ALICE).create_certificate(make_csr(key, ALICE), 600)
    with pytest.raises(RpcError) as info:
        await make_client(citadel).renew_with_certificate(
            make_csr(KeyType.EC_P256.generate(), ALICE), 600, key_pem=key_pem(key), chain_pem=chain[0].encode(),
            roots_pem=citadel.authority.bundle.pem().encode())
    assert info.value.code == StatusCode.UNAVAILABLE  # the TLS handshake fails


async def test_plugin_ca_from_data_dir(make_citadel, tmp_path, make_client):
    from .helpers import write_plugin_cacerts
    root, inter = write_plugin_cacerts(tmp_path / "citadel" / "cacerts")
    app = await make_citadel()
    chain = await make_client(app, ALICE).create_certificate(make_csr(KeyType.EC_P256.generate(), ALICE), 600)
    assert [x509.load_pem_x509_certificate(p.encode()) for p in chain[1:]] == [inter, root]


async def test_root_rotation_is_picked_up_without_restart(citadel, make_client):
    from isthmus.citadel.pki.store import SelfSignedSource
    client = make_client(citadel, ALICE)
    key = KeyType.EC_P256.generate()
    before = await client.create_certificate(make_csr(key, ALICE), 600)
    SelfSignedSource(citadel.config.data_dir, "cluster.local").rotate(time.time())
    assert citadel.refresh()
    after = await client.create_certificate(make_csr(KeyType.EC_P256.generate(), ALICE), 600)
    assert before[-1] != after[-1]
    bundle = await client.trust_bundle()
    assert bundle.roots == (after[-1], before[-1])
    # a certificate from the old root still renews over mTLS (the listener trusts both roots,
    # and presents a serving cert from the new one)
    renewed = await renew_over_mtls(citadel, make_client(citadel), key, before, ALICE)
    assert renewed[-1] == after[-1]
