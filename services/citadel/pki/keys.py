"""Key types citadel and workloads use, and how key material is written to disk.

`KeyType` names the two supported algorithms (ECDSA P-256, the default, and RSA 2048);
`write_private` creates files readable by the owner only (0600) from the first byte.
cryptography is imported on first use: the sidecar's agent names key types and writes
files without loading it (its keys are made in a child process, pki/keygen.py).
"""
from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def __getattr__(name: str) -> Any:
    if name == "PrivateKey":  # `from ...keys import PrivateKey` at run time
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        return ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class KeyType(str, enum.Enum):
    EC_P256 = "ec-p256"
    RSA_2048 = "rsa-2048"

    def generate(self) -> PrivateKey:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        if self is KeyType.EC_P256:
            return ec.generate_private_key(ec.SECP256R1())
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def signature_hash(key: PrivateKey) -> hashes.HashAlgorithm:
    """SHA-384 for P-384/P-521 signers, SHA-256 otherwise (what Istio's CA does)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def key_pem(key: PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_key(data: bytes, source: str) -> PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{source}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ValueError(f"{source}: only ECDSA and RSA keys are supported")
    return key


def write_private(path: Path, data: bytes) -> None:
    """Write `data` atomically to `path` with mode 0600 (never briefly world-readable)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
