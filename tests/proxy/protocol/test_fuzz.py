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


# -- HTTP/2: random frame sequences ------------------------------------------------------
def _h2_frame(ftype: int, flags: int, sid: int, payload: bytes) -> bytes:
    n = len(payload)
    return bytes((n >> 16, (n >> 8) & 0xFF, n & 0xFF, ftype, flags)) + sid.to_bytes(4, "big") + payload


def _blocks() -> list[bytes]:
    from isthmus.proxy.protocol.hpack_encoder import StatelessHpackEncoder
    enc = StatelessHpackEncoder()
    fields = [[(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/"), (b":authority", b"h")],
              [(b":status", b"200"), (b"content-length", b"3")], [(b"grpc-status", b"0")],
              [(b":method", b"CONNECT"), (b":authority", b"h:1")], [(b"X", b"bad")]]
    return [enc.encode(f) for f in fields] + [b"\x82\x86\x84\x41\x01h", b"\x40\x01a\x01b\xbe"]


_U32 = st.integers(0, 2**32 - 1).map(lambda v: v.to_bytes(4, "big"))
_STREAMS = st.sampled_from([1, 3, 5, 7])
_SETTING = st.tuples(st.integers(0, 9), st.sampled_from([0, 1, 100, 16_383, 16_384, 65_535, 2**24,
                                                        2**31 - 1, 2**31])).map(
    lambda kv: kv[0].to_bytes(2, "big") + kv[1].to_bytes(4, "big"))
_HEADERS = st.tuples(st.just(1), st.sampled_from([4, 5, 0x24, 0x25, 0x0C, 1, 0]), _STREAMS,
                     st.sampled_from(_blocks())).map(  # (+ priority / padding fields)
    lambda f: (*f[:3], (b"\x00" if f[1] & 0x08 else b"")
               + (b"\x00\x00\x00\x00\x10" if f[1] & 0x20 else b"") + f[3]))
_DATA = st.tuples(st.just(0), st.sampled_from([0, 1, 8, 9]), _STREAMS, st.binary(max_size=40)).map(
    lambda f: (*f[:3], b"\x01" + f[3] + b"\x00") if f[1] & 8 else f)
# Mostly well-formed frames (so streams get deep into their states), some chaos.
_H2_FRAME = st.one_of(
    _HEADERS, _DATA, _HEADERS, _DATA,
    st.tuples(st.just(9), st.sampled_from([0, 4]), _STREAMS, st.sampled_from(_blocks())),
    st.tuples(st.just(4), st.sampled_from([0, 0, 1]), st.just(0),
              st.lists(_SETTING, max_size=3).map(b"".join)),
    st.tuples(st.just(6), st.sampled_from([0, 1]), st.just(0), st.binary(min_size=8, max_size=8)),
    st.tuples(st.just(8), st.just(0), st.sampled_from([0, 1, 3]),
              st.integers(0, 2**31).map(lambda v: v.to_bytes(4, "big"))),
    st.tuples(st.just(3), st.just(0), _STREAMS, _U32),
    st.tuples(st.just(2), st.just(0), _STREAMS, st.binary(min_size=5, max_size=5)),
    st.tuples(st.just(7), st.just(0), st.just(0), st.binary(min_size=8, max_size=12)),
    st.tuples(st.integers(0, 11), st.sampled_from([0, 1, 4, 5, 8, 0x20, 0xFF]),
              st.sampled_from([0, 1, 2, 3, 2**31 - 1]), st.binary(max_size=24)),
)
_H2_FRAMES = st.tuples(_HEADERS, st.lists(_H2_FRAME, max_size=25)).map(lambda t: [t[0], *t[1]])


def _check_h2(events: list, batches_after_error: list) -> None:
    """Events are codec events; a ProtocolError is last, and the codec is quiet after
    it; no stream has events after it ended."""
    from isthmus.proxy.protocol import Event, StreamReset, Trailers
    ended: set[int] = set()
    for i, e in enumerate(events):
        assert isinstance(e, Event)
        if isinstance(e, ProtocolError):
            assert i == len(events) - 1 and e.close and e.status_code in (400, 502)
            assert all(b == [] for b in batches_after_error)
        sid = getattr(e, "stream_id", None)
        if sid is None or isinstance(e, StreamReset) and sid in ended:
            continue
        assert sid not in ended, f"{e!r} after the end of stream {sid}"
        if isinstance(e, (StreamReset, Trailers)) or getattr(e, "end_stream", False):
            ended.add(sid)


@settings(max_examples=400, deadline=None)
@given(_H2_FRAMES, st.booleans(), splits)
def test_h2_server_random_frames(frames, with_settings, sizes):
    server = Http2ServerConnection(Http2Settings(max_headers_count=6, max_concurrent_streams=2))
    wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + (_h2_frame(4, 0, 0, b"") if with_settings else b"")
    wire += b"".join(_h2_frame(t, f, s, p) for t, f, s, p in frames)
    events = []
    for chunk in _chunks(wire, sizes):
        for e in server.receive_data(chunk):
            events.append(e)
            if isinstance(e, Data):
                server.acknowledge_received_data(e.stream_id, len(e.data))
            elif isinstance(e, RequestHead):
                server.send(ResponseHead(e.stream_id, 200, []))
                server.send_data(e.stream_id, b"x" * 70_000, True)
        assert isinstance(server.data_to_send(), bytes)
    after = [server.receive_data(b"\x00" * 9)] if any(isinstance(e, ProtocolError) for e in events) else []
    _check_h2(events, after)
    server.receive_data(b"")


@settings(max_examples=400, deadline=None)
@given(_H2_FRAMES, splits)
def test_h2_client_random_frames(frames, sizes):
    client = Http2ClientConnection(Http2Settings(max_headers_count=6))
    for method in (b"GET", b"HEAD", b"POST"):
        sid = client.send_request(method, b"/", b"h", [], end_stream=method != b"POST")
    client.send_data(sid, b"y" * 100_000, False)
    client.data_to_send()
    wire = _h2_frame(4, 0, 0, b"") + b"".join(_h2_frame(t, f, s, p) for t, f, s, p in frames)
    events = []
    for chunk in _chunks(wire, sizes):
        for e in client.receive_data(chunk):
            events.append(e)
            if isinstance(e, Data):
                client.acknowledge_received_data(e.stream_id, len(e.data))
        assert isinstance(client.data_to_send(), bytes)
    after = [client.receive_data(b"\x00" * 9)] if any(isinstance(e, ProtocolError) for e in events) else []
    _check_h2(events, after)
    client.can_open_stream
    client.receive_data(b"")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), splits)
def test_h2_client_garbage(data, sizes):
    client = Http2ClientConnection()
    client.send_request(b"GET", b"/", b"h", [], end_stream=True)
    events = []
    for chunk in _chunks(data, sizes):
        events += client.receive_data(chunk)
    _check_h2(events, [])
