"""Our HPACK decoder: RFC 7541 Appendix C, differential against the `hpack` package
(the oracle: its Encoder, Huffman and dynamic table), and malformed blocks."""
from __future__ import annotations

import hpack
import pytest
from hpack import NeverIndexedHeaderTuple
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hypothesis import given, settings
from hypothesis import strategies as st

from isthmus.proxy.protocol.hpack_decoder import (HeaderListTooLarge, HpackDecoder, HpackError,
                                                  SensitiveField, huffman_decode)
from isthmus.proxy.protocol.hpack_encoder import StatelessHpackEncoder
from isthmus.proxy.protocol.hpack_tables import STATIC_TABLE, huffman_codes


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


GET_HTTP = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"),
            (b":authority", b"www.example.com")]
C3_C4_HEADERS = [
    GET_HTTP,
    GET_HTTP + [(b"cache-control", b"no-cache")],
    [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/index.html"),
     (b":authority", b"www.example.com"), (b"custom-key", b"custom-value")],
]
C3_C4_TABLES = [
    ([(b":authority", b"www.example.com")], 57),
    ([(b"cache-control", b"no-cache"), (b":authority", b"www.example.com")], 110),
    ([(b"custom-key", b"custom-value"), (b"cache-control", b"no-cache"),
      (b":authority", b"www.example.com")], 164),
]
C3 = ["8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
      "8286 84be 5808 6e6f 2d63 6163 6865",
      "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"]
C4 = ["8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
      "8286 84be 5886 a8eb 1064 9cbf",
      "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"]

DATE1 = (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT")
DATE2 = (b"date", b"Mon, 21 Oct 2013 20:13:22 GMT")
LOCATION = (b"location", b"https://www.example.com")
PRIVATE = (b"cache-control", b"private")
COOKIE = (b"set-cookie", b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1")
C5_C6_HEADERS = [
    [(b":status", b"302"), PRIVATE, DATE1, LOCATION],
    [(b":status", b"307"), PRIVATE, DATE1, LOCATION],
    [(b":status", b"200"), PRIVATE, DATE2, LOCATION, (b"content-encoding", b"gzip"), COOKIE],
]
C5_C6_TABLES = [
    ([LOCATION, DATE1, PRIVATE, (b":status", b"302")], 222),
    ([(b":status", b"307"), LOCATION, DATE1, PRIVATE], 222),
    ([COOKIE, (b"content-encoding", b"gzip"), DATE2], 215),
]
C5 = ["4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 "
      "303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
      "4803 3330 37c1 c0bf",
      "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 "
      "5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 "
      "5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31"]
C6 = ["4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b "
      "ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
      "4883 640e ffc1 c0bf",
      "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad "
      "94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 "
      "65c0 03ed 4ee5 b106 3d50 07"]


@pytest.mark.parametrize("blocks, headers, tables, limit", [
    (C3, C3_C4_HEADERS, C3_C4_TABLES, 4096),   # C.3 requests, raw literals
    (C4, C3_C4_HEADERS, C3_C4_TABLES, 4096),   # C.4 the same, Huffman
    (C5, C5_C6_HEADERS, C5_C6_TABLES, 256),    # C.5 responses, eviction in a 256-byte table
    (C6, C5_C6_HEADERS, C5_C6_TABLES, 256),    # C.6 the same, Huffman
], ids=["C.3", "C.4", "C.5", "C.6"])
def test_rfc7541_appendix_c(blocks, headers, tables, limit):
    d = HpackDecoder(limit)
    for block, expected, (table, size) in zip(blocks, headers, tables):
        assert d.decode(_hex(block)) == expected
        assert (d.dynamic_table, d.table_size) == (table, size)
        assert not d.malformed


def test_huffman_code_is_rfc7541s():
    oracle = [(REQUEST_CODES[i], REQUEST_CODES_LENGTH[i]) for i in range(257)]
    assert huffman_codes() == oracle
    assert len(STATIC_TABLE) == 61 and STATIC_TABLE[60] == (b"www-authenticate", b"")


_huffman = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)


def test_huffman_every_byte_value():
    data = bytes(range(256)) * 3
    assert huffman_decode(_huffman.encode(data)) == data
    assert huffman_decode(b"") == b""


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_huffman_matches_oracle(data):
    assert huffman_decode(_huffman.encode(data)) == data


names = st.one_of(
    st.sampled_from([n for n, _ in STATIC_TABLE if not n.startswith(b":")] + [b"x-a", b"x-b"]),
    st.binary(min_size=1, max_size=20).map(lambda b: bytes(c % 26 + 97 for c in b)))
values = st.one_of(st.sampled_from([b"", b"gzip, deflate", b"0", b"x" * 200]), st.binary(max_size=60))
field = st.tuples(names, values, st.booleans())  # (name, value, never indexed)
block = st.tuples(st.lists(field, max_size=10), st.booleans(),  # huffman
                  st.sampled_from([None, None, None, 0, 64, 256, 4096]))  # new table size


@settings(max_examples=300, deadline=None)
@given(st.lists(block, min_size=1, max_size=12))
def test_differential_against_hpack_encoder(blocks):
    """Many blocks on one connection: Huffman or not, the dynamic table filling,
    evicting and resizing, never-indexed fields: ours decodes what hpack encodes,
    exactly as hpack's own decoder does (fields and dynamic table)."""
    enc, oracle, ours = hpack.Encoder(), hpack.Decoder(), HpackDecoder(4096)
    for fields, huffman, new_size in blocks:
        if new_size is not None:
            enc.header_table_size = new_size  # the next block starts with a size update
        headers = [NeverIndexedHeaderTuple(n, v) if never else (n, v) for n, v, never in fields]
        wire = enc.encode(headers, huffman=huffman)
        decoded = oracle.decode(wire, raw=True)
        expected = [(bytes(n), bytes(v)) for n, v in decoded]
        got = ours.decode(wire)
        assert got == expected == [(n, v) for n, v, _ in fields]
        # never-indexed literals (hpack sends a static table match indexed even so)
        assert [type(f) is SensitiveField for f in got] == [
            isinstance(f, NeverIndexedHeaderTuple) for f in decoded]
        assert ours.dynamic_table == [(bytes(n), bytes(v)) for n, v in
                                      oracle.header_table.dynamic_entries]
        assert ours.table_size == oracle.header_table._current_size


def test_never_indexed_survives_reencoding():
    block = hpack.Encoder().encode([NeverIndexedHeaderTuple(b"authorization", b"secret")])
    [f] = HpackDecoder().decode(block)
    assert isinstance(f, SensitiveField) and f == (b"authorization", b"secret")
    out = StatelessHpackEncoder().encode([f])
    assert out[1] & 0xF0 == 0x10  # after the size update: a never-indexed literal again


def test_entry_larger_than_the_table_empties_it():
    d = HpackDecoder(4096)
    d.decode(b"\x40\x01a\x01b")  # literal with indexing: a: b
    assert d.dynamic_table == [(b"a", b"b")]
    big = b"\x40\x01c\x7f\x81\x20" + b"v" * (127 + 1 + (0x20 << 7))  # 4224 bytes: over 4096
    assert len(d.decode(big)) == 1
    assert d.dynamic_table == [] and d.table_size == 0


def test_size_updates():
    d = HpackDecoder(4096)
    d.decode(b"\x40\x01a\x01b")
    assert d.decode(b"\x20\x3f\xe1\x1f") == []  # to 0 (evicts), then to 4096: both allowed
    assert d.dynamic_table == []
    with pytest.raises(HpackError):
        d.decode(b"\x3f\xe2\x1f")  # 4097: above our SETTINGS_HEADER_TABLE_SIZE
    with pytest.raises(HpackError):
        HpackDecoder(4096).decode(b"\x82\x20")  # after a field


def test_a_lowered_limit_needs_a_size_update_first():
    d = HpackDecoder(4096)
    d.set_limit(100)  # our smaller SETTINGS_HEADER_TABLE_SIZE was acknowledged
    with pytest.raises(HpackError):
        d.decode(b"\x82")
    d = HpackDecoder(4096)
    d.set_limit(100)
    assert d.decode(b"\x3f\x45\x82") == [(b":method", b"GET")]  # update to 100, then a field
    with pytest.raises(HpackError):
        d.decode(b"\x3f\x46")  # 101 > 100


@pytest.mark.parametrize("block", [
    b"\xff",                                   # truncated integer (prefix full, nothing follows)
    b"\xff\x80",                               # truncated integer (continuation bit, then end)
    b"\xff" + b"\xff" * 6 + b"\x01",           # integer too large
    b"\x80",                                   # index 0
    b"\xbe",                                   # index 62: the dynamic table is empty
    b"\xff\x00",                               # index 127
    b"\x7f\x05\x01v",                          # literal naming dynamic index 68
    b"\x00",                                   # literal, name missing
    b"\x00\x05abc",                            # string shorter than its length
    b"\x00\x01a",                              # value missing
    b"\x00\x81\x18\x01v",                      # Huffman 'a' padded with zeros
    b"\x00\x82\x1f\xff\x01v",                  # Huffman 'a' and 11 bits of padding
    b"\x00\x84\xff\xff\xff\xfc\x01v",          # Huffman EOS
    b"\x00\x7f",                               # string length integer truncated
], ids=lambda b: b.hex())
def test_malformed_blocks_are_errors(block):
    with pytest.raises(HpackError):
        HpackDecoder(4096).decode(block)


def test_header_list_size_cap_stops_a_bomb():
    d = HpackDecoder(4096, max_header_list_size=1000)
    d.decode(b"\x40\x01a\x7f\x00" + b"b" * 127)  # one 160-byte entry in the table
    with pytest.raises(HeaderListTooLarge):
        d.decode(b"\xbe" * 100)  # a hundred references to it: stops at the seventh
    assert d.decode(b"\xbe" * 6) == [(b"a", b"b" * 127)] * 6  # 960 bytes: fine


def test_rfc9113_character_rules_flag_the_block():
    d = HpackDecoder(4096)
    assert d.decode(b"\x40\x01A\x01b") == [(b"A", b"b")]  # uppercase name, indexed
    assert d.malformed
    d.decode(b"\x82")
    assert not d.malformed
    d.decode(b"\xbe")  # the bad entry, by index
    assert d.malformed
    d.decode(b"\x7e\x01c")  # its name, by index, with a new value
    assert d.malformed
    for bad in (b"\x00\x01a\x02b\r", b"\x00\x01a\x02 b", b"\x00\x01a\x02b\t", b"\x00\x01a\x01\x00",
                b"\x00\x00\x01b", b"\x00\x02a:\x01b", b"\x00\x01:\x01b", b"\x00\x02a \x01b",
                b"\x00\x02\x7fa\x01b", b"\x10\x01\x01\x01\n"):
        d.decode(bad)
        assert d.malformed, bad
    d.decode(b"\x00\x05:path\x01/\x00\x03x-y\x03a b")  # pseudo-header name, inner space: fine
    assert not d.malformed
    assert d.list_size == len(b":path/x-ya b")
