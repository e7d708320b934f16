"""Http1ClientConnection: requests out, responses in, connection reuse."""
from __future__ import annotations

import pytest

from isthmus.proxy.protocol import (ConnectionClosed, Data, Http1ClientConnection,
                                    Http1Limits, LocalProtocolError, ProtocolError,
                                    RequestHead, ResponseHead, StreamReset, Trailers)

from .wire import feed, merged


def _client(method: bytes = b"GET", **kw) -> Http1ClientConnection:
    conn = Http1ClientConnection(**kw)
    conn.send_request(method, b"/", b"h", [], stream_id=5)
    return conn


def test_request_is_origin_form_with_host_from_authority():
    out = Http1ClientConnection().send_request(
        b"GET", b"/r?x=1", b"reviews:9080",
        [(b"host", b"stale"), (b"accept", b"*/*"), (b"connection", b"close")])
    assert out == b"GET /r?x=1 HTTP/1.1\r\nhost: reviews:9080\r\naccept: */*\r\n\r\n"


def test_request_with_body_in_one_bytes_object():
    out = Http1ClientConnection().send_request(b"POST", b"/p", b"h", [], b"hello")
    assert out == b"POST /p HTTP/1.1\r\nhost: h\r\ncontent-length: 5\r\n\r\nhello"
    out = Http1ClientConnection().send_request(b"PUT", b"/p", b"h", [], b"")
    assert out.endswith(b"content-length: 0\r\n\r\n")


def test_streamed_request_body_is_chunked_unless_length_known():
    conn = Http1ClientConnection()
    head = RequestHead(3, b"POST", b"/u", b"h", [(b"content-type", b"x")])
    assert conn.send(head) == (b"POST /u HTTP/1.1\r\nhost: h\r\ncontent-type: x\r\n"
                               b"transfer-encoding: chunked\r\n\r\n")
    assert conn.send(Data(3, b"ab")) == b"2\r\nab\r\n"
    assert conn.send(Trailers(3, [(b"x-sum", b"1")])) == b"0\r\nx-sum: 1\r\n\r\n"
    conn = Http1ClientConnection()
    head = RequestHead(3, b"POST", b"/u", b"h", [(b"content-length", b"4")], content_length=4)
    assert conn.send(head).endswith(b"content-length: 4\r\n\r\n")
    assert conn.send(Data(3, b"abcd", True)) == b"abcd"


def test_cannot_start_next_request_before_body_is_sent():
    conn = Http1ClientConnection()
    conn.send(RequestHead(1, b"POST", b"/", b"h", []))
    with pytest.raises(LocalProtocolError):
        conn.send_request(b"GET", b"/", b"h", [])


@pytest.mark.parametrize("piece", [None, 1, 4])
def test_response_with_length_and_reuse(piece):
    conn = _client()
    assert not conn.reusable  # a request is outstanding
    events = merged(feed(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: s\r\n\r\nhello",
                         piece))
    assert events == [
        ResponseHead(5, 200, [(b"content-length", b"5"), (b"server", b"s")], b"OK", b"1.1",
                     True, 5),
        Data(5, b"hello", True)]
    assert conn.reusable


def test_chunked_response_with_grpc_trailers():
    conn = _client(b"POST")
    events = conn.receive_data(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               b"4\r\nabcd\r\n0\r\ngrpc-status: 0\r\ngrpc-message: \r\n\r\n")
    assert events[0].chunked
    assert events[1:] == [Data(5, b"abcd"), Trailers(5, [(b"grpc-status", b"0"),
                                                         (b"grpc-message", b"")])]
    assert conn.reusable


def test_informational_responses_are_skipped():
    conn = _client()
    events = conn.receive_data(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                               b"Link: </s.css>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    assert events == [ResponseHead(5, 204, [], b"No Content", end_stream=True)]
    assert conn.reusable


def test_response_to_head_has_no_body_whatever_its_length():
    conn = Http1ClientConnection()
    conn.send_request(b"HEAD", b"/", b"h", [], stream_id=1)
    conn.send_request(b"GET", b"/", b"h", [], stream_id=2)
    wire = (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    for piece in (None, 1, 10):
        c = Http1ClientConnection()
        c.send_request(b"HEAD", b"/", b"h", [], stream_id=1)
        c.send_request(b"GET", b"/", b"h", [], stream_id=2)
        events = merged(feed(c, wire, piece))
        assert [type(e).__name__ for e in events] == ["ResponseHead", "ResponseHead", "Data"]
        assert events[0].end_stream and events[0].stream_id == 1
        assert events[2] == Data(2, b"ok", True)
        assert c.reusable


def test_head_response_keep_alive_judged_by_version_and_connection():
    conn = Http1ClientConnection()
    conn.send_request(b"HEAD", b"/", b"h", [])
    [head] = conn.receive_data(b"HTTP/1.1 200 OK\r\n\r\n")  # no length: still reusable
    assert head.keep_alive and conn.reusable
    conn = Http1ClientConnection()
    conn.send_request(b"HEAD", b"/", b"h", [])
    conn.receive_data(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
    assert not conn.reusable


def test_head_cannot_be_pipelined_behind_other_requests():
    conn = _client()
    with pytest.raises(LocalProtocolError):
        conn.send_request(b"HEAD", b"/", b"h", [])


def test_close_delimited_body_ends_at_eof():
    conn = _client()
    events = conn.receive_data(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nabc")
    assert not events[0].keep_alive and events[1:] == [Data(5, b"abc")]
    assert conn.receive_data(b"def") == [Data(5, b"def")]
    assert conn.receive_data(b"") == [Data(5, b"", True), ConnectionClosed()]
    assert not conn.reusable


def test_server_connection_close_prevents_reuse():
    conn = _client()
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert not conn.reusable


def test_http10_keep_alive_response_is_reusable():
    conn = _client()
    [head] = conn.receive_data(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n"
                               b"Connection: keep-alive\r\n\r\n")
    assert head.keep_alive and head.end_stream and conn.reusable


def test_early_response_before_request_body_finished_prevents_reuse():
    conn = Http1ClientConnection()
    conn.send_request(b"POST", b"/", b"h", [(b"content-length", b"10")], b"", end_stream=False)
    conn.receive_data(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
    assert not conn.reusable
    conn.send(Data(1, b"abc", True))  # cut short: server cannot find the next request
    assert not conn.reusable


def test_eof_before_response_resets_stream():
    conn = _client()
    assert conn.receive_data(b"") == [StreamReset(5, 8, True), ConnectionClosed()]


def test_eof_mid_body_resets_stream():
    conn = _client()
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc")
    assert conn.receive_data(b"") == [StreamReset(5, 8, True), ConnectionClosed()]


def test_upgrade_request_and_101_tunnel():
    conn = Http1ClientConnection()
    out = conn.send_request(b"GET", b"/ws", b"h", [(b"sec-websocket-key", b"k")],
                            stream_id=9, upgrade=b"websocket")
    assert out == (b"GET /ws HTTP/1.1\r\nhost: h\r\nsec-websocket-key: k\r\n"
                   b"connection: upgrade\r\nupgrade: websocket\r\n\r\n")
    events = conn.receive_data(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                               b"Upgrade: websocket\r\n\r\n\x81\x02hi")
    assert events[0].status == 101 and not events[0].end_stream
    assert events[1:] == [Data(9, b"\x81\x02hi")]
    assert conn.tunnel and not conn.reusable
    assert conn.send(Data(9, b"\x81\x00")) == b"\x81\x00"
    assert conn.receive_data(b"HTTP/1.1 200 OK\r\n\r\n") == [Data(9, b"HTTP/1.1 200 OK\r\n\r\n")]


def test_refused_upgrade_is_an_ordinary_response():
    conn = Http1ClientConnection()
    conn.send_request(b"GET", b"/ws", b"h", [], upgrade=b"websocket")
    events = conn.receive_data(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 2\r\n\r\nno")
    assert events[0].status == 426 and events[1] == Data(1, b"no", True)
    assert not conn.tunnel


def test_connect_tunnel_after_2xx():
    conn = Http1ClientConnection()
    out = conn.send_request(b"CONNECT", b"", b"db:5432", [], end_stream=False, stream_id=4)
    assert out.startswith(b"CONNECT db:5432 HTTP/1.1\r\nhost: db:5432\r\n")
    events = conn.receive_data(b"HTTP/1.1 200 Connection established\r\n\r\n\x00\x01")
    assert events == [ResponseHead(4, 200, [], b"Connection established", keep_alive=False),
                      Data(4, b"\x00\x01")]
    assert conn.tunnel


def test_connect_refused_reads_body():
    conn = Http1ClientConnection()
    conn.send_request(b"CONNECT", b"", b"db:5432", [], end_stream=False)
    events = conn.receive_data(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nno!")
    assert events[1] == Data(1, b"no!", True) and not conn.tunnel


@pytest.mark.parametrize("wire", [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"HTTP/1.1 2x0 OK\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    b"SSH-2.0-OpenSSH\r\n",
])
def test_bad_responses_are_502(wire):
    conn = _client()
    events = conn.receive_data(wire)
    assert isinstance(events[-1], ProtocolError) and events[-1].status_code == 502
    assert not conn.reusable and conn.receive_data(b"more") == []


def test_response_without_request_is_an_error():
    events = Http1ClientConnection().receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(events[-1], ProtocolError)


def test_response_header_limits():
    conn = _client(limits=Http1Limits(max_headers_count=2))
    events = conn.receive_data(b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
    assert isinstance(events[-1], ProtocolError)


def test_stream_reset_prevents_reuse():
    conn = _client()
    conn.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert conn.reusable
    assert conn.send(StreamReset(5)) == b"" and not conn.reusable
