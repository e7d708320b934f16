"""TLS helpers that the data plane and the service clients share."""
from __future__ import annotations

import os
import ssl


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
