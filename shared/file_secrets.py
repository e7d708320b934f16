"""The agent's file-backed SDS secret names, as Istio's agent serves them.

Pilot names certificate files from a DestinationRule (`clientCertificate`...) or a
Gateway server (`serverCertificate`...) as SDS resources the workload's agent serves by
reading the files: `file-cert:CERT~KEY` (a certificate chain and its key) and
`file-root:CA` (a trust bundle; `file-root:system` is the system trust store). Both
engines' agents use this one parser: the python data plane's secret provider and the
SDS server a real Envoy reads.
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass

FILE_CERT = "file-cert:"
FILE_ROOT = "file-root:"


@dataclass(frozen=True)
class FileSecret:
    """`cert` + `key` for a file-cert name, `ca` for a file-root name."""

    name: str
    cert: str = ""
    key: str = ""
    ca: str = ""

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.cert, self.key) if self.cert else (self.ca,)


def system_roots_file() -> str:
    paths = ssl.get_default_verify_paths()
    return paths.cafile or paths.openssl_cafile or ""


def is_file_secret(name: str) -> bool:
    return name.startswith((FILE_CERT, FILE_ROOT))


def parse_file_secret(name: str) -> FileSecret | None:
    """The files a `file-cert:` / `file-root:` name stands for; None when it is not one,
    or is malformed (`file-cert:` without `~KEY`)."""
    if name.startswith(FILE_CERT):
        cert, sep, key = name[len(FILE_CERT):].partition("~")
        return FileSecret(name, cert=cert, key=key) if sep and cert and key else None
    if name.startswith(FILE_ROOT):
        path = name[len(FILE_ROOT):]
        if path == "system":
            path = system_roots_file()
        return FileSecret(name, ca=path) if path else None
    return None
