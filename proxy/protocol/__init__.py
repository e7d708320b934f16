"""Sans-IO HTTP codecs for the proxy's hot path: bytes in → events out, events in →
bytes out, no sockets (runtime/ does the I/O).

    events.py          RequestHead, ResponseHead, Data, Trailers, StreamReset,
                       WindowUpdate, GoAway, ConnectionClosed, ProtocolError
    http1_server.py    Http1ServerConnection  (downstream HTTP/1.1, httptools)
    http1_client.py    Http1ClientConnection  (upstream HTTP/1.1, httptools)
    http1_common.py    send-side framing, receive-side head guard, status lines
    http2.py           Http2ServerConnection, Http2ClientConnection, detect_h2_preface
    http2_endpoint.py  flow control and stream bookkeeping shared by both
    h2connection.py    the HTTP/2 connection: frames in, state, frames out (RFC 9113)
    h2frames.py        frame layouts and serializers
    h2headers.py       RFC 9113 section 8 message rules (pure)
    hpack_decoder.py   HPACK decoding (RFC 7541; hpack_encoder.py encodes)
    headers.py         hop-by-hop removal and header-list helpers
    limits.py          Http1Limits, Http2Settings (Envoy's defaults)

Every connection object: ``receive_data(bytes) -> list[Event]`` (``b""`` means the
peer closed) and ``send(event) -> bytes``; HTTP/2 adds ``data_to_send()`` for the
bytes the connection produces on its own (acks, window updates).
"""
from .events import (ConnectionClosed, Data, Event, GoAway, ProtocolError, RequestHead,
                     ResponseHead, StreamReset, Trailers, WindowUpdate)
from .http1 import Http1ClientConnection, Http1ServerConnection, LocalProtocolError
from .limits import Http1Limits, Http2Settings

# The HTTP/2 names load the HTTP/2 codec (~350 KiB, the Huffman tables included) on first
# use: a process that only speaks HTTP/1.1 never pays for it.
_HTTP2 = frozenset({"H2_PREFACE", "Http2ClientConnection", "Http2ServerConnection", "detect_h2_preface"})


def __getattr__(name: str):
    if name in _HTTP2:
        from . import http2
        return getattr(http2, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ConnectionClosed", "Data", "Event", "GoAway", "H2_PREFACE", "Http1ClientConnection",
    "Http1Limits", "Http1ServerConnection", "Http2ClientConnection", "Http2ServerConnection",
    "Http2Settings", "LocalProtocolError", "ProtocolError", "RequestHead", "ResponseHead",
    "StreamReset", "Trailers", "WindowUpdate", "detect_h2_preface",
]
