"""HTTP/2 frame layout (RFC 9113 sections 4, 6 and 7): frame types, flags, setting
identifiers, error codes, and the serializers the connection writes with.

Every serializer returns ready-to-write ``bytes``. Parsing is the connection's receive
loop (h2connection.py): a frame header is `FRAME_HEADER.unpack_from(buf, pos)` ->
``(length >> 8, length & 0xFF, type, flags, stream_id)`` (mask the reserved bit).
"""
from __future__ import annotations

import struct

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (section 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)

# Flags.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# SETTINGS identifiers (section 6.5.2; 8 is RFC 8441's ENABLE_CONNECT_PROTOCOL).
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6
ENABLE_CONNECT_PROTOCOL = 0x8

# Error codes (section 7) not already in events.py.
SETTINGS_TIMEOUT = 0x4
FRAME_SIZE_ERROR = 0x6
COMPRESSION_ERROR = 0x9

DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384
MAX_WINDOW = 2**31 - 1
MAX_FRAME_LIMIT = 2**24 - 1

FRAME_HEADER = struct.Struct(">HBBBL")  # 24-bit length as 16 + 8 bits, type, flags, stream id
U32 = struct.Struct(">L")
SETTING = struct.Struct(">HL")
_TWO_U32 = struct.Struct(">LL")
_U32_FRAME = struct.Struct(">HBBBLL")  # a frame with a 4-byte payload (RST_STREAM, WINDOW_UPDATE)


def frame_header(length: int, ftype: int, flags: int, stream_id: int) -> bytes:
    return FRAME_HEADER.pack(length >> 8, length & 0xFF, ftype, flags, stream_id)


SETTINGS_ACK_FRAME = frame_header(0, SETTINGS, ACK, 0)


def settings_frame(settings: list[tuple[int, int]]) -> bytes:
    payload = b"".join(SETTING.pack(ident, value) for ident, value in settings)
    return frame_header(len(payload), SETTINGS, 0, 0) + payload


def window_update_frame(stream_id: int, increment: int) -> bytes:
    return _U32_FRAME.pack(0, 4, WINDOW_UPDATE, 0, stream_id, increment)


def rst_stream_frame(stream_id: int, error_code: int) -> bytes:
    return _U32_FRAME.pack(0, 4, RST_STREAM, 0, stream_id, error_code)


def ping_frame(payload: bytes, ack: bool = False) -> bytes:
    return frame_header(8, PING, ACK if ack else 0, 0) + payload


def goaway_frame(last_stream_id: int, error_code: int, debug: bytes = b"") -> bytes:
    return (frame_header(8 + len(debug), GOAWAY, 0, 0)
            + _TWO_U32.pack(last_stream_id, error_code) + debug)


def headers_frames(stream_id: int, block: bytes, end_stream: bool, max_frame: int) -> bytes:
    """A HEADERS frame, followed by CONTINUATION frames when ``block`` is larger than
    the peer's SETTINGS_MAX_FRAME_SIZE."""
    n = len(block)
    flags = END_STREAM if end_stream else 0
    if n <= max_frame:
        return frame_header(n, HEADERS, flags | END_HEADERS, stream_id) + block
    parts = [frame_header(max_frame, HEADERS, flags, stream_id), block[:max_frame]]
    pos = max_frame
    while pos < n:
        size = min(max_frame, n - pos)
        last = pos + size == n
        parts.append(frame_header(size, CONTINUATION, END_HEADERS if last else 0, stream_id))
        parts.append(block[pos:pos + size])
        pos += size
    return b"".join(parts)
