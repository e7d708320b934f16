"""The mesh's own token issuer: an ES256 key in the data dir, published as a JWKS.

`MeshTokenKey.load_or_create(data_dir)` keeps `token-key.pem` (0600) and
`token-jwks.json` (with an RFC 7638 thumbprint `kid`); `mint` makes a
Kubernetes-shaped service-account token that `JwtAuthenticator` accepts.
"""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from isthmus.citadel.authn.jwt_token import CA_AUDIENCE, SA_PREFIX
from isthmus.citadel.pki.keys import key_pem, load_key, write_private, write_public
from isthmus.citadel.spiffe import SpiffeId

KEY_FILE = "token-key.pem"
JWKS_FILE = "token-jwks.json"


def mesh_issuer(trust_domain: str) -> str:
    return f"isthmus://{trust_domain}"


def _public_jwk(key: ec.EllipticCurvePrivateKey) -> dict:
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    required = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    digest = hashlib.sha256(json.dumps(required, separators=(",", ":"), sort_keys=True).encode()).digest()
    kid = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return {**required, "kid": kid, "use": "sig", "alg": "ES256"}


@dataclass(frozen=True)
class MeshTokenKey:
    key: ec.EllipticCurvePrivateKey
    jwk: dict

    @property
    def kid(self) -> str:
        return self.jwk["kid"]

    @classmethod
    def load_or_create(cls, data_dir: Path) -> "MeshTokenKey":
        data_dir = Path(data_dir)
        key_path, jwks_path = data_dir / KEY_FILE, data_dir / JWKS_FILE
        if key_path.exists():
            key = load_key(key_path.read_bytes(), str(key_path))
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{key_path}: the mesh token key must be an EC P-256 key (ES256)")
        else:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = ec.generate_private_key(ec.SECP256R1())
            write_private(key_path, key_pem(key))
        jwk = _public_jwk(key)
        doc = {"keys": [jwk]}
        if not jwks_path.exists() or json.loads(jwks_path.read_text()) != doc:
            write_public(jwks_path, json.dumps(doc, indent=2).encode())
        return cls(key, jwk)

    def mint(self, identity: SpiffeId, ttl: int, now: float, audience: str = CA_AUDIENCE) -> str:
        ns, sa = identity.namespace, identity.service_account
        claims = {
            "iss": mesh_issuer(identity.trust_domain),
            "sub": f"{SA_PREFIX}{ns}:{sa}",
            "aud": [audience],
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + ttl),
            "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": sa}},
        }
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})
