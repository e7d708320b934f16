"""The in-house gRPC client against a real grpcio server on 127.0.0.1: unary and
streaming calls, statuses and their messages, limits, deadlines, lost servers, mTLS
with the server-name check; and why it exists — no grpcio in the sidecar."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import grpc
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from isthmus.citadel.pki.issue import create_root, issue_leaf
from isthmus.citadel.pki.keys import KeyType, key_pem
from isthmus.shared.service.grpc_client import Channel, RpcError, StatusCode, mtls_context


def _unary(fn):
    return grpc.unary_unary_rpc_method_handler(fn)


async def echo(request: bytes, context) -> bytes:
    return b"echo:" + request


async def fail(request: bytes, context) -> bytes:
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no entry for café 100% sure")


async def slow(request: bytes, context) -> bytes:
    await asyncio.sleep(2)
    return b"late"


async def big(request: bytes, context) -> bytes:
    return b"x" * int(request)


async def metadata(request: bytes, context) -> bytes:
    return dict(context.invocation_metadata()).get("authorization", "").encode()


async def chat(request_iterator, context):
    async for msg in request_iterator:
        if msg == b"stop":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "told to stop")
        yield msg.upper()


HANDLERS = grpc.method_handlers_generic_handler("test.Echo", {
    "Echo": _unary(echo), "Fail": _unary(fail), "Slow": _unary(slow), "Big": _unary(big),
    "Metadata": _unary(metadata), "Chat": grpc.stream_stream_rpc_method_handler(chat),
})


async def start_server(creds=None) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((HANDLERS,))
    port = server.add_secure_port("127.0.0.1:0", creds) if creds else server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


@pytest.fixture
async def plain():
    server, port = await start_server()
    channel = Channel(f"127.0.0.1:{port}", max_receive=64 * 1024)
    yield server, channel
    await channel.close()
    await server.stop(None)


async def test_unary_and_metadata(plain):
    _, ch = plain
    assert await ch.unary("/test.Echo/Echo", b"hi", timeout=5) == b"echo:hi"
    assert await ch.unary("/test.Echo/Echo", b"", timeout=5) == b"echo:"  # an empty message is a message
    token = await ch.unary("/test.Echo/Metadata", b"", metadata=[("authorization", "Bearer t0k")], timeout=5)
    assert token == b"Bearer t0k"


async def test_concurrent_calls_share_one_connection(plain):
    _, ch = plain
    await ch.unary("/test.Echo/Echo", b"first", timeout=5)
    conn = ch._conn
    results = await asyncio.gather(*(ch.unary("/test.Echo/Echo", b"%d" % i, timeout=5) for i in range(50)))
    assert results == [b"echo:%d" % i for i in range(50)]
    assert ch._conn is conn and not conn.calls  # one connection; every finished call forgotten


async def test_error_status_and_percent_encoded_message(plain):
    _, ch = plain
    with pytest.raises(RpcError) as e:
        await ch.unary("/test.Echo/Fail", b"", timeout=5)
    assert e.value.code == StatusCode.PERMISSION_DENIED
    assert e.value.details == "no entry for café 100% sure"


async def test_unknown_method_is_unimplemented(plain):
    _, ch = plain
    with pytest.raises(RpcError) as e:
        await ch.unary("/test.Echo/Nope", b"", timeout=5)
    assert e.value.code == StatusCode.UNIMPLEMENTED


async def test_deadline_exceeded_and_channel_still_usable(plain):
    _, ch = plain
    with pytest.raises(RpcError) as e:
        await ch.unary("/test.Echo/Slow", b"", timeout=0.2)
    assert e.value.code == StatusCode.DEADLINE_EXCEEDED
    assert await ch.unary("/test.Echo/Echo", b"after", timeout=5) == b"echo:after"


async def test_message_over_max_receive_is_refused(plain):
    _, ch = plain
    assert await ch.unary("/test.Echo/Big", b"60000", timeout=5) == b"x" * 60000
    with pytest.raises(RpcError) as e:
        await ch.unary("/test.Echo/Big", b"70000", timeout=5)
    assert e.value.code == StatusCode.RESOURCE_EXHAUSTED and "70000" in e.value.details
    assert await ch.unary("/test.Echo/Echo", b"ok", timeout=5) == b"echo:ok"


async def test_large_messages_cross_flow_control_windows():
    server, port = await start_server()
    ch = Channel(f"127.0.0.1:{port}", max_receive=32 * 1024 * 1024)
    try:
        for size in (5 * 1024 * 1024, 20 * 1024 * 1024):  # above the stream and the connection window
            assert len(await ch.unary("/test.Echo/Big", b"%d" % size, timeout=20)) == size
    finally:
        await ch.close()
        await server.stop(None)


async def test_bidi_stream(plain):
    _, ch = plain
    call = await ch.stream("/test.Echo/Chat")
    for word in (b"a", b"bb", b"ccc"):
        await call.write(word)
        assert await call.read() == word.upper()
    await call.done_writing()
    assert await call.read() is None
    assert await call.read() is None  # the end stays the end

    call = await ch.stream("/test.Echo/Chat")
    await call.write(b"x")
    assert await call.read() == b"X"
    await call.write(b"stop")
    with pytest.raises(RpcError) as e:
        await call.read()
    assert e.value.code == StatusCode.FAILED_PRECONDITION and e.value.details == "told to stop"


async def test_cancel_ends_the_call_not_the_channel(plain):
    _, ch = plain
    call = await ch.stream("/test.Echo/Chat")
    await call.write(b"x")
    assert await call.read() == b"X"
    call.cancel()
    with pytest.raises(RpcError) as e:
        await call.read()
    assert e.value.code == StatusCode.CANCELLED
    assert await ch.unary("/test.Echo/Echo", b"still", timeout=5) == b"echo:still"


async def test_nobody_listening_is_unavailable():
    server, port = await start_server()
    await server.stop(None)
    ch = Channel(f"127.0.0.1:{port}")
    with pytest.raises(RpcError) as e:
        await ch.unary("/test.Echo/Echo", b"", timeout=2)
    assert e.value.code == StatusCode.UNAVAILABLE and str(port) in e.value.details


async def test_server_going_away_ends_streams_and_the_channel_reconnects():
    server, port = await start_server()
    ch = Channel(f"127.0.0.1:{port}")
    call = await ch.stream("/test.Echo/Chat")
    await call.write(b"x")
    assert await call.read() == b"X"
    await server.stop(None)
    with pytest.raises(RpcError) as e:
        await asyncio.wait_for(call.read(), 5)
    assert e.value.code in (StatusCode.UNAVAILABLE, StatusCode.CANCELLED)

    server2 = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server2.add_generic_rpc_handlers((HANDLERS,))
    server2.add_insecure_port(f"127.0.0.1:{port}")
    await server2.start()
    try:
        assert await ch.unary("/test.Echo/Echo", b"back", timeout=5) == b"echo:back"
    finally:
        await ch.close()
        await server2.stop(None)


# ---- mTLS -------------------------------------------------------------------------------

def _pem(cert) -> bytes:
    return cert.public_bytes(Encoding.PEM)


@pytest.fixture(scope="module")
def pki():
    now = time.time()
    root_key = KeyType.EC_P256.generate()
    root = create_root(root_key, "cluster.local", now)
    server_key, client_key = KeyType.EC_P256.generate(), KeyType.EC_P256.generate()
    server = issue_leaf(server_key.public_key(), root_key, root, dns_names=("istiod.istio-system.svc",),
                        uris=("spiffe://cluster.local/ns/istio-system/sa/istiod",), not_before=now - 60,
                        not_after=now + 3600)
    client = issue_leaf(client_key.public_key(), root_key, root, uris=("spiffe://cluster.local/ns/default/sa/a",),
                        not_before=now - 60, not_after=now + 3600)
    return {"root": _pem(root), "server": (_pem(server), key_pem(server_key)),
            "client": (_pem(client), key_pem(client_key))}


@pytest.fixture
async def tls_server(pki):
    chain, key = pki["server"]
    creds = grpc.ssl_server_credentials([(key, chain)], root_certificates=pki["root"], require_client_auth=True)
    server, port = await start_server(creds)
    yield port
    await server.stop(None)


async def test_mtls_with_server_name_check(pki, tls_server):
    ctx = mtls_context(*pki["client"], pki["root"])
    ch = Channel(f"127.0.0.1:{tls_server}", tls=ctx, server_name="istiod.istio-system.svc")
    try:
        assert await ch.unary("/test.Echo/Echo", b"secure", timeout=5) == b"echo:secure"
    finally:
        await ch.close()

    wrong = Channel(f"127.0.0.1:{tls_server}", tls=ctx, server_name="someone-else.svc")
    with pytest.raises(RpcError) as e:
        await wrong.unary("/test.Echo/Echo", b"", timeout=5)
    assert e.value.code == StatusCode.UNAVAILABLE and "someone-else.svc" in e.value.details


async def test_mtls_untrusted_server_is_refused(pki, tls_server):
    now = time.time()
    other_key = KeyType.EC_P256.generate()
    other_root = _pem(create_root(other_key, "other.local", now))
    ch = Channel(f"127.0.0.1:{tls_server}", tls=mtls_context(*pki["client"], other_root),
                 server_name="istiod.istio-system.svc")
    with pytest.raises(RpcError) as e:
        await ch.unary("/test.Echo/Echo", b"", timeout=5)
    assert e.value.code == StatusCode.UNAVAILABLE and "CERTIFICATE_VERIFY_FAILED" in e.value.details


def test_client_does_not_import_grpcio():
    code = ("import sys, isthmus.shared.service.grpc_client; "
            "print(sorted(m for m in sys.modules if m == 'grpc' or m.startswith('grpc.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
