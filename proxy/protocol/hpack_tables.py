"""HPACK's fixed tables (RFC 7541): the static table (Appendix A) and the Huffman
code (Appendix B), shared by hpack_encoder.py and hpack_decoder.py.

The Huffman code is canonical: codes of one length are consecutive in symbol order
and each length starts where the previous one ended, shifted left. So the code is
fully described by which symbols have which length (`HUFFMAN_LENGTHS`);
`huffman_codes()` rebuilds the (code, length) of every symbol from it.
"""
from __future__ import annotations

STATIC_TABLE: tuple[tuple[bytes, bytes], ...] = (
    (b":authority", b""), (b":method", b"GET"), (b":method", b"POST"), (b":path", b"/"),
    (b":path", b"/index.html"), (b":scheme", b"http"), (b":scheme", b"https"),
    (b":status", b"200"), (b":status", b"204"), (b":status", b"206"), (b":status", b"304"),
    (b":status", b"400"), (b":status", b"404"), (b":status", b"500"),
    (b"accept-charset", b""), (b"accept-encoding", b"gzip, deflate"), (b"accept-language", b""),
    (b"accept-ranges", b""), (b"accept", b""), (b"access-control-allow-origin", b""),
    (b"age", b""), (b"allow", b""), (b"authorization", b""), (b"cache-control", b""),
    (b"content-disposition", b""), (b"content-encoding", b""), (b"content-language", b""),
    (b"content-length", b""), (b"content-location", b""), (b"content-range", b""),
    (b"content-type", b""), (b"cookie", b""), (b"date", b""), (b"etag", b""), (b"expect", b""),
    (b"expires", b""), (b"from", b""), (b"host", b""), (b"if-match", b""),
    (b"if-modified-since", b""), (b"if-none-match", b""), (b"if-range", b""),
    (b"if-unmodified-since", b""), (b"last-modified", b""), (b"link", b""), (b"location", b""),
    (b"max-forwards", b""), (b"proxy-authenticate", b""), (b"proxy-authorization", b""),
    (b"range", b""), (b"referer", b""), (b"refresh", b""), (b"retry-after", b""),
    (b"server", b""), (b"set-cookie", b""), (b"strict-transport-security", b""),
    (b"transfer-encoding", b""), (b"user-agent", b""), (b"vary", b""), (b"via", b""),
    (b"www-authenticate", b""),
)
assert len(STATIC_TABLE) == 61

EOS = 256


def _syms(text: bytes) -> tuple[int, ...]:
    return tuple(text)


# Code length -> the symbols (byte values; 256 is EOS) with a code of that length.
HUFFMAN_LENGTHS: dict[int, tuple[int, ...]] = {
    5: _syms(b"012acei" b"ost"),
    6: _syms(b" %-./3456789=A_bdfghlmnpru"),
    7: _syms(b":BCDEFGHIJKLMNOPQRSTUVWYjkqvwxyz"),
    8: _syms(b"&*,;XZ"),
    10: _syms(b"!\"()?"),
    11: _syms(b"'+|"),
    12: _syms(b"#>"),
    13: _syms(b"\x00$@[]~"),
    14: _syms(b"^}"),
    15: _syms(b"<`{"),
    19: (92, 195, 208),
    20: (128, 130, 131, 162, 184, 194, 224, 226),
    21: (153, 161, 167, 172, 176, 177, 179, 209, 216, 217, 227, 229, 230),
    22: (129, 132, 133, 134, 136, 146, 154, 156, 160, 163, 164, 169, 170, 173, 178, 181,
         185, 186, 187, 189, 190, 196, 198, 228, 232, 233),
    23: (1, 135, 137, 138, 139, 140, 141, 143, 147, 149, 150, 151, 152, 155, 157, 158, 165,
         166, 168, 174, 175, 180, 182, 183, 188, 191, 197, 231, 239),
    24: (9, 142, 144, 145, 148, 159, 171, 206, 215, 225, 236, 237),
    25: (199, 207, 234, 235),
    26: (192, 193, 200, 201, 202, 205, 210, 213, 218, 219, 238, 240, 242, 243, 255),
    27: (203, 204, 211, 212, 214, 221, 222, 223, 241, 244, 245, 246, 247, 248, 250, 251, 252,
         253, 254),
    28: (2, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27, 28,
         29, 30, 31, 127, 220, 249),
    30: (10, 13, 22, EOS),
}


def huffman_codes() -> list[tuple[int, int]]:
    """(code, bit length) for symbols 0..256, from the canonical code's lengths."""
    codes: list[tuple[int, int]] = [(0, 0)] * 257
    code, prev = 0, 0
    for length in sorted(HUFFMAN_LENGTHS):
        code <<= length - prev
        prev = length
        for sym in sorted(HUFFMAN_LENGTHS[length]):
            codes[sym] = (code, length)
            code += 1
    assert code == 1 << prev, "the code must be complete"  # Kraft equality
    return codes
