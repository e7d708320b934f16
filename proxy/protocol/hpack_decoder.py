"""HPACK decoding (RFC 7541) for the HTTP/2 codec: ``HpackDecoder.decode(block)`` ->
``[(name, value), ...]`` as bytes, keeping the dynamic table across blocks.

Contract: any violation of RFC 7541 raises `HpackError` (the connection must end with
COMPRESSION_ERROR); a block whose fields add up past ``max_header_list_size`` (RFC
9113's count: name + value + 32 per field) raises `HeaderListTooLarge` as soon as it
gets there, so an HPACK bomb never materialises. Never-indexed literals come back as
`SensitiveField` (a tuple, so the encoder forwards them never-indexed as RFC 7541
section 7.1.3 asks). Fields breaking RFC 9113 section 8.2.1's character rules do not
stop decoding (that is a stream error, not a compression error): they set
``malformed`` for the block. Only literals are checked, once: the dynamic table
remembers which entries failed.
"""
from __future__ import annotations

from .hpack_tables import STATIC_TABLE, huffman_codes

DEFAULT_TABLE_SIZE = 4096


class HpackError(Exception):
    """The header block is not valid HPACK."""


class HeaderListTooLarge(HpackError):
    """The decoded header list passed the hard cap."""


class SensitiveField(tuple):
    """A (name, value) sent as a never-indexed literal."""

    __slots__ = ()
    indexable = False


class _Invalid(tuple):
    """A dynamic-table entry whose name or value breaks RFC 9113 section 8.2.1."""

    __slots__ = ()


# -- Huffman: a nibble-driven state machine over the code tree, built at import -------------
# A state is an internal node of the tree (256 of them; 0 is the root). For each state and
# input nibble, _NEXT gives the node reached (times 16, ready to add the next nibble) and
# _EMIT the symbol completed on the way, or -1. A code is at least 5 bits long, so a nibble
# completes at most one. Decoding EOS emits 256, which bytearray.append refuses.

def _build_huffman() -> tuple[list[int], list[int], frozenset[int]]:
    kids: list[list[int]] = [[0, 0]]  # child > 0: internal node; child < 0: leaf -(symbol + 1)
    for sym, (code, length) in enumerate(huffman_codes()):
        node = 0
        for shift in range(length - 1, 0, -1):
            bit = (code >> shift) & 1
            if not kids[node][bit]:
                kids.append([0, 0])
                kids[node][bit] = len(kids) - 1
            node = kids[node][bit]
        kids[node][code & 1] = -(sym + 1)
    ints: dict[int, int] = {}
    nxt: list[int] = []
    emit: list[int] = []
    for state in range(len(kids)):
        for nibble in range(16):
            node, sym = state, -1
            for shift in (3, 2, 1, 0):
                child = kids[node][(nibble >> shift) & 1]
                if child < 0:
                    node, sym = 0, -child - 1
                    if sym == 256:
                        break
                else:
                    node = child
            nxt.append(ints.setdefault(node * 16, node * 16))
            emit.append(sym)
    # Padding (RFC 7541 section 5.2): fewer than 8 bits, all ones, i.e. the root or a node
    # on the all-ones path at most 7 deep.
    accept, node = {0}, 0
    for _ in range(7):
        node = kids[node][1]
        accept.add(node * 16)
    return nxt, emit, frozenset(accept)


_NEXT, _EMIT, _ACCEPT = _build_huffman()


def huffman_decode(data: bytes, start: int = 0, end: int | None = None) -> bytes:
    out = bytearray()
    append = out.append
    nxt, emit = _NEXT, _EMIT
    state = 0
    try:
        for b in data[start:end]:
            i = state | b >> 4
            c = emit[i]
            if c >= 0:
                append(c)
            i = nxt[i] | b & 15
            c = emit[i]
            if c >= 0:
                append(c)
            state = nxt[i]
    except ValueError:
        raise HpackError("Huffman string contains EOS") from None
    if state not in _ACCEPT:
        raise HpackError("Huffman string has invalid padding")
    return bytes(out)


# -- RFC 9113 section 8.2.1 character rules ---------------------------------------------------
_NAME_OK = bytes(c for c in range(0x21, 0x7F) if not 0x41 <= c <= 0x5A and c != 0x3A)
_VALUE_OK = bytes(c for c in range(256) if c not in (0x00, 0x0A, 0x0D))


def _bad_name(name: bytes) -> bool:
    if name[:1] == b":":
        name = name[1:]
    return not name or bool(name.translate(None, _NAME_OK))


def _integer(data: bytes, pos: int, end: int, value: int) -> tuple[int, int]:
    """The continuation bytes of an integer whose prefix was full (``value``)."""
    shift = 0
    while pos < end:
        b = data[pos]
        pos += 1
        value += (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise HpackError("integer too large")
    raise HpackError("truncated integer")


def _string(data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    if pos >= end:
        raise HpackError("truncated string")
    b = data[pos]
    n = b & 0x7F
    pos += 1
    if n == 0x7F:
        n, pos = _integer(data, pos, end, n)
    stop = pos + n
    if stop > end:
        raise HpackError("truncated string")
    if b & 0x80:
        return huffman_decode(data, pos, stop), stop
    return data[pos:stop], stop


# Index -> static entry / its name / its RFC 7541 size (index 0 is invalid).
_STATIC = (None, *STATIC_TABLE)
_STATIC_NAMES = (None, *(name for name, _ in STATIC_TABLE))
_STATIC_SIZES = (0, *(len(name) + len(value) + 32 for name, value in STATIC_TABLE))


class HpackDecoder:
    """One connection's decoder. ``limit`` is the largest dynamic table the peer's
    encoder may use (our SETTINGS_HEADER_TABLE_SIZE); `set_limit` applies a new one
    once the peer acknowledged it."""

    __slots__ = ("_table", "_size", "_max", "limit", "max_header_list_size",
                 "_must_update", "malformed", "list_size")

    def __init__(self, limit: int = DEFAULT_TABLE_SIZE,
                 max_header_list_size: int = 1 << 20) -> None:
        self._table: list[tuple[bytes, bytes]] = []  # newest first
        self._size = 0
        self._max = min(DEFAULT_TABLE_SIZE, limit)
        self.limit = limit
        self.max_header_list_size = max_header_list_size
        self._must_update = False
        self.malformed = False  # the last block broke RFC 9113 section 8.2.1
        self.list_size = 0      # the last block's sum of name and value lengths

    @property
    def dynamic_table(self) -> list[tuple[bytes, bytes]]:
        """The dynamic table's entries, newest first (index 62 first)."""
        return [(name, value) for name, value in self._table]

    @property
    def table_size(self) -> int:
        """The dynamic table's size as RFC 7541 section 4.1 counts it."""
        return self._size

    def set_limit(self, limit: int) -> None:
        """Our new SETTINGS_HEADER_TABLE_SIZE took effect: a table above it must be
        shrunk by a size update at the start of the next block."""
        self.limit = limit
        if self._max > limit:
            self._must_update = True

    def _resize(self, size: int) -> None:
        if size > self.limit:
            raise HpackError(f"dynamic table size update to {size} above the limit {self.limit}")
        self._max = size
        self._must_update = False
        table = self._table
        while self._size > size:
            name, value = table.pop()
            self._size -= len(name) + len(value) + 32

    def _add(self, field: tuple[bytes, bytes]) -> None:
        size = len(field[0]) + len(field[1]) + 32
        table = self._table
        if size > self._max:  # RFC 7541 section 4.4: an entry larger than the table empties it
            table.clear()
            self._size = 0
            return
        while self._size + size > self._max:
            name, value = table.pop()
            self._size -= len(name) + len(value) + 32
        table.insert(0, field)
        self._size += size

    def _entry(self, index: int) -> tuple[bytes, bytes]:
        if index <= 61:
            if index == 0:
                raise HpackError("index 0")
            return STATIC_TABLE[index - 1]
        try:
            return self._table[index - 62]
        except IndexError:
            raise HpackError(f"index {index} is past the dynamic table") from None

    def decode(self, data: bytes, pos: int = 0, end: int | None = None) -> list[tuple[bytes, bytes]]:
        if end is None:
            end = len(data)
        fields: list[tuple[bytes, bytes]] = []
        append = fields.append
        static, static_names, static_sizes = _STATIC, _STATIC_NAMES, _STATIC_SIZES
        cap = self.max_header_list_size
        total = 0
        malformed = False
        if self._must_update and (pos >= end or data[pos] & 0xE0 != 0x20):
            raise HpackError("expected a dynamic table size update")
        while pos < end:
            b = data[pos]
            pos += 1
            if b & 0x80:  # indexed field
                index = b & 0x7F
                if index == 0x7F:
                    index, pos = _integer(data, pos, end, index)
                if 0 < index <= 61:
                    field = static[index]
                    total += static_sizes[index]
                else:
                    field = self._entry(index)
                    if field.__class__ is _Invalid:
                        malformed = True
                    total += len(field[0]) + len(field[1]) + 32
                if total > cap:
                    raise HeaderListTooLarge(f"header list larger than {cap} bytes")
                append(field)
                continue
            if b & 0x40:  # literal with incremental indexing, 6-bit name index
                index = b & 0x3F
                if index == 0x3F:
                    index, pos = _integer(data, pos, end, index)
            elif b & 0x20:  # dynamic table size update: only before the first field
                if fields:
                    raise HpackError("dynamic table size update after a field")
                size = b & 0x1F
                if size == 0x1F:
                    size, pos = _integer(data, pos, end, size)
                self._resize(size)
                continue
            else:  # literal without indexing (0000) or never indexed (0001), 4-bit index
                index = b & 0x0F
                if index == 0x0F:
                    index, pos = _integer(data, pos, end, index)
            bad = False
            if index:
                if index <= 61:
                    name = static_names[index]
                else:
                    entry = self._entry(index)
                    name = entry[0]
                    if entry.__class__ is _Invalid:
                        bad = _bad_name(name)
            else:
                n = data[pos] if pos < end else 0x80
                stop = pos + 1 + n
                if n < 0x7F and stop <= end:  # raw and short: the common case
                    name = data[pos + 1:stop]
                    pos = stop
                else:
                    name, pos = _string(data, pos, end)
                if not name or name.translate(None, _NAME_OK):
                    bad = _bad_name(name)
            n = data[pos] if pos < end else 0x80
            stop = pos + 1 + n
            if n < 0x7F and stop <= end:
                value = data[pos + 1:stop]
                pos = stop
            else:
                value, pos = _string(data, pos, end)
            if value.translate(None, _VALUE_OK) or value.strip(b" \t") is not value:
                bad = True
            if bad:
                malformed = True
            if b & 0x40:
                field = _Invalid((name, value)) if bad else (name, value)
                self._add(field)
            elif b & 0x10:
                field = SensitiveField((name, value))
            else:
                field = (name, value)
            total += len(name) + len(value) + 32
            if total > cap:
                raise HeaderListTooLarge(f"header list larger than {cap} bytes")
            append(field)
        self.malformed = malformed
        self.list_size = total - 32 * len(fields)
        return fields
