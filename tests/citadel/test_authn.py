"""Token and peer-certificate authentication, without sockets (except one JWKS over HTTP)."""
import http.server
import json
import threading

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from isthmus.citadel.authn import Credentials, authenticate, bearer_from_metadata
from isthmus.citadel.authn.jwks import FileJwks, HttpJwks, StaticJwks
from isthmus.citadel.authn.jwt_token import JwtAuthenticator, TrustedIssuer
from isthmus.citadel.authn.mesh_tokens import MeshTokenKey, mesh_issuer
from isthmus.citadel.authn.mtls import PeerCertificateAuthenticator
from isthmus.citadel.clock import FakeClock
from isthmus.citadel.errors import Unauthenticated
from isthmus.citadel.pki.issue import cert_pem, create_root, issue_leaf
from isthmus.citadel.pki.keys import KeyType

from .helpers import ALICE

NOW = 1_800_000_000.0


@pytest.fixture
def mesh(tmp_path):
    key = MeshTokenKey.load_or_create(tmp_path)
    clock = FakeClock(NOW)
    authn = JwtAuthenticator([TrustedIssuer(mesh_issuer("cluster.local"), FileJwks(tmp_path / "token-jwks.json"),
                                            "cluster.local")], clock)
    return key, authn, clock


async def caller_of(authn, token):
    return await authn.authenticate(Credentials(bearer=token))


async def reason_of(authn, token) -> str:
    with pytest.raises(Unauthenticated) as info:
        await authn.authenticate(Credentials(bearer=token))
    return info.value.reason


async def test_mesh_token_names_the_identity(mesh, tmp_path):
    key, authn, _ = mesh
    caller = await caller_of(authn, key.mint(ALICE, 3600, NOW))
    assert (caller.identity, caller.method, caller.issuer) == (ALICE, "jwt", "isthmus://cluster.local")
    assert (tmp_path / "token-key.pem").stat().st_mode & 0o777 == 0o600
    jwks = json.loads((tmp_path / "token-jwks.json").read_text())
    assert jwks["keys"][0]["kid"] == key.kid and "d" not in jwks["keys"][0]  # public part only
    assert MeshTokenKey.load_or_create(tmp_path).kid == key.kid  # reused


async def test_no_token_is_not_this_authenticators_business(mesh):
    _, authn, _ = mesh
    assert await authn.authenticate(Credentials()) is None
    with pytest.raises(Unauthenticated, match="no credentials") as info:
        await authenticate([authn], Credentials())
    assert info.value.reason == "no_credentials"


async def test_expired(mesh):
    key, authn, clock = mesh
    token = key.mint(ALICE, 60, NOW)
    await caller_of(authn, token)
    await clock.advance(60 + 30 + 1)  # past exp and the 30 s leeway
    assert await reason_of(authn, token) == "token_expired"


async def test_not_yet_valid(mesh):
    key, authn, _ = mesh
    assert await reason_of(authn, key.mint(ALICE, 3600, NOW + 600)) == "token_not_yet_valid"


async def test_signed_by_another_key_with_the_same_kid(mesh, tmp_path):
    key, authn, _ = mesh
    forged = MeshTokenKey(ec.generate_private_key(ec.SECP256R1()), key.jwk).mint(ALICE, 3600, NOW)
    assert await reason_of(authn, forged) == "token_bad_signature"


async def test_unknown_kid(mesh, tmp_path):
    other = MeshTokenKey.load_or_create(tmp_path / "other")
    assert await reason_of(mesh[1], other.mint(ALICE, 3600, NOW)) == "token_bad_signature"


async def test_unknown_issuer(mesh):
    key, authn, _ = mesh
    other_domain = key.mint(ALICE.__class__("corp.example", "team-a", "alice"), 3600, NOW)
    assert await reason_of(authn, other_domain) == "token_unknown_issuer"


async def test_alg_none_and_hs256_are_refused(mesh):
    key, authn, _ = mesh
    claims = jwt.decode(key.mint(ALICE, 3600, NOW), options={"verify_signature": False})
    assert await reason_of(authn, jwt.encode(claims, None, algorithm="none")) == "token_bad_signature"
    assert await reason_of(authn, jwt.encode(claims, "x" * 32, algorithm="HS256")) == "token_bad_signature"


async def test_wrong_audience(mesh):
    key, authn, _ = mesh
    assert await reason_of(authn, key.mint(ALICE, 3600, NOW, audience="other")) == "token_wrong_audience"


@pytest.mark.parametrize("token", ["", "abc", "a.b.c"])
async def test_malformed(mesh, token):
    assert await reason_of(mesh[1], token) == "token_malformed"


def test_bearer_metadata():
    assert bearer_from_metadata([("authorization", "Bearer abc")]) == "abc"
    assert bearer_from_metadata([("x", "y")]) is None
    with pytest.raises(Unauthenticated):
        bearer_from_metadata([("authorization", "Basic abc")])


def k8s_token(key, kid, *, sub="system:serviceaccount:team-a:alice", ns="team-a", sa="alice", alg="RS256",
              iss="https://kubernetes.default.svc.cluster.local", aud=("istio-ca",)):
    claims = {"iss": iss, "sub": sub, "aud": list(aud), "iat": int(NOW), "exp": int(NOW + 3600),
              "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": sa, "uid": "1234"}}}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def rsa_jwks(kid="k8s-1"):
    key = rsa.generate_private_key(65537, 2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return key, {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": "RS256"}]}


async def test_kubernetes_issuer_through_the_same_path():
    key, jwks = rsa_jwks()
    issuer = TrustedIssuer("https://kubernetes.default.svc.cluster.local", StaticJwks(jwks), "cluster.local")
    authn = JwtAuthenticator([issuer], FakeClock(NOW))
    caller = await caller_of(authn, k8s_token(key, "k8s-1"))
    assert caller.identity == ALICE
    # claims that disagree with sub are refused
    assert await reason_of(authn, k8s_token(key, "k8s-1", ns="team-b")) == "token_no_identity"
    assert await reason_of(authn, k8s_token(key, "k8s-1", sub="alice")) == "token_no_identity"


async def test_kubernetes_jwks_fetched_over_http_and_refreshed_for_a_new_kid():
    key1, jwks1 = rsa_jwks("k1")
    key2, jwks2 = rsa_jwks("k2")
    served = {"doc": jwks1, "hits": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            served["hits"] += 1
            body = json.dumps(served["doc"]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        source = HttpJwks(f"http://127.0.0.1:{httpd.server_port}/openid/v1/jwks", min_refresh=0.0)
        authn = JwtAuthenticator([TrustedIssuer("https://kubernetes.default.svc.cluster.local", source,
                                                "cluster.local")], FakeClock(NOW))
        assert (await caller_of(authn, k8s_token(key1, "k1"))).identity == ALICE
        assert (await caller_of(authn, k8s_token(key1, "k1"))).identity == ALICE
        assert served["hits"] == 1  # cached
        served["doc"] = jwks2  # the API server rotated its key
        assert (await caller_of(authn, k8s_token(key2, "k2"))).identity == ALICE
        assert served["hits"] == 2
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


async def test_unreachable_jwks_is_unauthenticated():
    source = HttpJwks("http://127.0.0.1:9/jwks", timeout=1.0)
    key, _ = rsa_jwks()
    authn = JwtAuthenticator([TrustedIssuer("https://kubernetes.default.svc.cluster.local", source,
                                            "cluster.local")], FakeClock(NOW))
    assert await reason_of(authn, k8s_token(key, "k8s-1")) == "jwks_unavailable"


# -- peer certificates ------------------------------------------------------------------

def peer_cert(uris, not_before=NOW - 60, not_after=NOW + 3600) -> bytes:
    root_key = KeyType.EC_P256.generate()
    root = create_root(root_key, "cluster.local", NOW)
    leaf = issue_leaf(KeyType.EC_P256.generate().public_key(), root_key, root, uris=tuple(uris),
                      not_before=not_before, not_after=not_after)
    return cert_pem(leaf).encode()


async def test_peer_certificate_names_the_identity():
    authn = PeerCertificateAuthenticator("cluster.local", FakeClock(NOW))
    assert await authn.authenticate(Credentials()) is None
    caller = await authn.authenticate(Credentials(peer_cert_pem=peer_cert([ALICE.uri])))
    assert (caller.identity, caller.method) == (ALICE, "mtls")


@pytest.mark.parametrize("cert, reason", [
    (lambda: peer_cert([ALICE.uri], not_after=NOW - 1), "peer_cert_expired"),
    (lambda: peer_cert(["spiffe://corp.example/ns/team-a/sa/alice"]), "peer_cert_invalid"),
    (lambda: peer_cert([]), "peer_cert_invalid"),
    (lambda: b"junk", "peer_cert_invalid"),
])
async def test_peer_certificate_refusals(cert, reason):
    authn = PeerCertificateAuthenticator("cluster.local", FakeClock(NOW))
    with pytest.raises(Unauthenticated) as info:
        await authn.authenticate(Credentials(peer_cert_pem=cert()))
    assert info.value.reason == reason
