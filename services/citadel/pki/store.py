"""Where the CA's key material comes from: a self-signed root in the data dir, or an
Istio-style plug-in intermediate (`cacerts`).

Data dir layout (keys 0600):
    trust-domain         the mesh's trust domain, fixed at first start
    root-key.pem         self-signed root key            root-cert.pem   its certificate
    previous-roots.pem   roots retired by `rotate_root`, still in the trust bundle
    token-key.pem        mesh token signing key          token-jwks.json its public JWKS
Plug-in layout (Istio's): ca-cert.pem ca-key.pem root-cert.pem cert-chain.pem; issued
chains end at that root, and every certificate in root-cert.pem is trusted.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Hashable, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from isthmus.citadel.pki.bundle import TrustBundle, make_bundle
from isthmus.citadel.pki.issue import cert_pem, create_root, is_self_signed, load_certs
from isthmus.citadel.pki.keys import KeyType, PrivateKey, key_pem, load_key, write_private, write_public

DEFAULT_TRUST_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class CaMaterial:
    signing_key: PrivateKey
    chain: tuple[x509.Certificate, ...]  # signing cert first, its root last
    bundle: TrustBundle
    description: str

    @property
    def signing_cert(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def chain_pems(self) -> tuple[str, ...]:
        return tuple(cert_pem(c) for c in self.chain)


class CaSource(Protocol):
    def load(self, now: float) -> CaMaterial: ...

    def stamp(self) -> Hashable:
        """Changes whenever the files behind `load` change (cheap: stat only)."""


def _stamp(paths: list[Path]) -> tuple:
    out = []
    for p in paths:
        try:
            st = p.stat()
            out.append((p.name, st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            out.append((p.name, None, None))
    return tuple(out)


def resolve_trust_domain(data_dir: Path, requested: str | None) -> str:
    """The data dir's trust domain; written on first use, a mismatch is an error."""
    path = data_dir / "trust-domain"
    if path.exists():
        stored = path.read_text().strip()
        if requested and requested != stored:
            raise ValueError(f"data dir {data_dir} belongs to trust domain {stored!r}, not {requested!r}; "
                             "use another --data-dir or drop --trust-domain")
        return stored
    domain = requested or DEFAULT_TRUST_DOMAIN
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_public(path, f"{domain}\n".encode())
    return domain


def _check_pair(key: PrivateKey, cert: x509.Certificate, source: str) -> None:
    pub = lambda k: k.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # noqa: E731
    if pub(key.public_key()) != pub(cert.public_key()):
        raise ValueError(f"{source}: private key does not match the certificate")
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise ValueError(f"{source}: certificate is not a CA (basicConstraints CA:true missing)")


class SelfSignedSource:
    """A root created on first start (ECDSA P-256 or RSA 2048) and reused afterwards."""

    def __init__(self, data_dir: Path, trust_domain: str, key_type: KeyType = KeyType.EC_P256):
        self.data_dir = Path(data_dir)
        self.trust_domain = trust_domain
        self.key_type = key_type

    @property
    def _paths(self) -> list[Path]:
        return [self.data_dir / n for n in ("root-key.pem", "root-cert.pem", "previous-roots.pem")]

    def stamp(self) -> Hashable:
        return _stamp(self._paths)

    def load(self, now: float) -> CaMaterial:
        key_path, cert_path, prev_path = self._paths
        if not key_path.exists() and not cert_path.exists():
            self._write_new_root(now)
        key = load_key(key_path.read_bytes(), str(key_path))
        root = load_certs(cert_path.read_bytes(), str(cert_path))[0]
        _check_pair(key, root, str(cert_path))
        previous = load_certs(prev_path.read_bytes(), str(prev_path)) if prev_path.exists() else []
        return CaMaterial(key, (root,), make_bundle(self.trust_domain, [root, *previous], now),
                          f"self-signed root in {self.data_dir}")

    def rotate(self, now: float) -> x509.Certificate:
        """Make a new root the signer; the old one stays in the bundle until it expires."""
        _, cert_path, prev_path = self._paths
        old = cert_path.read_bytes() if cert_path.exists() else b""
        prev = prev_path.read_bytes() if prev_path.exists() else b""
        write_public(prev_path, old + prev)
        return self._write_new_root(now)

    def _write_new_root(self, now: float) -> x509.Certificate:
        key_path, cert_path, _ = self._paths
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = self.key_type.generate()
        root = create_root(key, self.trust_domain, now)
        write_private(key_path, key_pem(key))
        write_public(cert_path, cert_pem(root).encode())
        return root


class PluginSource:
    """Istio's `cacerts` layout: an intermediate signs, chains end at root-cert.pem."""

    FILES = ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem")

    def __init__(self, cacerts_dir: Path, trust_domain: str):
        self.dir = Path(cacerts_dir)
        self.trust_domain = trust_domain

    def stamp(self) -> Hashable:
        return _stamp([self.dir / n for n in self.FILES])

    def load(self, now: float) -> CaMaterial:
        d = self.dir
        for required in ("ca-cert.pem", "ca-key.pem", "root-cert.pem"):
            if not (d / required).exists():
                raise ValueError(f"plug-in CA {d}: {required} missing (need ca-cert.pem, ca-key.pem, "
                                 "root-cert.pem and optionally cert-chain.pem)")
        ca_cert = load_certs((d / "ca-cert.pem").read_bytes(), str(d / "ca-cert.pem"))[0]
        key = load_key((d / "ca-key.pem").read_bytes(), str(d / "ca-key.pem"))
        _check_pair(key, ca_cert, str(d / "ca-cert.pem"))
        roots = load_certs((d / "root-cert.pem").read_bytes(), str(d / "root-cert.pem"))
        chain_file = d / "cert-chain.pem"
        chain = load_certs(chain_file.read_bytes(), str(chain_file)) if chain_file.exists() else []
        if not chain or chain[0] != ca_cert:
            chain.insert(0, ca_cert)
        if not is_self_signed(chain[-1]):
            chain.append(_issuer_among(chain[-1], roots, d))
        for child, parent in zip(chain, chain[1:]):
            try:
                child.verify_directly_issued_by(parent)
            except (ValueError, TypeError, InvalidSignature) as exc:
                raise ValueError(f"plug-in CA {d}: {child.subject.rfc4514_string()} is not signed by "
                                 f"{parent.subject.rfc4514_string()} ({exc or 'bad signature'})") from exc
        if chain[-1] not in roots:
            roots.insert(0, chain[-1])
        return CaMaterial(key, tuple(chain), make_bundle(self.trust_domain, roots, now),
                          f"plug-in intermediate from {d}")


def _issuer_among(cert: x509.Certificate, roots: list[x509.Certificate], d: Path) -> x509.Certificate:
    for root in roots:
        try:
            cert.verify_directly_issued_by(root)
            return root
        except (ValueError, TypeError, InvalidSignature):
            continue
    raise ValueError(f"plug-in CA {d}: no certificate in root-cert.pem signed {cert.subject.rfc4514_string()}")
