"""Loopback stand-ins for the gateway tests: an HTTPS backend (it terminates TLS itself, as an
"external" HTTPS service or a passthrough target would), a TCP echo server, and clients:
`curl` (with `--resolve` for SNI) and Python's ssl for what curl cannot show."""
from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.backends import Backend
from tests.helpers.tlsca import Leaf

CURL = shutil.which("curl")


class TlsBackend(Backend):
    """The JSON-echo Backend behind TLS with `leaf` (and, optionally, client certificates required)."""

    def __init__(self, name: str, leaf: Leaf, directory: Path, client_ca: bytes | None = None):
        super().__init__(name)
        cert, key = leaf.write(directory, name)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if client_ca is not None:
            ca = directory / f"{name}-client-ca.crt"
            ca.write_bytes(client_ca)
            ctx.load_verify_locations(ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)


class EchoServer:
    """TCP: sends back what it receives, prefixed with its name."""

    def __init__(self, name: str):
        self.name = name
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> "EchoServer":
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        with conn:
            try:
                data = conn.recv(65536)
                if data:
                    conn.sendall(f"{self.name}:".encode() + data)
            except OSError:
                pass

    def stop(self) -> None:
        self._stop = True
        self.sock.close()


@dataclass
class CurlResult:
    code: int  # curl's exit code (0: a response was received)
    status: int  # HTTP status, 0 when none
    headers: str
    body: str
    stderr: str


def curl(url: str, *args: str, resolve: tuple[str, int] | None = None, timeout: float = 10.0) -> CurlResult:
    """`curl -sS` with `--resolve HOST:PORT:127.0.0.1`; the status line and headers are returned apart."""
    argv = [CURL or "curl", "-sS", "-D", "-", "--max-time", str(timeout)]
    if resolve is not None:
        argv += ["--resolve", f"{resolve[0]}:{resolve[1]}:127.0.0.1"]
    res = subprocess.run([*argv, *args, url], capture_output=True, timeout=timeout + 5)
    out = res.stdout.decode(errors="replace")
    head, _, body = out.partition("\r\n\r\n")
    while head.startswith("HTTP/1.1 100") and body:  # 100 Continue
        head, _, body = body.partition("\r\n\r\n")
    head = head.replace("\r\n", "\n")
    status = 0
    first = head.split("\n", 1)[0]
    if first.startswith("HTTP/"):
        parts = first.split()
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return CurlResult(res.returncode, status, head, body, res.stderr.decode(errors="replace"))


def tls_client(port: int, server_name: str, ca: Path, payload: bytes, cert: tuple[Path, Path] | None = None,
               timeout: float = 5.0) -> tuple[bytes, ssl.SSLSocket | None]:
    """Open TLS to 127.0.0.1:port with SNI `server_name`, send `payload`, read the answer."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(*cert)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as s:
            s.sendall(payload)
            chunks = []
            try:
                while True:
                    data = s.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
                    if payload and b"\r\n\r\n" not in payload:
                        break
            except (socket.timeout, ssl.SSLError, OSError):
                pass
            return b"".join(chunks), None


def served_certificate(port: int, server_name: str) -> bytes:
    """The DER certificate a TLS server presents for `server_name` (no verification)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as s:
            return s.getpeercert(binary_form=True) or b""
