"""HTTP/2 codecs over h2: events, gRPC trailers, flow control, resets, limits."""
from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import pytest

from isthmus.proxy.protocol import (H2_PREFACE, ConnectionClosed, Data, GoAway,
                                    Http2ClientConnection, Http2ServerConnection,
                                    Http2Settings, ProtocolError, RequestHead, ResponseHead,
                                    StreamReset, Trailers, WindowUpdate, detect_h2_preface)
from isthmus.proxy.protocol.events import INTERNAL_ERROR, REFUSED_STREAM

from .wire import H2Pair, body_of

GRPC_HEADERS = [(b"content-type", b"application/grpc"), (b"te", b"trailers"),
                (b"grpc-timeout", b"1S")]


def test_preface_detection():
    assert detect_h2_preface(H2_PREFACE + b"\x00\x00") is True
    assert detect_h2_preface(b"PRI * HTTP/2") is None
    assert detect_h2_preface(b"") is None
    assert detect_h2_preface(b"GET / HTTP/1.1\r\n") is False
    assert detect_h2_preface(b"PRI * HTTP/1.1") is False


def test_grpc_unary_call_with_trailers():
    pair = H2Pair()
    sid = pair.client.send_request(b"POST", b"/reviews.Reviews/Get", b"reviews:9080",
                                   GRPC_HEADERS + [(b"connection", b"keep-alive")])
    pair.client.send_data(sid, b"\x00\x00\x00\x00\x02hi", end_stream=True)
    _, server_events = pair.pump()
    head, data = server_events
    assert head == RequestHead(sid, b"POST", b"/reviews.Reviews/Get", b"reviews:9080",
                               GRPC_HEADERS, b"2", True, scheme=b"http")
    assert data == Data(sid, b"\x00\x00\x00\x00\x02hi", True)
    pair.server.acknowledge_received_data(sid, len(data.data))
    pair.server_sends(ResponseHead(sid, 200, [(b"content-type", b"application/grpc")]))
    pair.server_sends(Data(sid, b"\x00\x00\x00\x00\x02ok"))
    pair.server_sends(Trailers(sid, [(b"grpc-status", b"0"), (b"grpc-message", b"")]))
    client_events, _ = pair.pump()
    assert client_events == [
        ResponseHead(sid, 200, [(b"content-type", b"application/grpc")], b"", b"2"),
        Data(sid, b"\x00\x00\x00\x00\x02ok"),
        Trailers(sid, [(b"grpc-status", b"0"), (b"grpc-message", b"")])]


def test_trailers_only_grpc_error_response():
    pair = H2Pair()
    sid = pair.client.send_request(b"POST", b"/s/M", b"a", GRPC_HEADERS, end_stream=True)
    pair.pump()
    pair.server_sends(ResponseHead(sid, 200, [(b"grpc-status", b"14")], end_stream=True))
    [head], _ = pair.pump()
    assert head.end_stream and (b"grpc-status", b"14") in head.headers


def test_request_mapping_authority_cookies_content_length():
    pair = H2Pair()
    sid = pair.client.send_request(
        b"PUT", b"/x", b"api:80",
        [(b"cookie", b"a=1"), (b"content-length", b"3"), (b"cookie", b"b=2"),
         (b"transfer-encoding", b"chunked"), (b"host", b"api:80")], scheme=b"https")
    pair.client.send_data(sid, b"abc", True)
    _, (head, data) = pair.pump()
    assert (head.authority, head.scheme, head.content_length) == (b"api:80", b"https", 3)
    assert head.headers == [(b"content-length", b"3"), (b"cookie", b"a=1; b=2")]


def test_connect_request():
    pair = H2Pair()
    sid = pair.client.next_stream_id()
    pair.client_sends(RequestHead(sid, b"CONNECT", b"", b"db:5432", []))
    _, [head] = pair.pump()
    assert (head.method, head.authority, head.target, head.upgrade) == (
        b"CONNECT", b"db:5432", b"db:5432", b"connect")


def test_fast_path_response():
    pair = H2Pair()
    sid = pair.client.send_request(b"GET", b"/", b"h", [], end_stream=True)
    pair.pump()
    out = pair.server.send_response_head_and_body(sid, 404, [(b"content-type", b"text/plain")],
                                                  b"nope")
    events = pair.client.receive_data(out)
    assert (b"content-length", b"4") in events[0].headers
    assert events[1] == Data(sid, b"nope", True)


def test_send_data_splits_by_max_frame_size():
    pair = H2Pair()
    sid = pair.client.send_request(b"POST", b"/", b"h", [])
    pair.pump()
    pair.client.send_data(sid, b"x" * 40_000, True)  # default max frame 16384
    _, events = pair.pump()
    assert [len(e.data) for e in events] == [16384, 16384, 40_000 - 32768]
    assert events[-1].end_stream


def test_flow_control_blocks_until_acknowledged_then_resumes():
    pair = H2Pair(server=Http2ServerConnection(Http2Settings(
        initial_stream_window_size=16_384, initial_connection_window_size=65_535)))
    sid = pair.client.send_request(b"POST", b"/upload", b"h", [])
    pair.pump()
    body = bytes(range(256)) * 400  # 102400 bytes
    assert pair.client.local_flow_control_window(sid) == 16_384
    pair.client.send_data(sid, body, end_stream=True)
    assert pair.client.pending_send_bytes(sid) == len(body) - 16_384
    _, events = pair.pump()
    received = body_of(events)
    assert len(received) == 16_384 and not events[-1].end_stream
    # nothing moves while the runtime has not forwarded (acknowledged) the data
    assert pair.pump() == ([], [])
    rounds = 0
    while not (events and events[-1].end_stream):
        pair.server.acknowledge_received_data(sid, len(body_of(events)))
        client_events, events = pair.pump()
        assert all(isinstance(e, WindowUpdate) for e in client_events)
        received += body_of(events)
        rounds += 1
    assert received == body and rounds >= 5
    assert client_events[-1] == WindowUpdate(sid, 0)
    assert pair.client.pending_send_bytes(sid) == 0


def test_data_queued_while_blocked_keeps_order():
    pair = H2Pair(server=Http2ServerConnection(Http2Settings(initial_stream_window_size=100)))
    sid = pair.client.send_request(b"POST", b"/", b"h", [])
    pair.pump()
    chunks = [bytes([65 + i]) * 70 for i in range(6)]
    for chunk in chunks:
        pair.client.send_data(sid, chunk)
    pair.client.send_data(sid, b"", end_stream=True)
    assert pair.client.pending_send_bytes(sid) == 6 * 70 - 100
    received, ended = b"", False
    while not ended:
        _, events = pair.pump()
        received += body_of(events)
        ended = bool(events) and events[-1].end_stream
        pair.server.acknowledge_received_data(sid, len(body_of(events)))
    assert received == b"".join(chunks)


def test_trailers_wait_for_queued_data():
    pair = H2Pair(server=Http2ServerConnection(Http2Settings(initial_stream_window_size=10)))
    sid = pair.client.send_request(b"POST", b"/", b"h", [])
    pair.pump()
    pair.client.send_data(sid, b"0123456789abcdef")
    pair.client.send_trailers(sid, [(b"x-t", b"1")])
    _, events = pair.pump()
    assert body_of(events) == b"0123456789" and not any(isinstance(e, Trailers) for e in events)
    pair.server.acknowledge_received_data(sid, 10)
    _, events = pair.pump()
    assert events == [Data(sid, b"abcdef"), Trailers(sid, [(b"x-t", b"1")])]


def test_server_response_backpressure():
    pair = H2Pair(client=Http2ClientConnection(Http2Settings(initial_stream_window_size=1000)))
    sid = pair.client.send_request(b"GET", b"/big", b"h", [], end_stream=True)
    pair.pump()
    pair.server_sends(ResponseHead(sid, 200, []))
    pair.server.send_data(sid, b"z" * 5000, True)
    assert pair.server.pending_send_bytes(sid) == 4000
    events, _ = pair.pump()
    assert body_of(events) == b"z" * 1000
    pair.client.acknowledge_received_data(sid, 1000)
    events, server_events = pair.pump()
    assert server_events == [WindowUpdate(sid, 3000)]


def test_client_reset_reaches_server():
    pair = H2Pair()
    sid = pair.client.send_request(b"POST", b"/", b"h", [])
    pair.pump()
    pair.client_sends(StreamReset(sid, 8))
    _, events = pair.pump()
    assert events == [StreamReset(sid, 8, True)]
    # sending on a reset stream is a no-op, not an exception
    pair.server_sends(ResponseHead(sid, 200, []))
    pair.server.send_data(sid, b"late", True)


def test_reply_to_request_reset_in_the_same_batch_is_harmless():
    pair = H2Pair()
    sid = pair.client.send_request(b"GET", b"/", b"h", [], end_stream=True)
    pair.client.reset_stream(sid)
    events = pair.server.receive_data(pair.client.data_to_send())
    assert [type(e).__name__ for e in events] == ["RequestHead", "StreamReset"]
    # the runtime answers the RequestHead before it looks at the StreamReset
    pair.server.send_response_head_and_body(sid, 200, [], b"too late")
    pair.server.send(Trailers(sid, []))
    assert pair.pump() == ([], [])


def test_server_reset_reaches_client():
    pair = H2Pair()
    sid = pair.client.send_request(b"GET", b"/", b"h", [], end_stream=True)
    pair.pump()
    pair.server.reset_stream(sid, REFUSED_STREAM)
    events, _ = pair.pump()
    assert events == [StreamReset(sid, REFUSED_STREAM, True)]


def test_reset_stream_releases_unacknowledged_connection_window():
    settings = Http2Settings(initial_stream_window_size=60_000,
                             initial_connection_window_size=65_535)
    pair = H2Pair(server=Http2ServerConnection(settings))
    for _ in range(3):  # 3 x 60 KB through a 64 KiB connection window
        sid = pair.client.send_request(b"POST", b"/", b"h", [])
        pair.client.send_data(sid, b"q" * 60_000)
        _, events = pair.pump()
        assert len(body_of(events)) == 60_000  # never acknowledged...
        pair.client.reset_stream(sid)  # ...but the reset gives the window back
        pair.pump()


def test_too_many_request_headers_reset_stream():
    pair = H2Pair(server=Http2ServerConnection(Http2Settings(max_headers_count=10)))
    sid = pair.client.send_request(b"GET", b"/", b"h",
                                   [(b"x-%d" % i, b"v") for i in range(10)], end_stream=True)
    client_events, server_events = pair.pump()
    assert server_events == [StreamReset(sid, INTERNAL_ERROR, False)]
    assert client_events == [StreamReset(sid, INTERNAL_ERROR, True)]
    # the connection survives
    sid = pair.client.send_request(b"GET", b"/", b"h", [], end_stream=True)
    _, [head] = pair.pump()
    assert head.stream_id == sid


def test_oversized_request_headers_reset_stream():
    pair = H2Pair(server=Http2ServerConnection(Http2Settings(max_headers_kb=1)))
    sid = pair.client.send_request(b"GET", b"/", b"h", [(b"x-big", b"b" * 1100)],
                                   end_stream=True)
    _, server_events = pair.pump()
    assert server_events == [StreamReset(sid, INTERNAL_ERROR, False)]


def test_hpack_bomb_is_a_connection_error():
    pair = H2Pair(server=Http2ServerConnection(Http2Settings(max_headers_kb=1)))
    pair.client.send_request(b"GET", b"/", b"h", [(b"x-big", b"b" * 8000)], end_stream=True)
    client_events, server_events = pair.pump()
    assert isinstance(server_events[-1], ProtocolError)
    assert isinstance(client_events[-1], GoAway)


def test_oversized_response_headers_reset_on_client():
    pair = H2Pair(client=Http2ClientConnection(Http2Settings(max_headers_count=3)))
    sid = pair.client.send_request(b"GET", b"/", b"h", [], end_stream=True)
    pair.pump()
    pair.server_sends(ResponseHead(sid, 200, [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]))
    client_events, server_events = pair.pump()
    assert client_events == [StreamReset(sid, INTERNAL_ERROR, False)]
    assert server_events == [StreamReset(sid, INTERNAL_ERROR, True)]


def test_max_concurrent_streams_refuses_excess_stream():
    server = Http2ServerConnection(Http2Settings(max_concurrent_streams=2))
    raw = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    raw.initiate_connection()
    server.receive_data(raw.data_to_send())
    # a peer that ignores our SETTINGS (it has not seen them yet)
    for sid in (1, 3, 5):
        raw.send_headers(sid, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                               (":authority", "h")])
    events = server.receive_data(raw.data_to_send())
    assert [type(e).__name__ for e in events] == ["RequestHead", "RequestHead", "StreamReset"]
    assert events[2] == StreamReset(5, REFUSED_STREAM, False)
    resets = [e for e in raw.receive_data(server.data_to_send())
              if isinstance(e, h2.events.StreamReset)]
    assert [(r.stream_id, r.error_code) for r in resets] == [(5, REFUSED_STREAM)]


def test_client_respects_server_stream_limit():
    pair = H2Pair(server=Http2ServerConnection(Http2Settings(max_concurrent_streams=1)))
    assert pair.client.can_open_stream
    pair.client.send_request(b"GET", b"/", b"h", [])
    assert not pair.client.can_open_stream


def test_goaway_and_eof():
    pair = H2Pair()
    sid = pair.client.send_request(b"POST", b"/", b"h", [])
    pair.pump()
    pair.client.receive_data(pair.server.close(0, last_stream_id=sid))
    assert not pair.client.can_open_stream
    assert pair.server.receive_data(b"") == [StreamReset(sid, 8, True), ConnectionClosed()]


def test_goaway_event():
    pair = H2Pair()
    client_events = pair.client.receive_data(pair.server.close(0))
    assert client_events == [GoAway(0, 0)]


@pytest.mark.parametrize("garbage", [b"GET / HTTP/1.1\r\n\r\n", b"\x00" * 64])
def test_garbage_is_a_protocol_error(garbage):
    server = Http2ServerConnection()
    events = server.receive_data(garbage)
    assert isinstance(events[-1], ProtocolError) and events[-1].close
    assert server.receive_data(b"more") == []


def test_padding_is_acknowledged_immediately():
    server = Http2ServerConnection(Http2Settings(initial_stream_window_size=1000))
    raw = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    raw.initiate_connection()
    raw.send_headers(1, [(":method", "POST"), (":path", "/"), (":scheme", "http"),
                         (":authority", "h")])
    raw.send_data(1, b"d" * 100, pad_length=200)
    events = server.receive_data(raw.data_to_send())
    assert events[-1] == Data(1, b"d" * 100)
    assert server._streams[1].unacked == 100
