"""Http1ServerConnection receive side: requests in, events out, Envoy's rejections."""
from __future__ import annotations

import pytest

from isthmus.proxy.protocol import (ConnectionClosed, Data, Http1Limits,
                                    Http1ServerConnection, ProtocolError, RequestHead,
                                    StreamReset, Trailers)

from .wire import body_of, feed, merged

GET = b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n"


def test_simple_get_is_one_head_with_end_stream():
    [head] = Http1ServerConnection().receive_data(GET)
    assert head == RequestHead(1, b"GET", b"/a?b=1", b"example.com",
                               [(b"host", b"example.com"), (b"user-agent", b"t")],
                               b"1.1", True, end_stream=True)


def test_header_names_lowercased_values_trimmed():
    [head] = Http1ServerConnection().receive_data(
        b"GET / HTTP/1.1\r\nHOST: h\r\nX-Mixed-Case:   v a l  \t\r\nX-Empty:\r\n\r\n")
    assert head.headers == [(b"host", b"h"), (b"x-mixed-case", b"v a l"), (b"x-empty", b"")]


@pytest.mark.parametrize("piece", [None, 1, 3, 17])
def test_pipelined_requests_any_split(piece):
    wire = (GET + b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
            + b"DELETE /d HTTP/1.1\r\nHost: h\r\n\r\n")
    events = merged(feed(Http1ServerConnection(), wire, piece))
    assert [(type(e).__name__, e.stream_id) for e in events] == [
        ("RequestHead", 1), ("RequestHead", 2), ("Data", 2), ("RequestHead", 3)]
    assert events[2] == Data(2, b"hello", True)
    assert events[1].content_length == 5 and not events[1].end_stream


def test_body_streams_in_pieces_without_buffering():
    conn = Http1ServerConnection()
    [head] = conn.receive_data(b"PUT /u HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n")
    assert not head.end_stream
    assert conn.receive_data(b"abc") == [Data(1, b"abc", False)]
    assert conn.receive_data(b"defg") == [Data(1, b"defg", False)]
    assert conn.receive_data(b"hij") == [Data(1, b"hij", True)]


@pytest.mark.parametrize("piece", [None, 1, 5])
def test_chunked_request_with_trailers(piece):
    wire = (b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Checksum: 42\r\n\r\n")
    events = merged(feed(Http1ServerConnection(), wire, piece))
    assert events[0].chunked and events[0].content_length is None
    assert events[1:] == [Data(1, b"hello world", False), Trailers(1, [(b"x-checksum", b"42")])]


def test_chunked_request_end_rides_on_last_data_or_empty_data():
    head = b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    events = Http1ServerConnection().receive_data(head + b"3\r\nabc\r\n0\r\n\r\n")
    assert events[1:] == [Data(1, b"abc", True)]  # same receive_data: flag merged
    conn = Http1ServerConnection()
    conn.receive_data(head + b"3\r\nabc\r\n")
    assert conn.receive_data(b"0\r\n\r\n") == [Data(1, b"", True)]


def test_absolute_form_sets_authority_and_origin_form_target():
    [head] = Http1ServerConnection().receive_data(
        b"GET http://user@reviews.default:9080/r/1?x=y#frag HTTP/1.1\r\nHost: ignored\r\n\r\n")
    assert (head.scheme, head.authority, head.target) == (b"http", b"reviews.default:9080",
                                                          b"/r/1?x=y")


def test_absolute_form_without_path_gets_slash():
    [head] = Http1ServerConnection().receive_data(b"GET http://h:1 HTTP/1.1\r\n\r\n")
    assert (head.authority, head.target) == (b"h:1", b"/")


def test_absolute_form_can_be_refused():
    [err] = Http1ServerConnection(Http1Limits(allow_absolute_url=False)).receive_data(
        b"GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n")
    assert err.status_code == 400


def test_connect_reports_authority_and_tunnels():
    conn = Http1ServerConnection()
    events = conn.receive_data(b"CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n\x00raw")
    head = events[0]
    assert (head.method, head.authority, head.target, head.upgrade) == (
        b"CONNECT", b"db.internal:5432", b"db.internal:5432", b"connect")
    assert not head.end_stream and not head.keep_alive
    assert events[1:] == [Data(1, b"\x00raw", False)]
    assert conn.receive_data(b"more") == [Data(1, b"more", False)]
    assert conn.receive_data(b"") == [Data(1, b"", True), ConnectionClosed()]


def test_options_star():
    [head] = Http1ServerConnection().receive_data(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n")
    assert head.target == b"*"


def test_websocket_upgrade_switches_to_raw_bytes():
    conn = Http1ServerConnection()
    events = conn.receive_data(b"GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
                               b"Upgrade: WebSocket\r\nSec-WebSocket-Key: k\r\n\r\n\x81\x05hello")
    assert events[0].upgrade == b"websocket" and not events[0].end_stream
    assert events[1:] == [Data(1, b"\x81\x05hello", False)]
    assert conn.tunnel
    # not HTTP any more: a request line is just bytes
    assert conn.receive_data(b"GET / HTTP/1.1\r\n\r\n") == [Data(1, b"GET / HTTP/1.1\r\n\r\n")]


def test_h2c_upgrade_is_ignored_and_body_kept():
    wire = (b"POST /x HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 3\r\n\r\nabc"
            + GET)
    for piece in (None, 1, 7):
        events = merged(feed(Http1ServerConnection(), wire, piece))
        assert events[0].upgrade is None and events[0].keep_alive
        assert events[1] == Data(1, b"abc", True)
        assert isinstance(events[2], RequestHead) and events[2].stream_id == 2


def test_h2c_upgrade_with_chunked_body():
    wire = (b"POST /x HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n" + GET)
    events = merged(Http1ServerConnection().receive_data(wire))
    assert events[1:3] == [Data(1, b"hi", True)] + [events[2]]
    assert events[2].stream_id == 2


def test_upgrade_header_without_connection_upgrade_is_plain():
    [head] = Http1ServerConnection().receive_data(
        b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n")
    assert head.upgrade is None and head.end_stream


def test_expect_100_continue_reported():
    conn = Http1ServerConnection()
    [head] = conn.receive_data(b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n"
                               b"Content-Length: 2\r\n\r\n")
    assert head.expect_continue
    assert conn.send_continue() == b"HTTP/1.1 100 Continue\r\n\r\n"


def test_http10_defaults_to_close_and_keep_alive_on_request():
    [head] = Http1ServerConnection().receive_data(b"GET / HTTP/1.0\r\n\r\n")
    assert head.http_version == b"1.0" and not head.keep_alive and head.authority == b""
    [head] = Http1ServerConnection().receive_data(
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nHost: h\r\n\r\n")
    assert head.keep_alive and head.authority == b"h"


def test_http10_expect_is_ignored():
    [head] = Http1ServerConnection().receive_data(
        b"GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n")
    assert not head.expect_continue


def test_http10_refused_with_426_when_configured():
    [err] = Http1ServerConnection(Http1Limits(accept_http_10=False)).receive_data(
        b"GET / HTTP/1.0\r\n\r\n")
    assert (err.status_code, err.close) == (426, True)


def test_http10_default_host():
    [head] = Http1ServerConnection(Http1Limits(default_host_for_http_10=b"svc")).receive_data(
        b"GET / HTTP/1.0\r\n\r\n")
    assert head.authority == b"svc"


def test_http11_connection_close():
    [head] = Http1ServerConnection().receive_data(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert not head.keep_alive


def test_eof_mid_body_resets_stream():
    conn = Http1ServerConnection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
    assert conn.receive_data(b"") == [StreamReset(1, 8, True), ConnectionClosed()]
    assert conn.receive_data(b"more") == []


def test_eof_between_requests():
    conn = Http1ServerConnection()
    conn.receive_data(GET)
    assert conn.receive_data(b"") == [ConnectionClosed()]


def test_leading_empty_lines_tolerated():
    [head] = Http1ServerConnection().receive_data(b"\r\n\r\n" + GET)
    assert head.target == b"/a?b=1"


# -- rejections (status codes as Envoy's HTTP/1 codec) --------------------------
def _error(wire: bytes, limits: Http1Limits | None = None) -> ProtocolError:
    conn = Http1ServerConnection(limits) if limits else Http1ServerConnection()
    events = conn.receive_data(wire)
    assert isinstance(events[-1], ProtocolError), events
    assert conn.receive_data(GET) == []  # parsing stopped
    return events[-1]


@pytest.mark.parametrize("wire", [
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n",            # obs-fold
    b"GET / HTTP/1.1\r\nHost: h\r\nX A: b\r\n\r\n",                  # space in name
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n",                 # space before colon
    b"GET / HTTP/1.1\r\nHost: h\r\nX(A: b\r\n\r\n",                  # separator in name
    b"GET / HTTP/1.1\r\nHost: h\r\n: b\r\n\r\n",                     # empty name
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",             # NUL in value
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",               # bare CR in value
    b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01\r\n\r\n",              # CTL in value
    b"GET / HTTP/1.1\nHost: h\n\n",                                 # bare LF line ends
    b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",                         # space in target
    b"get / HTTP/1.1\r\nHost: h\r\n\r\n",                            # lowercase method
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",                 # TLS hello on plain port
    b"GET / HTTP/1.1\r\n\r\n",                                       # HTTP/1.1 without Host
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",                 # two Hosts
    b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",                          # invalid authority
    b"GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n",                    # non-http absolute URI
    b"CONNECT noport HTTP/1.1\r\nHost: h\r\n\r\n",                   # CONNECT without port
    b"CONNECT h:1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",  # CONNECT with body
    b"GET / HTTP/0.9\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.2\r\nHost: h\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1e3\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # bad chunk size
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",                             # h2 preface to HTTP/1
])
def test_malformed_request_is_400(wire):
    err = _error(wire)
    assert (err.status_code, err.close) == (400, True), err


@pytest.mark.parametrize("wire", [
    # CL + TE, both orders: classic CL.TE / TE.CL smuggling
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
    # two Content-Lengths, differing or not
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\nabcd",
])
def test_smuggling_framing_is_400(wire):
    assert _error(wire).status_code == 400


@pytest.mark.parametrize("te", [
    b"identity", b"gzip", b"chunked, identity", b"gzip, chunked", b"chunked;q=1",
    b"chunked\r\nTransfer-Encoding: chunked",
])
def test_transfer_encoding_other_than_chunked_is_501(te):
    # Envoy: "http/1.1 protocol error: unsupported transfer encoding" → 501
    err = _error(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: " + te + b"\r\n\r\n0\r\n\r\n")
    assert err.status_code == 501


def test_transfer_encoding_chunked_is_case_insensitive():
    events = Http1ServerConnection().receive_data(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n")
    assert events[0].chunked and events[-1] == Data(1, b"", True)


def test_connect_with_transfer_encoding_is_501():
    assert _error(b"CONNECT h:1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                  ).status_code == 501


def test_http2_version_on_http1_is_505():
    assert _error(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n").status_code == 505


def test_error_carries_stream_id_of_failed_request():
    conn = Http1ServerConnection()
    events = conn.receive_data(GET + b"GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n")
    assert events[0].stream_id == 1
    assert events[1].stream_id == 2 and events[1].status_code == 400


# -- limits --------------------------------------------------------------------
def _headers(n: int, value: bytes = b"v") -> bytes:
    return b"".join(b"X-H-%d: %s\r\n" % (i, value) for i in range(n))


def test_100_headers_accepted_101_rejected_431():
    ok = Http1ServerConnection().receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n" + _headers(99)
                                              + b"\r\n")
    assert isinstance(ok[0], RequestHead) and len(ok[0].headers) == 100
    err = _error(b"GET / HTTP/1.1\r\nHost: h\r\n" + _headers(100) + b"\r\n")
    assert (err.status_code, err.reason) == (431, "too many headers")


def test_headers_over_60k_are_431():
    big = b"a" * 31 * 1024
    ok = Http1ServerConnection().receive_data(
        b"GET / HTTP/1.1\r\nHost: h\r\nX-A: " + big + b"\r\n\r\n")
    assert isinstance(ok[0], RequestHead)
    err = _error(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: " + big + b"\r\nX-B: " + big + b"\r\n\r\n")
    assert err.status_code == 431


def test_long_url_counts_toward_header_limit():
    err = _error(b"GET /" + b"u" * 61 * 1024 + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert err.status_code == 431


def test_configured_limits():
    limits = Http1Limits(max_headers_kb=1, max_headers_count=3)
    assert _error(b"GET / HTTP/1.1\r\nHost: h\r\n" + _headers(3) + b"\r\n", limits
                  ).status_code == 431
    assert _error(b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"v" * 1100 + b"\r\n\r\n", limits
                  ).status_code == 431


def test_endless_header_line_rejected_without_buffering_it_all():
    conn = Http1ServerConnection()
    assert conn.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: ") == []
    events: list = []
    for _ in range(200):  # 200 KiB of one header value, a byte-slice at a time
        events += conn.receive_data(b"a" * 1024)
        if events:
            break
    assert isinstance(events[-1], ProtocolError) and events[-1].status_code == 431
    assert len(conn._held) < 70 * 1024


def test_endless_head_of_small_headers_rejected():
    conn = Http1ServerConnection()
    events = conn.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n")
    for _ in range(100):
        events += conn.receive_data(b"a: b\r\n" * 200)
        if events:
            break
    assert events[-1].status_code == 431


def test_trailers_limits():
    wire = (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
            + _headers(101) + b"\r\n")
    assert _error(wire).status_code == 431


def test_endless_trailer_line_rejected():
    conn = Http1ServerConnection()
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"0\r\nX-T: ")
    events: list = []
    for _ in range(100):
        events += conn.receive_data(b"t" * 4096)
        if events:
            break
    assert events[-1].status_code == 431


def test_split_request_line_is_held_until_complete():
    conn = Http1ServerConnection()
    assert feed(conn, b"GET /slowloris HTTP/1.1\r", 1) == []
    assert conn.receive_data(b"\nHost: h\r\n\r\n")[0].target == b"/slowloris"


def test_body_bytes_are_not_counted_as_head():
    body = b"x" * 200_000
    events = Http1ServerConnection().receive_data(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    assert body_of(events) == body and events[-1].end_stream
