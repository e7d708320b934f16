"""TLS contexts for listeners and clusters, built from compiled TLS config + secrets.

`SecretProvider` is what the engine hands the data plane (the agent's workload cert
as `default`, the trust bundle as `ROOTCA`, merged with SDS/ADS secrets); a secret
not there is looked up in the Snapshot. `TlsContexts` caches one `ssl.SSLContext`
per (TLS config, secret versions): after a rotation new handshakes get the new
certificate, established connections keep theirs. Python's ssl cannot match URI
SANs, so `ClientTls.verify(ssl_object)` checks SAN matchers and pinned hashes after
the handshake and returns the failure reason (Envoy's upstream_transport_failure_reason).
"""
from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from typing import Protocol

from isthmus.citadel.pki.der import parse_certificate, parse_pem
from isthmus.proxy.config.common import DataSourceConfig
from isthmus.proxy.config.secrets import SecretConfig
from isthmus.proxy.config.tls import CommonTls, DownstreamTls, SanMatch, UpstreamTls, ValidationConfig
from isthmus.shared.tls import Context, load_chain_pem

_VERSIONS = {"TLSv1.0": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
             "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


class SecretProvider(Protocol):
    """Secrets by SDS name; `version` changes whenever any of them does."""

    def get(self, name: str) -> SecretConfig | None: ...

    @property
    def version(self) -> int: ...


class StaticSecrets:
    """A SecretProvider over a fixed dict (tests, static bootstrap secrets)."""

    def __init__(self, secrets: dict[str, SecretConfig] | None = None) -> None:
        self._secrets = dict(secrets or {})
        self._version = 0

    def get(self, name: str) -> SecretConfig | None:
        return self._secrets.get(name)

    @property
    def version(self) -> int:
        return self._version

    def set(self, secret: SecretConfig) -> None:
        self._secrets[secret.name] = secret
        self._version += 1


class TlsConfigError(Exception):
    """A TLS context cannot be built (secret not received yet, unreadable PEM ...)."""


@dataclass(frozen=True, slots=True, eq=False)
class ServerTls:
    context: ssl.SSLContext
    local_uri_sans: tuple[str, ...]  # for XFCC By=
    validation: ValidationConfig | None
    require_client_certificate: bool


@dataclass(frozen=True, slots=True, eq=False)
class ClientTls:
    context: ssl.SSLContext
    sni: str
    san_matchers: tuple[SanMatch, ...]
    certificate_hashes: tuple[str, ...]
    key: tuple  # identity for connection-pool keys

    def verify(self, sslobj) -> str | None:
        """None when the server certificate passes the SAN/hash checks, else why not."""
        if not self.san_matchers and not self.certificate_hashes:
            return None
        der = sslobj.getpeercert(binary_form=True)
        if der is None:
            return "TLS_error:|no peer certificate"
        return check_peer(PeerCert(der, sslobj.getpeercert()), self.san_matchers, self.certificate_hashes)


class PeerCert:
    """The peer's leaf certificate; SANs and hash computed on first use."""

    __slots__ = ("der", "_parsed", "_uris", "_dns", "_subject", "_sha256")

    def __init__(self, der: bytes, parsed: dict | None = None) -> None:
        self.der = der
        self._parsed = parsed or None
        self._uris: tuple[str, ...] | None = None
        self._dns: tuple[str, ...] = ()
        self._subject: str | None = None
        self._sha256: str | None = None

    def _sans(self) -> None:
        if self._parsed and "subjectAltName" in self._parsed:
            sans = self._parsed["subjectAltName"]
            self._uris = tuple(v for k, v in sans if k == "URI")
            self._dns = tuple(v for k, v in sans if k == "DNS")
            return
        try:
            cert = parse_certificate(self.der)
            self._uris, self._dns = cert.uri_sans, cert.dns_sans
        except ValueError:  # unparsable: no SANs
            self._uris, self._dns = (), ()

    @property
    def uri_sans(self) -> tuple[str, ...]:
        if self._uris is None:
            self._sans()
        return self._uris  # type: ignore[return-value]

    @property
    def dns_sans(self) -> tuple[str, ...]:
        if self._uris is None:
            self._sans()
        return self._dns

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(self.der).hexdigest()
        return self._sha256

    @property
    def subject(self) -> str:
        if self._subject is None:
            try:
                self._subject = parse_certificate(self.der).subject
            except ValueError:
                self._subject = ""
        return self._subject

    @property
    def spiffe_id(self) -> str:
        for uri in self.uri_sans:
            if uri.startswith("spiffe://"):
                return uri
        return ""


def check_peer(peer: PeerCert, matchers: tuple[SanMatch, ...], hashes: tuple[str, ...]) -> str | None:
    if hashes and peer.sha256 not in hashes:
        return "TLS_error:|CERTIFICATE_VERIFY_FAILED:certificate hash mismatch"
    if not matchers:
        return None
    for m in matchers:
        if m.san_type in ("uri", "any") and any(m.match.matches(v) for v in peer.uri_sans):
            return None
        if m.san_type in ("dns", "any") and any(m.match.matches(v) for v in peer.dns_sans):
            return None
    return "TLS_error:|CERTIFICATE_VERIFY_FAILED:SAN matcher mismatch"


def _read(source: DataSourceConfig | None) -> bytes:
    if source is None:
        return b""
    if source.inline is not None:
        return source.inline
    try:
        with open(source.filename, "rb") as f:
            return f.read()
    except OSError as exc:
        raise TlsConfigError(f"cannot read {source.filename}: {exc.strerror}") from None


def _load_chain(ctx: ssl.SSLContext, chain: bytes, key: bytes) -> None:
    try:
        load_chain_pem(ctx, chain, key)
    except (ssl.SSLError, ValueError) as exc:
        raise TlsConfigError(f"bad certificate or key: {exc}") from None


def _uri_sans_of(chain: bytes) -> tuple[str, ...]:
    try:
        return parse_pem(chain)[0].uri_sans
    except ValueError:
        return ()


class TlsContexts:
    """The cache of contexts; see the module docstring."""

    def __init__(self, secrets: SecretProvider) -> None:
        self.secrets = secrets
        self._server: dict[tuple, tuple[object, ServerTls]] = {}
        self._client: dict[tuple, tuple[object, ClientTls]] = {}

    def _secret(self, name: str, snapshot_secrets) -> SecretConfig:
        s = self.secrets.get(name)
        if s is None and snapshot_secrets is not None:
            s = snapshot_secrets.get(name)
        if s is None:
            raise TlsConfigError(f"secret {name!r} not received yet")
        return s

    def _key(self, tls, common: CommonTls, snapshot_secrets) -> tuple:
        names = tuple(r.name for r in common.secret_names())
        ids = tuple(id(self.secrets.get(n) or (snapshot_secrets.get(n) if snapshot_secrets is not None else None)) for n in names)
        return (id(tls), self.secrets.version, ids)

    def _material(self, common: CommonTls, snapshot_secrets) -> tuple[bytes, bytes, bytes, ValidationConfig | None]:
        chain = key = b""
        if common.certificates:
            chain, key = _read(common.certificates[0].chain), _read(common.certificates[0].key)
        elif common.certificate_sds:
            cert = self._secret(common.certificate_sds[0].name, snapshot_secrets).tls_certificate
            if cert is None:
                raise TlsConfigError(f"secret {common.certificate_sds[0].name!r} has no tls_certificate")
            chain, key = _read(cert.chain), _read(cert.key)
        validation = common.validation
        trust = _read(validation.trusted_ca) if validation is not None and validation.trusted_ca else b""
        if common.validation_sds is not None:
            vc = self._secret(common.validation_sds.name, snapshot_secrets).validation_context
            if vc is None:
                raise TlsConfigError(f"secret {common.validation_sds.name!r} has no validation_context")
            trust = trust + _read(vc.trusted_ca) if vc.trusted_ca else trust
            if validation is None:
                validation = vc
            elif not validation.san_matchers and vc.san_matchers:
                validation = vc
        return chain, key, trust, validation

    @staticmethod
    def _common(ctx: ssl.SSLContext, common: CommonTls) -> None:
        if common.min_version:
            ctx.minimum_version = _VERSIONS[common.min_version]
        if common.max_version:
            ctx.maximum_version = _VERSIONS[common.max_version]
        if common.cipher_suites:
            try:
                ctx.set_ciphers(":".join(c.strip("[]") for c in common.cipher_suites if "|" not in c))
            except ssl.SSLError:
                pass  # BoringSSL-only names: keep OpenSSL's defaults
        if common.alpn:
            ctx.set_alpn_protocols(list(common.alpn))

    def server(self, tls: DownstreamTls, snapshot_secrets=None) -> ServerTls:
        key = self._key(tls, tls.common, snapshot_secrets)
        hit = self._server.get(key)
        if hit is not None:
            return hit[1]
        chain, pkey, trust, validation = self._material(tls.common, snapshot_secrets)
        if not chain:
            raise TlsConfigError("no server certificate")
        ctx = Context(ssl.PROTOCOL_TLS_SERVER)
        _load_chain(ctx, chain, pkey)
        if trust:
            try:
                ctx.load_verify_locations(cadata=trust.decode())
            except (ssl.SSLError, ValueError) as exc:
                raise TlsConfigError(f"bad trusted CA: {exc}") from None
            ctx.verify_mode = ssl.CERT_REQUIRED if tls.require_client_certificate else ssl.CERT_OPTIONAL
        elif tls.require_client_certificate:
            raise TlsConfigError("a client certificate is required but no trusted CA is configured")
        self._common(ctx, tls.common)
        out = ServerTls(ctx, _uri_sans_of(chain), validation, tls.require_client_certificate)
        self._trim(self._server)
        self._server[key] = (tls, out)
        return out

    def client(self, tls: UpstreamTls, snapshot_secrets=None) -> ClientTls:
        key = self._key(tls, tls.common, snapshot_secrets)
        hit = self._client.get(key)
        if hit is not None:
            return hit[1]
        chain, pkey, trust, validation = self._material(tls.common, snapshot_secrets)
        ctx = Context(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        if trust:
            try:
                ctx.load_verify_locations(cadata=trust.decode())
            except (ssl.SSLError, ValueError) as exc:
                raise TlsConfigError(f"bad trusted CA: {exc}") from None
            ctx.verify_mode = ssl.CERT_REQUIRED
        else:
            ctx.verify_mode = ssl.CERT_NONE  # Envoy: no validation context, no verification
        if chain:
            _load_chain(ctx, chain, pkey)
        self._common(ctx, tls.common)
        matchers = validation.san_matchers if validation is not None else ()
        hashes = validation.certificate_hashes if validation is not None else ()
        out = ClientTls(ctx, tls.sni, matchers, hashes, key)
        self._trim(self._client)
        self._client[key] = (tls, out)
        return out

    @staticmethod
    def _trim(cache: dict) -> None:
        if len(cache) > 256:  # old secret versions: forget the oldest half
            for k in list(cache)[:128]:
                del cache[k]
