"""Shared test helpers for citadel: CSRs of every shape, tokens, plug-in CA dirs, openssl."""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from isthmus.citadel.pki.issue import cert_pem, create_intermediate, create_root
from isthmus.citadel.pki.keys import KeyType, key_pem
from isthmus.citadel.spiffe import SpiffeId

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl CLI not installed")

ALICE = SpiffeId("cluster.local", "team-a", "alice")
BOB = SpiffeId("cluster.local", "team-b", "bob")


def build_csr(key=None, *, uris=(), dns=(), ca: bool | None = None, san: bool = True) -> str:
    key = key or KeyType.EC_P256.generate()
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    names = [x509.UniformResourceIdentifier(u) for u in uris] + [x509.DNSName(d) for d in dns]
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=True)
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM).decode()


def tamper_signature(csr_pem: str) -> str:
    """Same CSR with one bit of its signature flipped."""
    der = bytearray(x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01
    import base64
    import textwrap
    body = "\n".join(textwrap.wrap(base64.b64encode(bytes(der)).decode(), 64))
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n"


def write_plugin_cacerts(directory: Path, trust_domain: str = "cluster.local",
                         key_type: KeyType = KeyType.EC_P256) -> tuple[x509.Certificate, x509.Certificate]:
    """An Istio `cacerts` dir: an external root and an intermediate it signed."""
    now = time.time()
    root_key = key_type.generate()
    root = create_root(root_key, trust_domain, now, common_name="Corp root CA")
    inter_key = key_type.generate()
    inter = create_intermediate(inter_key, root_key, root, trust_domain, now, common_name="Mesh intermediate")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca-cert.pem").write_text(cert_pem(inter))
    (directory / "ca-key.pem").write_bytes(key_pem(inter_key))
    (directory / "root-cert.pem").write_text(cert_pem(root))
    (directory / "cert-chain.pem").write_text(cert_pem(inter) + cert_pem(root))
    return root, inter


def openssl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([OPENSSL, *args], capture_output=True, text=True, timeout=20, cwd=cwd)


def write_chain_files(directory: Path, chain: list[str], roots_pem: str) -> tuple[Path, Path, Path]:
    """leaf.pem, chain.pem (everything after the leaf), root.pem (the bundle)."""
    directory.mkdir(parents=True, exist_ok=True)
    leaf, rest, root = directory / "leaf.pem", directory / "chain.pem", directory / "root.pem"
    leaf.write_text(chain[0])
    rest.write_text("".join(chain[1:]))
    root.write_text(roots_pem)
    return leaf, rest, root


def small_curve_key():
    return ec.generate_private_key(ec.SECP224R1())
