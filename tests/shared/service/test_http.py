"""The in-house HTTP/1.1 server over real sockets on 127.0.0.1: routing, keep-alive, limits,
timeouts, failing handlers; and the reason it exists — no aiohttp in the sidecar."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from isthmus.shared import logging as slog
from isthmus.shared.service.http import App, Limits, Request, Response, serve


async def echo(request: Request) -> Response:
    return Response(text=f"{request.method} {request.path} {dict(request.query)} {len(await request.read())}\n")


async def boom(_: Request) -> Response:
    raise RuntimeError("page broke")


async def slow(_: Request) -> Response:
    await asyncio.sleep(0.2)
    return Response(text="slow done\n")


def make_app() -> App:
    app = App()
    app.add_get("/echo", echo)
    app.add_post("/echo", echo)
    app.add_get("/boom", boom)
    app.add_get("/slow", slow)
    app.add_route("*", "/any", echo)
    return app


@pytest.fixture
async def server():
    srv = await serve(make_app(), "127.0.0.1", 0, Limits(max_body=1024, read_timeout=0.3, idle_timeout=0.5))
    yield srv
    await srv.close()


async def connect(srv):
    return await asyncio.open_connection("127.0.0.1", srv.port)


async def read_response(reader: asyncio.StreamReader, head: bool = False) -> tuple[int, dict[str, str], bytes]:
    status_line = await asyncio.wait_for(reader.readline(), 5)
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers = {}
    while (line := await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b"" if head else await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


async def request(srv, raw: bytes, head: bool = False) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await connect(srv)
    try:
        writer.write(raw)
        return await read_response(reader, head)
    finally:
        writer.close()


async def closed(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), 5) == b""


# ---- routing -----------------------------------------------------------------------------

async def test_get_routes_with_content_length_and_type(server):
    status, headers, body = await request(server, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, body) == (200, b"GET /echo {} 0\n")
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert headers["content-length"] == str(len(body)) and "date" in headers


async def test_unknown_path_is_404_and_other_method_is_405_with_allow(server):
    status, _, body = await request(server, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, body) == (404, b"404: Not Found")
    status, headers, body = await request(server, b"DELETE /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, body, headers["allow"]) == (405, b"405: Method Not Allowed", "GET, HEAD, POST")
    status, _, body = await request(server, b"PATCH /any HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, body) == (200, b"PATCH /any {} 0\n")


async def test_head_answers_like_get_without_a_body(server):
    reader, writer = await connect(server)
    writer.write(b"HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, _ = await read_response(reader, head=True)
    assert status == 200 and headers["content-length"] == str(len(b"HEAD /echo {} 0\n"))
    status, _, body = await read_response(reader)  # the next response starts right after HEAD's headers
    assert (status, body) == (200, b"GET /echo {} 0\n")
    writer.close()


async def test_query_first_values_blank_keys_and_decoded_path(server):
    app = App()
    seen: list[Request] = []

    async def record(request: Request) -> Response:
        seen.append(request)
        return Response(text="ok")

    app.add_get("/a b", record)
    srv = await serve(app, "127.0.0.1", 0)
    try:
        status, _, _ = await request(srv, b"GET /a%20b?graceful&level=debug&level=info&x=a%20b+c HTTP/1.1\r\n"
                                          b"Host: x\r\nX-Thing: 1\r\n\r\n")
    finally:
        await srv.close()
    r = seen[0]
    assert status == 200 and r.path == "/a b" and r.query_string == "graceful&level=debug&level=info&x=a%20b+c"
    assert dict(r.query) == {"graceful": "", "level": "debug", "x": "a b c"} and "graceful" in r.query
    assert r.headers["x-thing"] == r.headers["X-THING"] == "1" and "host" in r.headers


async def test_post_bodies_plain_and_chunked(server):
    _, _, body = await request(server, b"POST /echo?a=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    assert body == b"POST /echo {'a': '1'} 5\n"
    _, _, body = await request(server, b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                       b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
    assert body == b"POST /echo {} 7\n"


# ---- connections ---------------------------------------------------------------------------

async def test_keep_alive_serves_requests_one_after_another_and_pipelined(server):
    reader, writer = await connect(server)
    for _ in range(2):
        writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = await read_response(reader)
        assert status == 200 and "connection" not in headers
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /echo?n=2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(reader))[2] == b"slow done\n"  # in order, though the first is slower
    assert (await read_response(reader))[2] == b"GET /echo {'n': '2'} 0\n"
    assert "1 connections" in repr(server)
    writer.close()


async def test_connection_close_and_http10_close_after_the_response(server):
    reader, writer = await connect(server)
    writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, headers, _ = await read_response(reader)
    assert status == 200 and headers["connection"] == "close" and await closed(reader)
    reader, writer = await connect(server)
    writer.write(b"GET /echo HTTP/1.0\r\n\r\n")
    assert (await read_response(reader))[0] == 200 and await closed(reader)
    reader, writer = await connect(server)
    writer.write(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert (await read_response(reader))[1]["connection"] == "keep-alive"
    writer.close()


async def test_malformed_request_is_400_and_closed(server):
    reader, writer = await connect(server)
    writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP AT ALL\r\n\r\n")
    assert (await read_response(reader))[0] == 200  # what came before the garbage is answered
    status, headers, body = await read_response(reader)
    assert (status, headers["connection"], body) == (400, "close", b"400: Bad Request")
    assert await closed(reader)


async def test_oversized_bodies_are_413_and_closed(server):
    reader, writer = await connect(server)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n")
    assert (await read_response(reader))[0] == 413 and await closed(reader)
    reader, writer = await connect(server)  # chunked: no length up front, counted as it arrives
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 + b"200\r\n" + b"x" * 512 + b"\r\n" + b"201\r\n" + b"x" * 513 + b"\r\n")
    assert (await read_response(reader))[0] == 413 and await closed(reader)


async def test_oversized_head_is_431():
    srv = await serve(make_app(), "127.0.0.1", 0, Limits(max_head=256))
    try:
        status, _, _ = await request(srv, b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 300 + b"\r\n\r\n")
    finally:
        await srv.close()
    assert status == 431


async def test_handler_exception_is_500_logged_and_the_server_keeps_serving(server):
    reader, writer = await connect(server)
    with slog.capture() as logs:
        writer.write(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = await read_response(reader)
    assert (status, body) == (500, b"500: Internal Server Error")
    failed = [e for e in logs if e["event"] == "http handler failed"]
    assert failed and failed[0]["path"] == "/boom" and "page broke" in failed[0]["error"]
    writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")  # same connection still answers
    assert (await read_response(reader))[0] == 200
    writer.close()
    assert (await request(server, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"))[0] == 200


async def test_half_sent_request_times_out_with_408_and_idle_connections_close(server):
    reader, writer = await connect(server)
    writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n")  # headers never finish
    status, headers, _ = await read_response(reader)
    assert (status, headers["connection"]) == (408, "close") and await closed(reader)
    reader, writer = await connect(server)  # connects, never sends: closed without a word
    assert await closed(reader)
    reader, writer = await connect(server)  # keep-alive gap longer than idle_timeout
    writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(reader))[0] == 200 and await closed(reader)


async def test_port_zero_binds_a_real_port_and_a_taken_port_is_oserror(server):
    assert server.port > 0 and f"127.0.0.1:{server.port}" in repr(server)
    with pytest.raises(OSError):
        await serve(App(), "127.0.0.1", server.port)


async def test_close_lets_a_request_in_flight_finish_and_stops_listening():
    srv = await serve(make_app(), "127.0.0.1", 0)
    port = srv.port
    reader, writer = await connect(srv)
    idle_reader, _ = await connect(srv)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.05)
    await srv.close()
    status, headers, body = await read_response(reader)
    assert (status, body, headers["connection"]) == (200, b"slow done\n", "close")
    assert await closed(reader) and await closed(idle_reader)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


def test_under_uvloop():
    import uvloop

    async def scenario() -> list[int]:
        srv = await serve(make_app(), "127.0.0.1", 0, Limits(read_timeout=0.2))
        try:
            reader, writer = await connect(srv)
            writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\nGET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
            statuses = [(await read_response(reader))[0], (await read_response(reader))[0]]
            writer.write(b"GET /ec")
            statuses.append((await read_response(reader))[0])
            return statuses
        finally:
            await srv.close()

    assert uvloop.run(scenario()) == [200, 500, 408]


# ---- the pieces ----------------------------------------------------------------------------

def test_response_content_types_follow_aiohttp():
    assert Response(text="x").headers == {"Content-Type": "text/plain; charset=utf-8"}
    assert Response(text="{}", content_type="application/json").headers["Content-Type"] == \
        "application/json; charset=utf-8"
    assert Response(body=b"x").headers["Content-Type"] == "application/octet-stream"
    assert Response(body=b"x", headers={"content-type": "text/plain; version=0.0.4"}).headers == \
        {"Content-Type": "text/plain; version=0.0.4"}
    assert Response(status=204).encode(head=False, close=False, http10=False).startswith(b"HTTP/1.1 204 No Content")
    with pytest.raises(ValueError):
        Response(text="x", headers={"X-Evil": "a\r\nSet-Cookie: b"})
    with pytest.raises(ValueError):
        Response(text="x", body=b"y")


def test_routes_cannot_be_registered_twice():
    app = App()
    app.add_get("/a", echo)
    with pytest.raises(ValueError, match="already routed"):
        app.add_get("/a", echo)
    with pytest.raises(ValueError, match="already routed"):
        app.add_route("*", "/a", echo)
    assert app.resolve("HEAD", "/a") is echo and app.resolve("POST", "/a").status == 405


# ---- why this module exists ----------------------------------------------------------------

@pytest.mark.parametrize("module", ["isthmus.proxy.agent", "isthmus.shared.service.monitoring"])
def test_importing_does_not_import_aiohttp(module):
    code = f"import {module}, sys; assert 'aiohttp' not in sys.modules, 'aiohttp imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


async def test_a_client_that_never_reads_is_dropped():
    app = App()

    async def big(_: Request) -> Response:
        return Response(body=b"x" * (8 << 20))

    app.add_get("/big", big)
    srv = await serve(app, "127.0.0.1", 0, Limits(idle_timeout=0.3))
    try:
        _, writer = await connect(srv)
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * 4)  # ~32 MiB of answers, never read
        for _ in range(100):
            await asyncio.sleep(0.05)
            if "0 connections" in repr(srv):
                break
        assert "0 connections" in repr(srv)
        writer.close()
    finally:
        await srv.close()


def test_http_date_is_an_imf_fixdate():
    from email.utils import formatdate

    from isthmus.shared.service.http import http_date

    for t in (0, 784111777, 951782400, 1_700_000_000, 4_102_444_799):  # incl. a leap day and 2099-12-31
        assert http_date(t) == formatdate(t, usegmt=True)
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"
