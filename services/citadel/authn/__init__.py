"""Who is calling: authenticators behind one protocol, tried in order.

An authenticator returns None when the request carries no credentials of its kind,
a `Caller` when they prove an identity, and raises `Unauthenticated` when they are
present but bad (expired, wrongly signed, unknown issuer, ...).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from isthmus.citadel.errors import Unauthenticated
from isthmus.citadel.spiffe import SpiffeId


@dataclass(frozen=True)
class Credentials:
    """What a request brought: a bearer token and/or a TLS client certificate
    (the latter already verified against the trust bundle by the TLS layer)."""

    bearer: str | None = None
    peer_cert_pem: bytes | None = None


@dataclass(frozen=True)
class Caller:
    identity: SpiffeId
    method: str  # "jwt" or "mtls"
    issuer: str  # token issuer, or the certificate issuer's subject


class Authenticator(Protocol):
    name: str

    async def authenticate(self, creds: Credentials) -> Caller | None: ...


async def authenticate(authenticators: Sequence[Authenticator], creds: Credentials) -> Caller:
    for authn in authenticators:
        caller = await authn.authenticate(creds)
        if caller is not None:
            return caller
    kinds = " or ".join(a.name for a in authenticators) or "none configured"
    raise Unauthenticated("no_credentials",
                          f"no credentials: send 'authorization: Bearer <token>' metadata ({kinds})")


def bearer_from_metadata(metadata: Sequence[tuple[str, str | bytes]]) -> str | None:
    for key, value in metadata:
        if key.lower() != "authorization":
            continue
        text = value.decode() if isinstance(value, bytes) else value
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        raise Unauthenticated("token_malformed", "authorization metadata: expected 'Bearer <token>'")
    return None
