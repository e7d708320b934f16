"""Bearer-token authentication: a JWT from a trusted issuer names a namespace and
service account, in Kubernetes' claim shape (`sub: system:serviceaccount:NS:SA`,
`kubernetes.io: {namespace, serviceaccount: {name}}`).

The mesh's own tokens and Kubernetes service-account tokens take the same path;
they differ only in their `TrustedIssuer` (issuer name, JWKS source, audiences).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import jwt

from isthmus.citadel.authn import Caller, Credentials
from isthmus.citadel.authn.jwks import JwksSource
from isthmus.citadel.clock import Clock, SystemClock
from isthmus.citadel.errors import Unauthenticated
from isthmus.citadel.spiffe import SpiffeId

CA_AUDIENCE = "istio-ca"  # the audience Istio agents request for CA tokens
SA_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class TrustedIssuer:
    issuer: str
    jwks: JwksSource
    trust_domain: str
    audiences: tuple[str, ...] = (CA_AUDIENCE,)  # the token's aud must name one; () = not checked
    algorithms: tuple[str, ...] = ("ES256", "RS256")


def identity_from_claims(claims: dict, trust_domain: str) -> SpiffeId:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.startswith(SA_PREFIX) or sub.count(":") != 3:
        raise Unauthenticated("token_no_identity",
                              f"token sub {sub!r}: must be {SA_PREFIX}<namespace>:<service-account>")
    namespace, sa = sub[len(SA_PREFIX):].split(":")
    k8s = claims.get("kubernetes.io")
    if isinstance(k8s, dict):
        named = (k8s.get("namespace"), (k8s.get("serviceaccount") or {}).get("name"))
        if named != (namespace, sa):
            raise Unauthenticated("token_no_identity",
                                  f"token claims disagree: sub names {namespace}/{sa}, kubernetes.io names "
                                  f"{named[0]}/{named[1]}")
    try:
        return SpiffeId(trust_domain, namespace, sa)
    except ValueError as exc:
        raise Unauthenticated("token_no_identity", f"token identity: {exc}") from exc


class JwtAuthenticator:
    name = "bearer JWT"

    def __init__(self, issuers: Sequence[TrustedIssuer], clock: Clock | None = None, leeway: float = 30.0):
        self._issuers = {i.issuer: i for i in issuers}
        self.clock = clock or SystemClock()
        self.leeway = leeway

    async def authenticate(self, creds: Credentials) -> Caller | None:
        token = creds.bearer
        if token is None:
            return None
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthenticated("token_malformed", f"token: not a JWT ({exc})") from exc
        iss = unverified.get("iss")
        issuer = self._issuers.get(iss)
        if issuer is None:
            raise Unauthenticated("token_unknown_issuer",
                                  f"token issuer {iss!r} is not trusted (trusted: {', '.join(sorted(self._issuers))})")
        alg = header.get("alg")
        if alg not in issuer.algorithms:
            raise Unauthenticated("token_bad_signature",
                                  f"token algorithm {alg!r} not accepted for {iss} ({', '.join(issuer.algorithms)})")
        try:
            key = await issuer.jwks.key(header.get("kid"))
        except (OSError, ValueError) as exc:
            raise Unauthenticated("jwks_unavailable", f"token issuer {iss}: cannot read its JWKS ({exc})") from exc
        if key is None:
            raise Unauthenticated("token_bad_signature",
                                  f"token key id {header.get('kid')!r} is not in the JWKS of {iss}")
        try:
            claims = jwt.decode(token, key.key, algorithms=[alg],
                                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                                         "verify_aud": False, "verify_iss": False})
        except jwt.PyJWTError as exc:
            raise Unauthenticated("token_bad_signature", f"token signature does not verify for {iss} ({exc})") from exc
        self._check_times(claims)
        self._check_audience(claims, issuer)
        return Caller(identity_from_claims(claims, issuer.trust_domain), "jwt", iss)

    def _check_times(self, claims: dict) -> None:
        now = self.clock.time()
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)):
            raise Unauthenticated("token_malformed", "token has no numeric exp claim")
        if now > exp + self.leeway:
            raise Unauthenticated("token_expired", f"token expired {int(now - exp)} s ago; mint a new one")
        nbf = claims.get("nbf")
        if isinstance(nbf, (int, float)) and now + self.leeway < nbf:
            raise Unauthenticated("token_not_yet_valid", f"token not valid for another {int(nbf - now)} s")

    @staticmethod
    def _check_audience(claims: dict, issuer: TrustedIssuer) -> None:
        if not issuer.audiences:
            return
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else list(aud or [])
        if not set(auds) & set(issuer.audiences):
            raise Unauthenticated("token_wrong_audience",
                                  f"token audience {auds} does not include {' or '.join(issuer.audiences)}")
