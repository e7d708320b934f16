"""A stateless HPACK encoder for the proxy's HTTP/2 side (RFC 7541).

A general encoder (like the `hpack` package's) searches its tables, Huffman-codes every
literal in Python and adds fields to the dynamic table: on the proxy's HTTP/2 path that
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
set by h2connection.py), which is always within what the peer allows. Decoding is
hpack_decoder.py's (a peer may use the whole of HPACK).
"""
from __future__ import annotations

from .hpack_tables import STATIC_TABLE

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


# Precomputed representations: a static (name, value) -> its indexed field; a static
# name -> the start of a literal (without indexing, never indexed) naming it; a length
# below 127 -> its raw string-length byte.
_STATIC: dict[tuple[bytes, bytes], bytes] = {}
_STATIC_NAMES: dict[bytes, tuple[bytes, bytes]] = {}
for _i, (_name, _value) in enumerate(STATIC_TABLE, start=1):
    _STATIC.setdefault((_name, _value), encode_integer(_i, 7, 0x80))
    _STATIC_NAMES.setdefault(_name, (encode_integer(_i, 4, _LITERAL),
                                     encode_integer(_i, 4, _NEVER_INDEXED)))
_LENGTHS = [bytes((_n,)) for _n in range(127)]


def _string(data: bytes) -> bytes:
    """A raw (not Huffman-coded) string literal."""
    n = len(data)
    return (_LENGTHS[n] if n < 127 else encode_integer(n, 7)) + data


def _bytes(x) -> bytes:
    return x if x.__class__ is bytes else (x.encode("utf-8") if isinstance(x, str) else bytes(x))


class StatelessHpackEncoder:
    """`encode(headers)` and `header_table_size` (the interface of `hpack.Encoder`)."""

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
        append = out.append
        if self._announce:
            self._announce = False
            append(_SIZE_UPDATE_ZERO)
        static, names, lengths = _STATIC, _STATIC_NAMES, _LENGTHS
        for header in headers:
            if header.__class__ is tuple and len(header) == 2:  # the common case
                name, value = header
                sensitive = False
            elif header.__class__ is tuple:
                name, value, sensitive = header[0], header[1], bool(header[2])
            else:  # hpack's HeaderTuple / NeverIndexedHeaderTuple, our SensitiveField
                name, value = header[0], header[1]
                sensitive = not getattr(header, "indexable", True)
            if name.__class__ is not bytes or value.__class__ is not bytes:
                name, value = _bytes(name), _bytes(value)
            if not sensitive:
                indexed = static.get((name, value))
                if indexed is not None:
                    append(indexed)
                    continue
            prefixes = names.get(name)
            if prefixes is not None:
                append(prefixes[sensitive])
            else:
                append(b"\x10" if sensitive else b"\x00")
                n = len(name)
                append(lengths[n] if n < 127 else encode_integer(n, 7))
                append(name)
            n = len(value)
            append(lengths[n] if n < 127 else encode_integer(n, 7))
            append(value)
        return b"".join(out)
