"""Property tests: arbitrary bytes never make a codec raise; they produce events,
or a ProtocolError after which the codec stays quiet."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isthmus.proxy.protocol import (Data, Http1ClientConnection, Http1Limits,
                                    Http1ServerConnection, Http2ClientConnection,
                                    Http2ServerConnection, Http2Settings, ProtocolError,
                                    RequestHead, ResponseHead)

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# Fragments that make random input reach deep parser states.
_TOKENS = [b"GET ", b"POST ", b"CONNECT ", b"HEAD ", b"/", b"http://h:1/", b"*", b" HTTP/1.1",
           b" HTTP/1.0", b"\r\n", b"\n", b"\r", b"Host: h", b"Content-Length: ", b"5", b"0",
           b"-1", b"Transfer-Encoding: ", b"chunked", b"identity", b"Connection: ",
           b"upgrade", b"close", b"keep-alive", b"Upgrade: ", b"websocket", b"h2c",
           b"Expect: 100-continue", b": ", b" ", b"\t", b"\x00", b"\xff", b"3\r\nabc\r\n",
           b"0\r\n\r\n", b"X-A: ", b"a" * 50, b"HTTP/1.1 200 OK", b"HTTP/1.1 101 S",
           b"HTTP/1.1 100 Continue"]
http_ish = st.lists(st.one_of(st.sampled_from(_TOKENS), st.binary(max_size=8)),
                    max_size=40).map(b"".join)
wire = st.one_of(st.binary(max_size=300), http_ish)
splits = st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=8)


def _chunks(data: bytes, sizes: list[int]):
    i = k = 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        yield data[i:i + n]
        i += n
        k += 1


def _check_stream(events: list) -> None:
    seen_error = False
    for e in events:
        assert not seen_error, "events after a ProtocolError"
        if isinstance(e, ProtocolError):
            assert 400 <= e.status_code <= 599
            seen_error = True
        if isinstance(e, RequestHead):
            assert all(name == name.lower() for name, _ in e.headers)
        if isinstance(e, Data):
            assert isinstance(e.data, bytes)


@FUZZ
@given(wire, splits, st.booleans())
def test_server_parser_never_raises(data, sizes, eof):
    conn = Http1ServerConnection(Http1Limits(max_headers_kb=1, max_headers_count=8))
    events = []
    for chunk in _chunks(data, sizes):
        events += conn.receive_data(chunk)
    if eof:
        events += conn.receive_data(b"")
    _check_stream(events)


@FUZZ
@given(wire, splits)
def test_server_parse_is_independent_of_splitting(data, sizes):
    if not data:
        return  # receive_data(b"") means EOF
    whole = Http1ServerConnection().receive_data(data)
    conn = Http1ServerConnection()
    pieces = []
    for chunk in _chunks(data, sizes):
        pieces += conn.receive_data(chunk)
    def shape(events):
        return ([(type(e).__name__, getattr(e, "stream_id", None)) for e in events
                 if not isinstance(e, Data)],
                b"".join(e.data for e in events if isinstance(e, Data)))
    if not any(isinstance(e, ProtocolError) for e in whole + pieces):
        assert shape(whole) == shape(pieces)


@FUZZ
@given(wire, splits, st.sampled_from([b"GET", b"HEAD", b"CONNECT", b"websocket"]))
def test_client_parser_never_raises(data, sizes, kind):
    conn = Http1ClientConnection()
    if kind == b"websocket":
        conn.send_request(b"GET", b"/", b"h", [], upgrade=kind)
    else:
        conn.send_request(kind, b"/", b"h", [], end_stream=kind != b"CONNECT")
    events = []
    for chunk in _chunks(data, sizes):
        events += conn.receive_data(chunk)
    events += conn.receive_data(b"")
    _check_stream(events)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_h2_server_never_raises(data):
    conn = Http2ServerConnection()
    conn.receive_data(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + data)
    conn.data_to_send()


def _h2_client_wire() -> bytes:
    client = Http2ClientConnection()
    sid = client.send_request(b"POST", b"/a", b"h", [(b"x", b"y"), (b"cookie", b"a")])
    client.send_data(sid, b"hello" * 50)
    client.send_trailers(sid, [(b"t", b"1")])
    client.send_request(b"GET", b"/b", b"h", [], end_stream=True)
    client.reset_stream(sid)
    return client.data_to_send()


_H2_WIRE = _h2_client_wire()
mutations = st.lists(st.tuples(st.integers(24, len(_H2_WIRE) - 1), st.integers(0, 255),
                               st.integers(0, 2)), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(mutations, st.integers(1, len(_H2_WIRE) - 1))
def test_h2_server_survives_mutated_frames_and_replies(muts, cut):
    """Real frames with a few bytes changed, dropped or inserted; the runtime
    answers every request at once and acknowledges every byte."""
    wire = bytearray(_H2_WIRE)
    for pos, byte, op in muts:
        pos = min(pos, len(wire) - 1)
        if op == 0:
            wire[pos] = byte
        elif op == 1:
            del wire[pos]
        else:
            wire.insert(pos, byte)
    server = Http2ServerConnection(Http2Settings(max_headers_count=5, max_concurrent_streams=1))
    events = server.receive_data(bytes(wire[:cut])) + server.receive_data(bytes(wire[cut:]))
    for e in events:
        if isinstance(e, Data):
            server.acknowledge_received_data(e.stream_id, len(e.data))
        elif isinstance(e, RequestHead):
            server.send(ResponseHead(e.stream_id, 200, []))
            server.send_data(e.stream_id, b"x" * 10, True)
    server.data_to_send()
    server.receive_data(b"")
