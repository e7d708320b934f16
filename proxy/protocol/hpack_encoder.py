"""A stateless HPACK encoder for the proxy's HTTP/2 side (RFC 7541), replacing h2's.

h2's encoder (the `hpack` package) searches its tables linearly, Huffman-codes every
literal in Python and adds fields to the dynamic table: on the proxy's HTTP/2 path it
was a fifth of the CPU per request. This one never uses the dynamic table, so encoding a
field needs no state and no search:

- a (name, value) pair of the static table is one indexed byte;
- otherwise a *literal without indexing* (or *never indexed*, for fields the caller
  marks sensitive), with the static table's index for the name when it has one;
- string literals are sent raw (no Huffman coding): a few more bytes on the wire for
  much less CPU, as RFC 7541 allows.

Because nothing is ever inserted, the peer's decoder table stays empty whatever size it
allows; the encoder still announces a dynamic table size of 0 at the start of the first
header block and after every SETTINGS_HEADER_TABLE_SIZE change (`header_table_size`,
set by h2), which is always within what the peer allows. Decoding stays h2's (a peer
may use the whole of HPACK).
"""
from __future__ import annotations

from hpack.table import HeaderTable

_STATIC: dict[tuple[bytes, bytes], int] = {}
_STATIC_NAMES: dict[bytes, int] = {}
for _i, (_name, _value) in enumerate(HeaderTable.STATIC_TABLE, start=1):
    _STATIC.setdefault((_name, _value), _i)
    _STATIC_NAMES.setdefault(_name, _i)

_SIZE_UPDATE_ZERO = b"\x20"  # 001 prefix, 5-bit integer 0
_LITERAL, _NEVER_INDEXED = 0x00, 0x10  # 4-bit name-index prefixes


def encode_integer(value: int, prefix_bits: int, flags: int = 0) -> bytes:
    """RFC 7541 §5.1: `value` in a `prefix_bits`-bit prefix, the first byte or'ed with `flags`."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((flags | value,))
    out = bytearray((flags | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(data: bytes) -> bytes:
    """A raw (not Huffman-coded) string literal."""
    n = len(data)
    return (bytes((n,)) if n < 127 else encode_integer(n, 7)) + data


def _bytes(x) -> bytes:
    return x if x.__class__ is bytes else (x.encode("utf-8") if isinstance(x, str) else bytes(x))


class StatelessHpackEncoder:
    """Drop-in for `hpack.Encoder` as h2 uses it: `encode(headers)` and `header_table_size`."""

    __slots__ = ("_table_size", "_announce")

    def __init__(self) -> None:
        self._table_size = 4096  # the peer's SETTINGS_HEADER_TABLE_SIZE (its default until told)
        self._announce = True  # a size update (to 0) leads the next header block

    @property
    def header_table_size(self) -> int:
        return self._table_size

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self._table_size = value
        self._announce = True

    def encode(self, headers, huffman: bool = True) -> bytes:  # noqa: ARG002 - literals are never Huffman-coded
        out = []
        if self._announce:
            self._announce = False
            out.append(_SIZE_UPDATE_ZERO)
        static, names = _STATIC, _STATIC_NAMES
        for header in headers:
            if header.__class__ is tuple:
                if len(header) == 2:
                    name, value = header
                    sensitive = False
                else:
                    name, value, sensitive = header[0], header[1], bool(header[2])
            else:  # hpack's HeaderTuple / NeverIndexedHeaderTuple
                name, value = header[0], header[1]
                sensitive = not getattr(header, "indexable", True)
            if name.__class__ is not bytes:
                name = _bytes(name)
            if value.__class__ is not bytes:
                value = _bytes(value)
            if not sensitive:
                index = static.get((name, value))
                if index is not None:
                    out.append(encode_integer(index, 7, 0x80))
                    continue
            flags = _NEVER_INDEXED if sensitive else _LITERAL
            index = names.get(name)
            if index is not None:
                out.append(encode_integer(index, 4, flags))
            else:
                out.append(bytes((flags,)))
                out.append(_string(name))
            out.append(_string(value))
        return b"".join(out)
