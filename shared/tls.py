"""TLS helpers that the data plane and the service clients share."""
from __future__ import annotations

import os
import ssl
import tempfile


def load_chain_pem(ctx: ssl.SSLContext, chain: bytes, key: bytes) -> None:
    """Load a PEM certificate chain and key held in memory: ssl reads them only from
    files, so through a private (0600) temp file, removed at once."""
    fd, path = tempfile.mkstemp(prefix="isthmus-tls-", suffix=".pem")
    try:
        os.write(fd, chain.rstrip(b"\n") + b"\n" + key)
        os.close(fd)
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)
