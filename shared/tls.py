"""TLS helpers that the data plane and the service clients share."""
from __future__ import annotations

import os
import ssl


class Context(ssl.SSLContext):
    """An SSLContext that hands an ASCII server name to OpenSSL as it is. The stdlib passes
    every name (an IP literal or "" too) through the idna codec, whose first use loads
    unicodedata and stringprep (~0.4 MiB in every sidecar). For ASCII the codec returns the
    labels unchanged after checking their lengths, which is what this checks; any other
    name still goes through the codec."""

    def _encode_hostname(self, hostname):  # type: ignore[override]
        if isinstance(hostname, str) and hostname.isascii():
            labels = hostname.rstrip(".").split(".") if hostname else []
            if all(0 < len(label) < 64 for label in labels):
                return hostname
        return super()._encode_hostname(hostname)


def load_chain_pem(ctx: ssl.SSLContext, chain: bytes, key: bytes) -> None:
    """Load a PEM certificate chain and key held in memory. ssl reads them only from a
    path: an anonymous memory file (memfd, never on disk), or where there is none a
    private (0600) temp file, removed at once."""
    data = chain.rstrip(b"\n") + b"\n" + key
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("isthmus-tls", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    import tempfile

    fd, path = tempfile.mkstemp(prefix="isthmus-tls-", suffix=".pem")
    try:
        os.write(fd, data)
        os.close(fd)
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)
