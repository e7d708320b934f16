"""Http1ServerConnection send side: framing, keep-alive, bodiless responses."""
from __future__ import annotations

import pytest

from isthmus.proxy.protocol import (Data, Http1ServerConnection, LocalProtocolError,
                                    ResponseHead, StreamReset, Trailers)

GET = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"


def _server(request: bytes = GET) -> Http1ServerConnection:
    conn = Http1ServerConnection()
    conn.receive_data(request)
    return conn


def test_fast_path_is_one_bytes_object_with_content_length():
    conn = _server()
    out = conn.send_response_head_and_body(200, [(b"content-type", b"text/plain")], b"hi")
    assert out == (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n"
                   b"\r\nhi")
    assert not conn.must_close


def test_fast_path_replaces_given_framing_headers():
    conn = _server()
    out = conn.send_response_head_and_body(
        404, [(b"content-length", b"999"), (b"transfer-encoding", b"chunked"),
              (b"connection", b"keep-alive"), (b"keep-alive", b"timeout=5")], b"")
    assert out == b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


def test_streaming_response_without_length_is_chunked():
    conn = _server()
    assert conn.send(ResponseHead(1, 200, [(b"x", b"y")])) == (
        b"HTTP/1.1 200 OK\r\nx: y\r\ntransfer-encoding: chunked\r\n\r\n")
    assert conn.send(Data(1, b"hello")) == b"5\r\nhello\r\n"
    assert conn.send(Data(1, b"")) == b""
    assert conn.send(Data(1, b"a" * 300, True)) == b"12c\r\n" + b"a" * 300 + b"\r\n0\r\n\r\n"
    assert not conn.must_close


def test_chunked_trailers():
    conn = _server()
    conn.send(ResponseHead(1, 200, []))
    assert conn.send(Trailers(1, [(b"grpc-status", b"0"), (b"grpc-message", b"ok")])) == (
        b"0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n")


def test_content_length_response_passes_body_through_and_drops_trailers():
    conn = _server()
    head = conn.send(ResponseHead(1, 200, [(b"content-length", b"5")]))
    assert head == b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"
    assert conn.send(Data(1, b"hel")) == b"hel"
    assert conn.send(Data(1, b"lo")) == b"lo"
    assert conn.send(Trailers(1, [(b"x", b"1")])) == b""
    assert not conn.must_close


def test_body_longer_than_content_length_is_a_local_error():
    conn = _server()
    conn.send(ResponseHead(1, 200, [(b"content-length", b"2")]))
    with pytest.raises(LocalProtocolError):
        conn.send(Data(1, b"abc"))


def test_truncated_content_length_body_forces_close():
    conn = _server()
    conn.send(ResponseHead(1, 200, [(b"content-length", b"10")]))
    conn.send(Data(1, b"abc", True))
    assert conn.must_close


def test_head_end_stream_without_length_gets_content_length_zero():
    conn = _server()
    assert conn.send(ResponseHead(1, 302, [(b"location", b"/x")], end_stream=True)) == (
        b"HTTP/1.1 302 Found\r\nlocation: /x\r\ncontent-length: 0\r\n\r\n")


def test_head_request_response_has_no_body_but_keeps_length():
    conn = _server(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
    out = conn.send_response_head_and_body(200, [], b"0123456789")
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"
    conn = _server(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert conn.send(ResponseHead(1, 200, [(b"content-length", b"7")])) == (
        b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n")
    assert conn.send(Data(1, b"ignored", True)) == b""
    assert not conn.must_close


@pytest.mark.parametrize("status", [204, 304])
def test_204_304_have_no_body_and_no_chunking(status):
    conn = _server()
    out = conn.send_response_head_and_body(status, [], b"")
    assert b"transfer-encoding" not in out and out.endswith(b"\r\n\r\n")
    assert b"content-length" not in out
    conn = _server()
    out = conn.send(ResponseHead(1, status, []))
    assert b"transfer-encoding" not in out
    assert conn.send(Data(1, b"x", True)) == b""


def test_304_keeps_upstream_content_length():
    conn = _server()
    out = conn.send(ResponseHead(1, 304, [(b"content-length", b"5")], end_stream=True))
    assert b"content-length: 5\r\n" in out


def test_http10_response_keep_alive_and_close_delimited():
    conn = _server(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    out = conn.send_response_head_and_body(200, [], b"ok")
    assert out == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok"
    assert not conn.must_close
    conn = _server(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    out = conn.send(ResponseHead(1, 200, []))  # streaming, no length: until close
    assert b"chunked" not in out and b"connection: close" in out
    assert conn.send(Data(1, b"abc", True)) == b"abc"
    assert conn.must_close


def test_http10_default_is_close():
    conn = _server(b"GET / HTTP/1.0\r\n\r\n")
    assert b"connection: close\r\n" in conn.send_response_head_and_body(200, [], b"")
    assert conn.must_close


def test_connection_close_requested_by_client_or_response():
    conn = _server(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert b"connection: close" in conn.send_response_head_and_body(200, [], b"")
    assert conn.must_close
    conn = _server()
    assert b"connection: close" in conn.send_response_head_and_body(
        503, [(b"connection", b"close")], b"")
    assert conn.must_close


def test_early_response_before_request_body_done_closes():
    conn = _server(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\npartial")
    out = conn.send_response_head_and_body(413, [], b"")
    assert b"connection: close" in out and conn.must_close


def test_pipelined_responses_follow_request_order():
    conn = Http1ServerConnection()
    conn.receive_data(b"HEAD /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    first = conn.send_response_head_and_body(200, [], b"body")  # for HEAD: no body
    second = conn.send_response_head_and_body(200, [], b"body")
    assert first.endswith(b"\r\n\r\n") and second.endswith(b"\r\n\r\nbody")


def test_response_without_request_is_a_local_error():
    with pytest.raises(LocalProtocolError):
        Http1ServerConnection().send_response_head_and_body(200, [], b"")


def test_informational_response_keeps_request_open():
    conn = _server(b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert conn.send(ResponseHead(1, 100, [])) == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.receive_data(b"ok")
    assert conn.send_response_head_and_body(201, [], b"") == (
        b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")


def test_unknown_status_gets_a_phrase():
    assert _server().send_response_head_and_body(599, [], b"").startswith(b"HTTP/1.1 599 Unknown")


def test_101_switches_both_directions_to_raw():
    conn = _server(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
    out = conn.send(ResponseHead(1, 101, [(b"sec-websocket-accept", b"x"),
                                          (b"connection", b"Upgrade"), (b"upgrade", b"websocket")]))
    assert out == (b"HTTP/1.1 101 Switching Protocols\r\nsec-websocket-accept: x\r\n"
                   b"connection: upgrade\r\nupgrade: websocket\r\n\r\n")
    assert conn.send(Data(1, b"\x81\x00")) == b"\x81\x00"
    assert conn.receive_data(b"\x88\x00") == [Data(1, b"\x88\x00")]
    conn.send(Data(1, b"", True))
    assert conn.must_close


def test_refused_upgrade_closes_connection():
    conn = _server(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
    out = conn.send_response_head_and_body(403, [], b"no")
    assert b"connection: close" in out and conn.must_close


def test_101_without_upgrade_request_is_refused():
    with pytest.raises(LocalProtocolError):
        _server().send(ResponseHead(1, 101, []))


def test_connect_2xx_opens_tunnel_without_framing():
    conn = _server(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n")
    assert conn.send(ResponseHead(1, 200, [])) == b"HTTP/1.1 200 OK\r\n\r\n"
    assert conn.send(Data(1, b"\x16\x03")) == b"\x16\x03"


def test_protocol_error_response_goes_to_failed_stream():
    conn = Http1ServerConnection()
    events = conn.receive_data(GET + b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00\r\n\r\n")
    assert events[-1].status_code == 400 and events[-1].stream_id == 2
    ok = conn.send_response_head_and_body(200, [], b"first")
    err = conn.send_response_head_and_body(events[-1].status_code, [], b"")
    assert ok.endswith(b"first") and b"connection: close" not in ok
    assert err == b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    assert conn.must_close


def test_stream_reset_means_close():
    conn = _server()
    conn.send(ResponseHead(1, 200, [(b"content-length", b"100")]))
    conn.send(Data(1, b"partial"))
    assert conn.send(StreamReset(1)) == b"" and conn.must_close
