"""SDS for a real Envoy: serves the certificate manager's material over
`envoy.service.secret.v3.SecretDiscoveryService` on a Unix socket, as Istio's agent
does — resource `default` (tls_certificate: chain + key) and `ROOTCA`
(validation_context: the trust bundle) — and the file-backed names pilot uses for
certificate files (`file-cert:CERT~KEY`, `file-root:CA`; shared/file_secrets.py), read
and sent inline. Streams push a new version on every renewal and whenever a named
file changes (polled every FILE_POLL_SECONDS, as Istio's agent watches them).
"""
from __future__ import annotations

import asyncio
import itertools
import os
import zlib
from pathlib import Path

import grpc
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc
from google.protobuf import any_pb2

from isthmus.citadel.certmanager import CertificateManager, WorkloadCert
from isthmus.shared.file_secrets import parse_file_secret
from isthmus.shared.logging import get_logger

log = get_logger(__name__)

SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
WORKLOAD_SECRET = "default"
ROOT_SECRET = "ROOTCA"
FILE_POLL_SECONDS = 2.0


def file_secret(name: str) -> secret_pb2.Secret | None:
    """A `file-cert:` / `file-root:` secret with the files' contents inline; None when
    `name` is not one, or a file cannot be read (logged: Envoy keeps waiting for it)."""
    f = parse_file_secret(name)
    if f is None:
        return None
    try:
        if f.cert:
            return secret_pb2.Secret(name=name, tls_certificate=common_pb2.TlsCertificate(
                certificate_chain={"inline_bytes": Path(f.cert).read_bytes()},
                private_key={"inline_bytes": Path(f.key).read_bytes()}))
        return secret_pb2.Secret(name=name, validation_context=common_pb2.CertificateValidationContext(
            trusted_ca={"inline_bytes": Path(f.ca).read_bytes()}))
    except OSError as exc:
        log.warning("sds: cannot read the files of a secret", secret=name, error=str(exc))
        return None


def files_signature(names: list[str]) -> int:
    """Changes whenever a file named by one of `names` is replaced, rewritten or removed."""
    parts = []
    for name in names:
        f = parse_file_secret(name)
        for path in f.paths if f is not None else ():
            try:
                st = os.stat(path)
                parts.append((path, st.st_ino, st.st_mtime_ns, st.st_size))
            except OSError:
                parts.append((path, None))
    return zlib.crc32(repr(parts).encode())


def build_secret(name: str, cert: WorkloadCert) -> secret_pb2.Secret | None:
    """The Envoy secret `name` for `cert` (None for names we do not serve)."""
    if name == WORKLOAD_SECRET:
        return secret_pb2.Secret(name=name, tls_certificate=common_pb2.TlsCertificate(
            certificate_chain={"inline_bytes": cert.cert_chain_pem},
            private_key={"inline_bytes": cert.key_pem}))
    if name == ROOT_SECRET:
        return secret_pb2.Secret(name=name, validation_context=common_pb2.CertificateValidationContext(
            trusted_ca={"inline_bytes": cert.roots_pem}))
    return file_secret(name)


def _pack(secret: secret_pb2.Secret) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(secret)
    return packed


class SecretDiscoveryService(sds_pb2_grpc.SecretDiscoveryServiceServicer):
    def __init__(self, manager: CertificateManager):
        self.manager = manager
        self._nonces = itertools.count(1)

    def _response(self, names: list[str]) -> discovery_pb2.DiscoveryResponse | None:
        cert = self.manager.current()
        if cert is None:
            return None
        built = {n: build_secret(n, cert) for n in names}
        unknown = [n for n, s in built.items() if s is None]
        if unknown:
            log.warning("sds: secret names not served", names=unknown,
                        served=[WORKLOAD_SECRET, ROOT_SECRET, "file-cert:CERT~KEY", "file-root:CA"])
        version = f"{self.manager.version}.{files_signature(names):08x}"
        return discovery_pb2.DiscoveryResponse(version_info=version, type_url=SECRET_TYPE,
                                               resources=[_pack(s) for s in built.values() if s is not None],
                                               nonce=str(next(self._nonces)))

    async def FetchSecrets(self, request: discovery_pb2.DiscoveryRequest,
                           context: grpc.aio.ServicerContext) -> discovery_pb2.DiscoveryResponse:
        resp = self._response(list(request.resource_names))
        if resp is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "no workload certificate yet; retry")
        return resp

    async def StreamSecrets(self, request_iterator, context: grpc.aio.ServicerContext):
        events: asyncio.Queue = asyncio.Queue()

        async def read_requests() -> None:
            async for req in request_iterator:
                await events.put(req)
            await events.put(None)

        async def watch_changes() -> None:
            seen = self.manager.version
            while True:
                seen = await self.manager.wait_changed(seen)
                await events.put("changed")

        names: list[str] = []
        sent = {"files": files_signature(names)}  # the files as of the last response

        async def watch_files() -> None:
            while True:
                await asyncio.sleep(FILE_POLL_SECONDS)
                if files_signature(names) != sent["files"]:
                    sent["files"] = files_signature(names)
                    await events.put("changed")

        tasks = [asyncio.create_task(read_requests()), asyncio.create_task(watch_changes()),
                 asyncio.create_task(watch_files())]
        try:
            while True:
                event = await events.get()
                if event is None:
                    return
                if isinstance(event, discovery_pb2.DiscoveryRequest):
                    if event.error_detail.code:
                        log.warning("sds: envoy rejected secrets", nonce=event.response_nonce,
                                    error=event.error_detail.message)
                        continue
                    if event.response_nonce and list(event.resource_names) == names:
                        continue  # ACK of a response we sent; pushes follow changes only
                    names = list(event.resource_names)
                if not names:
                    continue
                sent["files"] = files_signature(names)
                resp = self._response(names)
                if resp is not None:
                    yield resp
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class SdsServer:
    """The SDS gRPC server on a Unix socket (mode 0600: only this user's Envoy)."""

    def __init__(self, manager: CertificateManager, socket_path: Path):
        self.socket_path = Path(socket_path)
        self.service = SecretDiscoveryService(manager)
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        if self.socket_path.exists():
            self.socket_path.unlink()  # stale socket from a previous run
        server = grpc.aio.server()
        sds_pb2_grpc.add_SecretDiscoveryServiceServicer_to_server(self.service, server)
        if not server.add_insecure_port(f"unix:{self.socket_path}"):
            raise OSError(f"sds: cannot listen on {self.socket_path}")
        await server.start()
        os.chmod(self.socket_path, 0o600)
        self._server = server
        log.info("sds serving", socket=str(self.socket_path))

    async def stop(self, grace: float | None = 1.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        self.socket_path.unlink(missing_ok=True)
