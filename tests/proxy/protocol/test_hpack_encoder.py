"""The stateless HPACK encoder: whatever it writes, a full HPACK decoder reads back exactly."""
from __future__ import annotations

from hpack import Decoder, HeaderTuple, NeverIndexedHeaderTuple
from hypothesis import given, settings
from hypothesis import strategies as st

from isthmus.proxy.protocol.hpack_encoder import StatelessHpackEncoder, encode_integer

HEADERS = [
    (b":method", b"GET"),  # static (name, value): one byte
    (b":path", b"/reviews/0?x=1"),  # static name, new value
    (b":status", b"200"),
    (b"content-type", b"application/grpc"),
    (b"www-authenticate", b"x"),  # static index 61: needs the 4-bit prefix's continuation byte
    (b"x-request-id", b"1f2d" * 9),  # new name
    (b"x-long", b"v" * 300),  # length over 126: multi-byte length
    (b"x-empty", b""),
]


def decode_all(blocks: list[bytes]) -> list[list[tuple[bytes, bytes]]]:
    d = Decoder()
    return [[(bytes(n), bytes(v)) for n, v in d.decode(b, raw=True)] for b in blocks]


def test_round_trip_and_static_entries_are_one_byte():
    enc = StatelessHpackEncoder()
    block = enc.encode(HEADERS)
    assert block[:1] == b"\x20"  # the first block announces a dynamic table of size 0
    assert decode_all([block]) == [HEADERS]
    assert enc.encode([(b":method", b"GET")]) == b"\x82"  # index 2, nothing else: no new size update
    # Nothing enters the dynamic table: the same block again encodes the same way (minus the update).
    assert enc.encode(HEADERS) == block[1:]


def test_size_update_after_a_settings_change_and_str_input():
    enc = StatelessHpackEncoder()
    first = enc.encode([(":method", "POST")])
    enc.header_table_size = 0  # the peer lowered SETTINGS_HEADER_TABLE_SIZE
    assert enc.header_table_size == 0
    second = enc.encode([("x-a", "b")])
    assert second[:1] == b"\x20"
    d = Decoder()
    d.header_table_size = 0
    assert [(n, v) for n, v in d.decode(first, raw=True)] == [(b":method", b"POST")]
    assert [(n, v) for n, v in d.decode(second, raw=True)] == [(b"x-a", b"b")]


def test_sensitive_fields_are_never_indexed():
    enc = StatelessHpackEncoder()
    enc.encode([])
    block = enc.encode([NeverIndexedHeaderTuple(b"authorization", b"secret"), (b"cookie", b"a=b", True),
                        HeaderTuple(b":method", b"GET")])
    assert block[0] & 0xF0 == 0x10  # never-indexed literal with indexed name
    decoded = Decoder().decode(block, raw=True)
    assert [(bytes(n), bytes(v)) for n, v in decoded] == [(b"authorization", b"secret"), (b"cookie", b"a=b"),
                                                          (b":method", b"GET")]
    assert [type(h).__name__ for h in decoded][:2] == ["NeverIndexedHeaderTuple"] * 2


def test_integer_encoding_matches_rfc7541_examples():
    assert encode_integer(10, 5) == b"\x0a"  # C.1.1
    assert encode_integer(1337, 5) == b"\x1f\x9a\x0a"  # C.1.2
    assert encode_integer(42, 8) == b"\x2a"  # C.1.3


names = st.binary(min_size=1, max_size=40).map(lambda b: bytes(c % 26 + 97 for c in b))
values = st.binary(max_size=400)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(names, values), max_size=12), min_size=1, max_size=4))
def test_any_header_lists_round_trip(blocks):
    enc = StatelessHpackEncoder()
    assert decode_all([enc.encode(b) for b in blocks]) == blocks
