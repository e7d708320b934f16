"""HTTP/2 conformance: our server against h2's client and our client against h2's
server (bytes exchanged in memory), then RFC 9113 violations crafted as raw frames,
each asserting the exact error code read back from our output (GOAWAY for a
connection error, RST_STREAM for a stream error)."""
from __future__ import annotations

import struct

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from isthmus.proxy.protocol import (H2_PREFACE, Data, GoAway, Http2ClientConnection,
                                    Http2ServerConnection, Http2Settings, ProtocolError,
                                    RequestHead, ResponseHead, StreamReset, Trailers,
                                    WindowUpdate)
from isthmus.proxy.protocol.events import (CANCEL, ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR,
                                           PROTOCOL_ERROR, STREAM_CLOSED)
from isthmus.proxy.protocol.h2frames import COMPRESSION_ERROR, FRAME_SIZE_ERROR
from isthmus.proxy.protocol.hpack_encoder import StatelessHpackEncoder

from .wire import body_of

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20
REQ = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"h")]
POST = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/up"), (b":authority", b"h")]


# -- raw frames ------------------------------------------------------------------------
def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return struct.pack(">HBBBL", n >> 8, n & 0xFF, ftype, flags, sid) + payload


def settings(*pairs: tuple[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HL", k, v) for k, v in pairs))


def block(fields) -> bytes:
    return StatelessHpackEncoder().encode(fields)[1:]  # without the leading size update


def headers(sid: int, fields, flags: int = END_HEADERS | END_STREAM) -> bytes:
    return frame(HEADERS, flags, sid, block(fields))


def frames_of(data: bytes) -> list[tuple[int, int, int, bytes]]:
    out, pos = [], 0
    while pos < len(data):
        hi, lo, ftype, flags, sid = struct.unpack_from(">HBBBL", data, pos)
        n = hi << 8 | lo
        out.append((ftype, flags, sid & 0x7FFFFFFF, data[pos + 9:pos + 9 + n]))
        pos += 9 + n
    return out


def goaway_of(data: bytes) -> tuple[int, int] | None:
    """(last_stream_id, error code) of the GOAWAY in ``data``."""
    for ftype, _, _, payload in frames_of(data):
        if ftype == GOAWAY:
            return struct.unpack(">LL", payload[:8])
    return None


def rst_of(data: bytes) -> dict[int, int]:
    return {sid: struct.unpack(">L", p)[0] for t, _, sid, p in frames_of(data) if t == RST_STREAM}


def raw_server(**kw) -> Http2ServerConnection:
    """Our server after the client preface and an empty SETTINGS (not yet ACKed)."""
    server = Http2ServerConnection(Http2Settings(**kw))
    assert server.receive_data(H2_PREFACE + settings()) == []
    out = frames_of(server.data_to_send())
    assert out[0][0] == SETTINGS and (SETTINGS, ACK, 0, b"") in out
    return server


def raw_client(**kw) -> tuple[Http2ClientConnection, int]:
    """Our client with one open request (stream 1) after the server's SETTINGS."""
    client = Http2ClientConnection(Http2Settings(**kw))
    assert client.data_to_send().startswith(H2_PREFACE)
    assert client.receive_data(settings() + frame(SETTINGS, ACK, 0)) == []
    sid = client.send_request(b"GET", b"/", b"h", [], end_stream=True)
    client.data_to_send()
    return client, sid


def connection_error(conn, data: bytes, code: int) -> None:
    events = conn.receive_data(data)
    assert events and isinstance(events[-1], ProtocolError), events
    err = events[-1]
    assert err.close and err.reason.startswith("http/2 protocol error: ")
    assert err.status_code == (502 if isinstance(conn, Http2ClientConnection) else 400)
    assert goaway_of(conn.data_to_send())[1] == code
    assert conn.receive_data(frame(PING, 0, 0, b"12345678")) == []  # quiet afterwards
    assert conn.data_to_send() == b""


def stream_error(conn, data: bytes, sid: int, code: int) -> list:
    events = conn.receive_data(data)
    assert StreamReset(sid, code, False) in events, events
    assert rst_of(conn.data_to_send()) == {sid: code}
    return events


def still_serving(server: Http2ServerConnection, sid: int) -> None:
    [head] = server.receive_data(headers(sid, REQ))
    assert isinstance(head, RequestHead) and head.stream_id == sid


# -- h2 peers ----------------------------------------------------------------------------
def h2_peer(client_side: bool, local: dict | None = None) -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=client_side, header_encoding=None))
    conn.initiate_connection()
    if local:
        conn.update_settings(local)
    return conn


class Link:
    """One of ours and one of h2's, joined; `pump()` returns (h2 events, our events)."""

    def __init__(self, ours, theirs) -> None:
        self.ours, self.theirs = ours, theirs
        self._sent = b""
        self.pump()

    def send(self, event) -> None:
        """``ours.send(event)``, delivered by the next `pump()`."""
        self._sent += self.ours.send(event)

    def pump(self) -> tuple[list, list]:
        theirs_events, our_events = [], []
        while True:
            to_theirs, to_ours = self._sent + self.ours.data_to_send(), self.theirs.data_to_send()
            self._sent = b""
            if not to_theirs and not to_ours:
                return theirs_events, our_events
            if to_ours:
                our_events += self.ours.receive_data(to_ours)
            if to_theirs:
                theirs_events += self.theirs.receive_data(to_theirs)


def of(events, cls) -> list:
    return [e for e in events if isinstance(e, cls)]


# == our server, h2's client ==============================================================
def test_server_decodes_h2s_hpack_across_many_requests():
    link = Link(Http2ServerConnection(), h2_peer(True))
    for i in range(40):  # h2's encoder: Huffman, dynamic table, evictions
        sid = link.theirs.get_next_available_stream_id()
        extra = [(b"x-request-id", b"%032x" % (i * 7919)), (b"user-agent", b"h2/%d" % (i % 3)),
                 (b"cookie", b"a=%d" % i), (b"cookie", b"b=2")]
        link.theirs.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"),
                                       (b":authority", b"svc:%d" % (i % 5)),
                                       (b":path", b"/p/%d?q=%s" % (i, b"z" * i))] + extra,
                                 end_stream=True)
        _, [head] = link.pump()
        assert (head.method, head.scheme, head.authority, head.target) == (
            b"GET", b"https", b"svc:%d" % (i % 5), b"/p/%d?q=%s" % (i, b"z" * i))
        assert head.headers == extra[:2] + [(b"cookie", b"a=%d; b=2" % i)] and head.end_stream
        out = link.ours.send_response_head_and_body(sid, 200, [(b"x-i", b"%d" % i)], b"r%d" % i)
        resp, data, _ = link.theirs.receive_data(out)
        assert resp.headers == [(b":status", b"200"), (b"x-i", b"%d" % i),
                                (b"content-length", b"%d" % len(b"r%d" % i))]
        assert data.data == b"r%d" % i
    assert len(link.ours._decoder.dynamic_table) > 5  # h2's encoder did index fields


def test_request_body_larger_than_the_windows():
    server = Http2ServerConnection(Http2Settings(initial_stream_window_size=1000,
                                                 initial_connection_window_size=65_535))
    link = Link(server, h2_peer(True))
    body = bytes(range(256)) * 1000  # 256000 bytes through 1000-byte stream windows
    link.theirs.send_headers(1, POST)
    sent, received, rounds = 0, b"", 0
    while True:
        window = link.theirs.local_flow_control_window(1)
        n = min(window, len(body) - sent, link.theirs.max_outbound_frame_size)
        if n > 0:
            link.theirs.send_data(1, body[sent:sent + n], end_stream=sent + n == len(body))
            sent += n
        _, events = link.pump()
        chunk = body_of(events)
        received += chunk
        if events and isinstance(events[-1], Data) and events[-1].end_stream:
            break
        server.acknowledge_received_data(1, len(chunk))
        rounds += 1
        assert rounds < 1000
    assert received == body and rounds > 200


def test_response_body_larger_than_the_peers_windows_with_trailers():
    link = Link(Http2ServerConnection(), h2_peer(True))
    link.theirs.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 3000})
    link.pump()
    link.theirs.send_headers(1, REQ, end_stream=True)
    link.pump()
    body = b"0123456789" * 20_000
    link.send(ResponseHead(1, 200, [(b"content-type", b"application/grpc")]))
    link.ours.send_data(1, body)
    link.ours.send_trailers(1, [(b"grpc-status", b"0")])
    got, trailers, updates = b"", None, []
    for _ in range(500):
        events, ours = link.pump()
        updates += of(ours, WindowUpdate)
        for e in events:
            if isinstance(e, h2.events.DataReceived):
                got += e.data
                link.theirs.acknowledge_received_data(e.flow_controlled_length, 1)
            elif isinstance(e, h2.events.TrailersReceived):
                trailers = e.headers
        if trailers is not None:
            break
    assert got == body and trailers == [(b"grpc-status", b"0")]
    assert updates[-1] == WindowUpdate(1, 0) and len(updates) > 10


def test_continuation_both_ways():
    link = Link(Http2ServerConnection(), h2_peer(True))
    big = [(b"x-big-%d" % i, bytes([97 + i]) * 9000) for i in range(4)]  # 36 KB > 16 KB frames
    link.theirs.send_headers(1, REQ + big, end_stream=True)
    wire = link.theirs.data_to_send()
    assert CONTINUATION in [f[0] for f in frames_of(wire)]
    [head] = link.ours.receive_data(wire)
    assert head.headers == big
    out = link.ours.send(ResponseHead(1, 200, big, end_stream=True))
    assert [f[0] for f in frames_of(out)].count(CONTINUATION) == 2
    [resp, ended] = link.theirs.receive_data(out)
    assert resp.headers[1:] == big and isinstance(ended, h2.events.StreamEnded)


def test_ping_and_settings_changes_mid_stream():
    link = Link(Http2ServerConnection(), h2_peer(True))
    link.theirs.ping(b"8 bytes!")
    events, _ = link.pump()
    assert [e.ping_data for e in of(events, h2.events.PingAckReceived)] == [b"8 bytes!"]
    link.theirs.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    link.pump()
    link.theirs.send_headers(1, REQ, end_stream=True)
    link.pump()
    link.send(ResponseHead(1, 200, []))
    link.ours.send_data(1, b"y" * 50_000, True)
    assert link.ours.pending_send_bytes(1) == 50_000  # a zero window: all queued
    link.pump()
    # (h2 checks a batch's frames against the frame size it had when the batch began, so
    # the larger frame size goes first, on its own)
    link.theirs.update_settings({h2.settings.SettingCodes.MAX_FRAME_SIZE: 32_768})
    events, ours = link.pump()
    assert [type(e).__name__ for e in events] == ["SettingsAcknowledged"] and ours == []
    link.theirs.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 40_000})
    events, ours = link.pump()
    sizes = [e.flow_controlled_length for e in of(events, h2.events.DataReceived)]
    assert sizes == [32_768, 40_000 - 32_768]  # the new window, in the new frame size
    assert ours == [WindowUpdate(1, 10_000)]
    link.theirs.acknowledge_received_data(40_000, 1)
    events, ours = link.pump()
    assert of(events, h2.events.StreamEnded) and ours == [WindowUpdate(1, 0)]


def test_resets_both_ways_and_goaway_both_ways():
    link = Link(Http2ServerConnection(), h2_peer(True))
    link.theirs.send_headers(1, POST)
    link.theirs.send_headers(3, POST)
    link.pump()
    link.theirs.reset_stream(1, CANCEL)
    _, ours = link.pump()
    assert ours == [StreamReset(1, CANCEL, True)]
    link.ours.reset_stream(3, STREAM_CLOSED)
    events, _ = link.pump()
    assert [(e.stream_id, e.error_code) for e in of(events, h2.events.StreamReset)] == [(3, 5)]
    link.theirs.send_headers(5, REQ, end_stream=True)
    link.pump()
    [terminated] = link.theirs.receive_data(link.ours.close(0, last_stream_id=5))
    assert (terminated.last_stream_id, terminated.error_code) == (5, 0)
    link.theirs.close_connection(0)
    _, ours = link.pump()
    assert ours == [GoAway(0, 0)]


def test_extended_connect_and_trailers_from_h2_client():
    link = Link(Http2ServerConnection(), h2_peer(True))
    link.theirs.send_headers(1, [(b":method", b"CONNECT"), (b":protocol", b"websocket"),
                                 (b":scheme", b"https"), (b":path", b"/chat"),
                                 (b":authority", b"h")])
    link.theirs.send_headers(3, POST + [(b"te", b"trailers")])
    link.theirs.send_data(3, b"abc")
    link.theirs.send_headers(3, [(b"grpc-status", b"0")], end_stream=True)
    _, ours = link.pump()
    assert (ours[0].method, ours[0].upgrade, ours[0].target) == (b"CONNECT", b"websocket", b"/chat")
    assert ours[1:] == [ours[1], Data(3, b"abc"), Trailers(3, [(b"grpc-status", b"0")])]
    assert ours[1].headers == [(b"te", b"trailers")]


# == our client, h2's server =============================================================
def test_client_against_h2_server_grpc_style_with_large_bodies():
    client = Http2ClientConnection(Http2Settings(initial_stream_window_size=5000))
    link = Link(client, h2_peer(False, {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 7000}))
    sid = client.send_request(b"POST", b"/svc/M", b"h", [(b"te", b"trailers")])
    payload = b"m" * 100_000
    client.send_data(sid, payload, True)
    got, rounds = b"", 0
    while True:
        events, _ = link.pump()
        done = False
        for e in events:
            if isinstance(e, h2.events.DataReceived):
                got += e.data
                link.theirs.acknowledge_received_data(e.flow_controlled_length, sid)
            done = done or isinstance(e, h2.events.StreamEnded)
        if done:
            break
        rounds += 1
        assert rounds < 200
    assert got == payload
    link.theirs.send_headers(sid, [(b":status", b"100")])
    link.theirs.send_headers(sid, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    _, heads = link.pump()
    assert heads == [ResponseHead(sid, 200, [(b"content-type", b"application/grpc")],
                                  b"", b"2")]  # the 100 was skipped
    sent = 0
    reply = b"r" * 60_000
    received = []
    while sent < len(reply):
        pad = 10 if sent == 0 else None  # padding counts against the window too
        n = min(link.theirs.local_flow_control_window(sid) - (pad or -1) - 1, len(reply) - sent,
                16384)
        if n > 0:
            link.theirs.send_data(sid, reply[sent:sent + n], pad_length=pad)
            sent += n
        _, ours = link.pump()
        received += ours
        client.acknowledge_received_data(sid, len(body_of(ours)))
    link.theirs.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)
    _, ours = link.pump()
    received += ours
    assert body_of(received) == reply and received[-1] == Trailers(sid, [(b"grpc-status", b"0")])
    assert sid not in client._streams  # everything acknowledged: forgotten


def test_client_big_response_headers_ping_settings_resets_goaway():
    client = Http2ClientConnection()
    link = Link(client, h2_peer(False))
    s1 = client.send_request(b"GET", b"/", b"h", [], end_stream=True)
    s3 = client.send_request(b"GET", b"/", b"h", [], end_stream=True)
    link.pump()
    big = [(b"x-big", b"v" * 40_000)]
    link.theirs.send_headers(s1, [(b":status", b"204")] + big, end_stream=True)
    wire = link.theirs.data_to_send()
    assert CONTINUATION in [f[0] for f in frames_of(wire)]
    assert client.receive_data(wire) == [ResponseHead(s1, 204, big, b"", b"2", end_stream=True)]
    link.theirs.ping(b"pingpong")
    events, _ = link.pump()
    assert of(events, h2.events.PingAckReceived)
    link.theirs.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1})
    link.pump()
    assert not client.can_open_stream  # stream 3 is still open
    link.theirs.reset_stream(s3, 7)
    _, ours = link.pump()
    assert ours == [StreamReset(s3, 7, True)] and client.can_open_stream
    s5 = client.send_request(b"POST", b"/", b"h", [])
    link.pump()
    client.reset_stream(s5, CANCEL)
    events, _ = link.pump()
    assert [(e.stream_id, e.error_code) for e in of(events, h2.events.StreamReset)] == [(s5, 8)]
    link.theirs.close_connection(0, last_stream_id=s1)
    _, ours = link.pump()
    assert ours == [GoAway(s1, 0)] and not client.can_open_stream


# == graceful GOAWAY: in-flight streams finish ==========================================
def test_streams_below_our_goaway_finish_and_new_ones_are_ignored():
    server = raw_server()
    server.receive_data(headers(1, POST, END_HEADERS))
    goaway = server.close(0, last_stream_id=1)
    assert goaway_of(goaway) == (1, 0)
    events = server.receive_data(frame(DATA, END_STREAM, 1, b"body") + headers(3, REQ))
    assert events == [Data(1, b"body", True)]  # stream 3 is above the GOAWAY: ignored
    out = server.send_response_head_and_body(1, 200, [], b"ok")
    assert [f[0] for f in frames_of(out)] == [HEADERS, DATA]
    assert server.receive_data(frame(DATA, END_STREAM, 3, b"x")) == []  # still ignored


# == connection errors ===================================================================
def test_invalid_preface():
    connection_error(Http2ServerConnection(), b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", PROTOCOL_ERROR)


def test_first_frame_must_be_settings():
    connection_error(Http2ServerConnection(), H2_PREFACE + frame(PING, 0, 0, b"x" * 8),
                     PROTOCOL_ERROR)
    connection_error(Http2ServerConnection(), H2_PREFACE + frame(SETTINGS, ACK, 0), PROTOCOL_ERROR)
    client = Http2ClientConnection()
    client.data_to_send()
    connection_error(client, headers(1, [(b":status", b"200")]), PROTOCOL_ERROR)


@pytest.mark.parametrize("data, code", [
    (frame(DATA, 0, 1, b"x" * 16_385), FRAME_SIZE_ERROR),            # over our MAX_FRAME_SIZE
    (frame(SETTINGS, 0, 0, b"\x00\x04\x00\x00\x01"), FRAME_SIZE_ERROR),  # not a multiple of 6
    (frame(SETTINGS, ACK, 0, b"\x00" * 6), FRAME_SIZE_ERROR),           # ACK with a payload
    (frame(SETTINGS, 0, 1), PROTOCOL_ERROR),                           # on a stream
    (settings((2, 2)), PROTOCOL_ERROR),                                # ENABLE_PUSH 2
    (settings((4, 2**31)), FLOW_CONTROL_ERROR),                        # INITIAL_WINDOW_SIZE
    (settings((5, 16_383)), PROTOCOL_ERROR),                           # MAX_FRAME_SIZE too small
    (settings((5, 2**24)), PROTOCOL_ERROR),                            # MAX_FRAME_SIZE too big
    (settings((8, 2)), PROTOCOL_ERROR),                                # ENABLE_CONNECT_PROTOCOL
    (frame(PING, 0, 0, b"x" * 7), FRAME_SIZE_ERROR),
    (frame(PING, 0, 1, b"x" * 8), PROTOCOL_ERROR),
    (frame(DATA, 0, 0, b"x"), PROTOCOL_ERROR),                         # DATA on stream 0
    (frame(DATA, 0, 1, b"x"), PROTOCOL_ERROR),                         # DATA on an idle stream
    (frame(HEADERS, END_HEADERS, 0, block(REQ)), PROTOCOL_ERROR),      # HEADERS on stream 0
    (headers(2, REQ), PROTOCOL_ERROR),                                 # even: clients open odd
    (headers(5, REQ) + headers(3, REQ), PROTOCOL_ERROR),               # ids must increase
    (frame(CONTINUATION, END_HEADERS, 1, block(REQ)), PROTOCOL_ERROR),  # no HEADERS before
    (headers(1, REQ, 0) + frame(DATA, 0, 1, b"x"), PROTOCOL_ERROR),     # inside a header block
    (headers(1, REQ, 0) + frame(PING, 0, 0, b"x" * 8), PROTOCOL_ERROR),
    (headers(1, REQ, 0) + frame(0x20, 0, 0), PROTOCOL_ERROR),          # unknown type, too
    (headers(1, REQ, 0) + frame(CONTINUATION, END_HEADERS, 3), PROTOCOL_ERROR),  # other stream
    (frame(RST_STREAM, 0, 1, b"\x00\x00\x00\x08"), PROTOCOL_ERROR),    # on an idle stream
    (frame(RST_STREAM, 0, 0, b"\x00\x00\x00\x08"), PROTOCOL_ERROR),
    (headers(1, REQ) + frame(RST_STREAM, 0, 1, b"\x00\x08"), FRAME_SIZE_ERROR),
    (frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x01"), FRAME_SIZE_ERROR),
    (frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x00\x00"), PROTOCOL_ERROR),  # increment 0
    (frame(WINDOW_UPDATE, 0, 1, b"\x00\x00\x00\x01"), PROTOCOL_ERROR),  # on an idle stream
    (frame(WINDOW_UPDATE, 0, 0, struct.pack(">L", 2**31 - 65_535)), FLOW_CONTROL_ERROR),
    (frame(GOAWAY, 0, 1, b"\x00" * 8), PROTOCOL_ERROR),
    (frame(GOAWAY, 0, 0, b"\x00" * 4), FRAME_SIZE_ERROR),
    (frame(PUSH_PROMISE, END_HEADERS, 1, b"\x00\x00\x00\x02" + block(REQ)), PROTOCOL_ERROR),
    (frame(PRIORITY, 0, 0, b"\x00" * 5), PROTOCOL_ERROR),
    (frame(DATA, PADDED, 1, b""), FRAME_SIZE_ERROR),
    (headers(1, POST, END_HEADERS) + frame(DATA, PADDED, 1, b"\x03ab"), PROTOCOL_ERROR),
    (frame(HEADERS, END_HEADERS | PADDED, 1, b"\x40" + block(REQ)), PROTOCOL_ERROR),
    (frame(HEADERS, END_HEADERS | PRIO, 1, b"\x00\x00"), FRAME_SIZE_ERROR),
    (frame(HEADERS, END_HEADERS, 1, b"\xbe"), COMPRESSION_ERROR),      # index past the table
    (frame(HEADERS, END_HEADERS, 1, b"\x82\x20"), COMPRESSION_ERROR),  # size update too late
    (frame(HEADERS, END_HEADERS, 1, b"\x3f\xe2\x1f"), COMPRESSION_ERROR),  # above our table size
], ids=lambda v: v.hex()[:24] if isinstance(v, bytes) else str(v))
def test_connection_errors(data, code):
    connection_error(raw_server(), data, code)


def test_frames_on_closed_streams():
    server = raw_server()
    server.receive_data(headers(1, REQ))
    server.send_response_head_and_body(1, 200, [], b"done")
    assert 1 not in server._streams  # ended both ways
    assert server.receive_data(frame(WINDOW_UPDATE, 0, 1, b"\x00\x00\x00\x01")
                               + frame(RST_STREAM, 0, 1, b"\x00\x00\x00\x08")
                               + frame(PRIORITY, 0, 1, b"\x00\x00\x00\x00\x10")) == []
    connection_error(server, frame(DATA, 0, 1, b"late"), STREAM_CLOSED)
    server = raw_server()
    server.receive_data(headers(1, REQ))
    server.send_response_head_and_body(1, 200, [], b"done")
    connection_error(server, headers(1, [(b"x", b"y")]), STREAM_CLOSED)


def test_connection_window_overrun():
    server = raw_server(initial_stream_window_size=1 << 20, initial_connection_window_size=65_535)
    server.receive_data(frame(SETTINGS, ACK, 0))  # our 1 MiB stream windows apply
    data = b"".join(headers(s, POST, END_HEADERS) + frame(DATA, 0, s, b"d" * 16_384)
                    for s in (1, 3, 5))
    assert len(body_of(server.receive_data(data))) == 49_152
    connection_error(server, frame(DATA, 0, 5, b"d" * 16_384), FLOW_CONTROL_ERROR)


def test_settings_change_overflowing_a_stream_window():
    client, sid = raw_client()
    client.receive_data(frame(WINDOW_UPDATE, 0, sid, struct.pack(">L", 2**31 - 1 - 65_535)))
    connection_error(client, settings((4, 65_536)), FLOW_CONTROL_ERROR)


def test_hpack_bomb_and_continuation_flood():
    server = raw_server(max_headers_kb=1)
    connection_error(server, headers(1, REQ + [(b"x", b"y" * 8000)]), ENHANCE_YOUR_CALM)
    server = raw_server(max_headers_kb=1)
    flood = headers(1, REQ, 0) + frame(CONTINUATION, 0, 1, b"\x00" * 10_000) * 2
    connection_error(server, flood, ENHANCE_YOUR_CALM)


def test_client_side_connection_errors():
    client, sid = raw_client()
    connection_error(client, settings((2, 1)), PROTOCOL_ERROR)  # a server may not enable push
    client, sid = raw_client()
    promise = frame(PUSH_PROMISE, END_HEADERS, sid, b"\x00\x00\x00\x02" + block(REQ))
    connection_error(client, promise, PROTOCOL_ERROR)
    client, sid = raw_client()
    connection_error(client, headers(2, [(b":status", b"200")]), PROTOCOL_ERROR)  # server-opened
    client, sid = raw_client()
    connection_error(client, headers(sid + 2, [(b":status", b"200")]), PROTOCOL_ERROR)  # idle
    client, sid = raw_client()
    connection_error(client, frame(DATA, 0, sid + 2, b"x"), PROTOCOL_ERROR)


# == stream errors =======================================================================
def test_data_after_end_stream_is_stream_closed():
    server = raw_server()
    server.receive_data(headers(1, POST))
    stream_error(server, frame(DATA, 0, 1, b"x"), 1, STREAM_CLOSED)
    still_serving(server, 3)


def test_stream_flow_control_errors():
    server = raw_server()
    server.receive_data(headers(1, POST, END_HEADERS))
    big = b"".join(frame(DATA, 0, 1, b"d" * 16_384) for _ in range(4))  # 65536 > 65535
    events = stream_error(server, big, 1, FLOW_CONTROL_ERROR)
    assert len(body_of(events)) == 3 * 16_384
    still_serving(server, 3)
    server.receive_data(headers(5, POST, END_HEADERS))
    stream_error(server, frame(WINDOW_UPDATE, 0, 5, b"\x00\x00\x00\x00"), 5, PROTOCOL_ERROR)
    server.receive_data(headers(7, POST, END_HEADERS))
    overflow = frame(WINDOW_UPDATE, 0, 7, struct.pack(">L", 2**31 - 65_535))
    stream_error(server, overflow, 7, FLOW_CONTROL_ERROR)
    still_serving(server, 9)


def test_priority_problems_are_stream_errors():
    server = raw_server()
    server.receive_data(headers(1, POST, END_HEADERS))
    stream_error(server, frame(PRIORITY, 0, 1, b"\x00\x00\x00\x03\x10"[:4]), 1, FRAME_SIZE_ERROR)
    server.receive_data(headers(3, POST, END_HEADERS))
    stream_error(server, frame(PRIORITY, 0, 3, b"\x00\x00\x00\x03\x10"), 3, PROTOCOL_ERROR)
    self_dep = frame(HEADERS, END_HEADERS | PRIO, 5, b"\x00\x00\x00\x05\x10" + block(REQ))
    events = stream_error(server, self_dep, 5, PROTOCOL_ERROR)
    assert events == [StreamReset(5, PROTOCOL_ERROR, False)]
    still_serving(server, 7)


_A, _H = (b":authority", b"h"), (b"host", b"h")


@pytest.mark.parametrize("fields", [
    REQ + [(b"X-Upper", b"1")],
    REQ + [(b"connection", b"close")],
    REQ + [(b"keep-alive", b"5")],
    REQ + [(b"proxy-connection", b"x")],
    REQ + [(b"transfer-encoding", b"chunked")],
    REQ + [(b"upgrade", b"websocket")],
    REQ + [(b"te", b"gzip")],
    REQ[1:],                                                   # no :method
    REQ[:1] + REQ[2:],                                         # no :scheme
    REQ[:2] + REQ[3:],                                         # no :path
    [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b""), _A],
    REQ + [(b":path", b"/again")],                            # duplicate
    REQ + [(b":foo", b"bar")],                                 # unknown pseudo-header
    REQ + [(b":status", b"200")],                              # a response's
    REQ[:3] + [(b"x", b"1"), _A],                              # pseudo after regular
    [(b":method", b"CONNECT"), _A, (b":path", b"/")],          # plain CONNECT with :path
    [(b":method", b"CONNECT")],                                # CONNECT without :authority
    REQ + [(b":protocol", b"websocket")],                      # :protocol without CONNECT
    REQ + [(b"host", b"other")],                               # host differs from :authority
    REQ[:3] + [(b"host", b"a"), (b"host", b"a")],              # two hosts
    REQ[:3],                                                   # neither :authority nor host
    REQ + [(b"x", b"a\r\nb")],
    REQ + [(b"x", b" lead")],
    REQ + [(b"x", b"trail\t")],
    REQ + [(b"x", b"nul\x00")],
    REQ + [(b"a b", b"1")],
    REQ + [(b"content-length", b"abc")],
    REQ + [(b"content-length", b"1"), (b"content-length", b"2")],
    REQ + [(b"content-length", b"5")],                         # END_STREAM, no body
], ids=lambda f: repr(f[-1]))
def test_malformed_requests_are_stream_errors(fields):
    server = raw_server()
    events = stream_error(server, headers(1, fields), 1, PROTOCOL_ERROR)
    assert events == [StreamReset(1, PROTOCOL_ERROR, False)]
    assert server.receive_data(frame(DATA, END_STREAM, 1, b"late")) == []  # ignored after RST
    still_serving(server, 3)


def test_accepted_request_variants():
    server = raw_server()
    ok = [REQ[:3] + [_H], [(b":method", b"CONNECT"), _A], REQ + [_H, (b"te", b"Trailers")],
          REQ + [(b"content-length", b"0"), (b"content-length", b"0")],
          [(b":method", b"OPTIONS"), (b":scheme", b"http"), (b":path", b"*"), _A]]
    for i, fields in enumerate(ok):
        [head] = server.receive_data(headers(2 * i + 1, fields))
        assert isinstance(head, RequestHead), fields
    assert head.target == b"*"


@pytest.mark.parametrize("body_frames, name", [
    (frame(DATA, 0, 1, b"123") + frame(DATA, END_STREAM, 1, b"45"), "more than declared"),
    (frame(DATA, END_STREAM, 1, b"12"), "less than declared"),
    (frame(DATA, 0, 1, b"12") + headers(1, [(b"t", b"1")]), "trailers before the end"),
])
def test_content_length_mismatch(body_frames, name):
    server = raw_server()
    [head] = server.receive_data(headers(1, POST + [(b"content-length", b"4")], END_HEADERS))
    assert head.content_length == 4
    events = server.receive_data(body_frames)
    assert events[-1] == StreamReset(1, PROTOCOL_ERROR, False), name
    assert rst_of(server.data_to_send()) == {1: PROTOCOL_ERROR}
    still_serving(server, 3)


@pytest.mark.parametrize("trailers", [
    headers(1, [(b":path", b"/")]),                       # pseudo-header in trailers
    headers(1, [(b"grpc-status", b"0")], END_HEADERS),    # trailers without END_STREAM
    headers(1, [(b"connection", b"x")]),
])
def test_malformed_trailers(trailers):
    server = raw_server()
    server.receive_data(headers(1, POST, END_HEADERS) + frame(DATA, 0, 1, b"x"))
    stream_error(server, trailers, 1, PROTOCOL_ERROR)
    still_serving(server, 3)


@pytest.mark.parametrize("fields, end", [
    ([], True),                                            # no :status
    ([(b":status", b"2xx")], True),
    ([(b":status", b"200"), (b":status", b"200")], True),
    ([(b":status", b"200"), (b":path", b"/")], True),      # a request's pseudo-header
    ([(b":status", b"200"), (b"transfer-encoding", b"chunked")], True),
    ([(b":status", b"101")], False),                       # no 101 in HTTP/2
    ([(b":status", b"103")], True),                        # informational with END_STREAM
    ([(b":status", b"200"), (b"content-length", b"3")], True),
])
def test_malformed_responses_are_stream_errors(fields, end):
    client, sid = raw_client()
    events = client.receive_data(headers(sid, fields, END_HEADERS | (END_STREAM if end else 0)))
    assert events == [StreamReset(sid, PROTOCOL_ERROR, False)]
    assert rst_of(client.data_to_send()) == {sid: PROTOCOL_ERROR}
    assert client.can_open_stream


def test_responses_without_a_body_may_declare_a_length():
    client, sid = raw_client()
    head_sid = client.send_request(b"HEAD", b"/", b"h", [], end_stream=True)
    cl = [(b"content-length", b"10")]
    events = client.receive_data(headers(sid, [(b":status", b"304")] + cl)
                                 + headers(head_sid, [(b":status", b"200")] + cl))
    assert [(e.status, e.content_length, e.end_stream) for e in events] == [
        (304, 10, True), (200, 10, True)]


# == things that are fine ================================================================
def test_tolerated_frames():
    server = raw_server()
    padded = frame(HEADERS, END_HEADERS | PADDED | PRIO, 1,
                   b"\x03" + b"\x00\x00\x00\x00\x10" + block(POST) + b"\x00" * 3)
    data = (padded + frame(0x20, 0xFF, 1, b"unknown") + frame(PRIORITY, 0, 9, b"\x00" * 5)
            + frame(DATA, PADDED | END_STREAM, 1, b"\x05hello\x00\x00\x00\x00\x00")
            + frame(PING, 0, 0, b"pingping") + frame(PING, ACK, 0, b"whatever"))
    events = server.receive_data(data)
    assert [type(e).__name__ for e in events] == ["RequestHead", "Data"]
    assert events[1] == Data(1, b"hello", True)
    out = server.data_to_send()
    assert (PING, ACK, 0, b"pingping") in frames_of(out) and not rst_of(out)
    assert (PING, ACK, 0, b"whatever") not in frames_of(out)  # an ACK is not answered
    still_serving(server, 3)


def test_frames_arriving_byte_by_byte():
    server = Http2ServerConnection()
    wire = (H2_PREFACE + settings((4, 100_000)) + headers(1, POST, END_HEADERS)
            + frame(DATA, END_STREAM, 1, b"abc"))
    events = []
    for i in range(len(wire)):
        events += server.receive_data(wire[i:i + 1])
    assert [type(e).__name__ for e in events] == ["RequestHead", "Data"]
    assert events[1] == Data(1, b"abc", True)


def test_data_on_a_stream_we_reset_is_ignored_and_credited():
    server = raw_server(initial_connection_window_size=65_535)
    server.receive_data(headers(1, POST, END_HEADERS) + frame(DATA, 0, 1, b"x" * 16_000))
    server.reset_stream(1, CANCEL)
    server.data_to_send()
    late = frame(DATA, 0, 1, b"y" * 16_000) * 3
    assert server.receive_data(late) == []
    credited = [f for f in frames_of(server.data_to_send()) if f[0] == WINDOW_UPDATE]
    assert credited and sum(struct.unpack(">L", p)[0] for *_, p in credited) >= 32_000


def test_padding_is_given_back_at_once():
    """Only data counts until the runtime acknowledges it: 20 frames of 10 bytes and
    250 bytes of padding each fit a 1000-byte stream window."""
    server = raw_server(initial_stream_window_size=1000)
    server.receive_data(frame(SETTINGS, ACK, 0) + headers(1, POST, END_HEADERS))
    padded = frame(DATA, PADDED, 1, b"\xfa" + b"d" * 10 + b"\x00" * 250)
    events = server.receive_data(padded * 20)
    assert body_of(events) == b"d" * 200 and not any(isinstance(e, StreamReset) for e in events)
    updates = [f for f in frames_of(server.data_to_send()) if f[0] == WINDOW_UPDATE and f[2] == 1]
    assert sum(struct.unpack(">L", p)[0] for *_, p in updates) >= 20 * 251 - 500


def test_smaller_header_table_size():
    """Our SETTINGS_HEADER_TABLE_SIZE below 4096: h2's encoder shrinks its table after our
    SETTINGS and we decode on; a peer that keeps using the larger table is a
    COMPRESSION_ERROR once it acknowledged the smaller one."""
    server = Http2ServerConnection(Http2Settings(hpack_table_size=256))
    link = Link(server, h2_peer(True))
    for i in range(10):
        sid = link.theirs.get_next_available_stream_id()
        link.theirs.send_headers(sid, REQ + [(b"x-n", b"%d" % i * 20)], end_stream=True)
        _, [head] = link.pump()
        assert head.headers == [(b"x-n", b"%d" % i * 20)]
        assert server._decoder.table_size <= 256
    server = raw_server(hpack_table_size=256)
    server.receive_data(frame(SETTINGS, ACK, 0))
    connection_error(server, headers(1, REQ), COMPRESSION_ERROR)  # no size update first
    server = raw_server(hpack_table_size=256)
    server.receive_data(frame(SETTINGS, ACK, 0))
    still_serving_block = frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x3f\xe1\x01" + block(REQ))
    [head] = server.receive_data(still_serving_block)  # an update to 256, then the fields
    assert isinstance(head, RequestHead)


def test_settings_from_config_are_clamped_to_the_protocol():
    client = Http2ClientConnection(Http2Settings(max_frame_size=2**25, initial_stream_window_size=2**32,
                                                 initial_connection_window_size=2**33))
    server = Http2ServerConnection()
    assert server.receive_data(client.data_to_send()) == []  # our SETTINGS are valid
    assert not any(isinstance(e, ProtocolError) for e in client.receive_data(server.data_to_send()))
