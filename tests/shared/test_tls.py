"""shared/tls.py: the SSLContext that skips the idna codec for ASCII server names, and
in-memory certificate loading."""
from __future__ import annotations

import ssl
import subprocess
import sys
import textwrap

import pytest

from isthmus.shared.tls import Context

STD = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
OURS = Context(ssl.PROTOCOL_TLS_CLIENT)


@pytest.mark.parametrize("name", [
    "reviews.default.svc.cluster.local", "", "127.0.0.1", "Foo.Example.", "a" * 63 + ".example",
    "outbound_.9080_.v1_.reviews.default.svc.cluster.local", "bücher.example", "xn--bcher-kva.example", None,
])
def test_server_name_encoding_equals_the_stdlib(name):
    assert OURS._encode_hostname(name) == STD._encode_hostname(name)


@pytest.mark.parametrize("name", ["a..example", "a" * 64 + ".example", "."])
def test_bad_server_names_fail_as_in_the_stdlib(name):
    with pytest.raises(UnicodeError):
        STD._encode_hostname(name)
    with pytest.raises(UnicodeError):
        OURS._encode_hostname(name)


def test_sni_is_sent_without_loading_the_idna_codec():
    """A TLS client over uvloop in a fresh interpreter (nothing loaded the codec before): the
    ClientHello carries the name, and encodings.idna was never imported."""
    probe = textwrap.dedent("""
        import asyncio, socket, ssl, sys, uvloop
        from isthmus.shared.tls import Context

        class Hello(asyncio.Protocol):
            def __init__(self):
                self.data = b""
            def data_received(self, data):
                self.data += data

        async def main():
            loop = asyncio.get_running_loop()
            hello = Hello()
            sock = socket.create_server(("127.0.0.1", 0))
            server = await loop.create_server(lambda: hello, sock=sock)
            ctx = Context(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            name = "outbound_.9080_._.reviews.default.svc.cluster.local"
            connect = asyncio.ensure_future(loop.create_connection(
                asyncio.Protocol, "127.0.0.1", sock.getsockname()[1], ssl=ctx, server_hostname=name))
            for _ in range(100):
                await asyncio.sleep(0.02)
                if name.encode() in hello.data:
                    break
            connect.cancel()
            server.close()
            print(name.encode() in hello.data, "encodings.idna" in sys.modules)

        uvloop.run(main())
    """)
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "True False"
