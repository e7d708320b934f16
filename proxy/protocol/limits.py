"""Codec limits and settings, with Envoy's defaults; frozen values built once per
xDS snapshot (HttpConnectionManager.max_request_headers_kb,
common_http_protocol_options.max_headers_count, http2_protocol_options ...).
"""
from __future__ import annotations

from dataclasses import dataclass

KIB = 1024


@dataclass(frozen=True, slots=True)
class Http1Limits:
    """HTTP/1.1 codec behaviour.

    ``max_headers_kb`` bounds the request-target plus every header name and value
    (Envoy's count; 431 above it), ``max_headers_count`` the number of header lines
    (431 above it). Trailers have the same limits. ``accept_http_10`` is True here
    for standalone use; Envoy's default is False (426), so the config layer should
    pass HttpProtocolOptions.accept_http_10 through.
    """

    max_headers_kb: int = 60
    max_headers_count: int = 100
    accept_http_10: bool = True
    default_host_for_http_10: bytes = b""
    allow_absolute_url: bool = True

    @property
    def max_headers_bytes(self) -> int:
        return self.max_headers_kb * KIB


@dataclass(frozen=True, slots=True)
class Http2Settings:
    """HTTP/2 codec settings. Envoy's own defaults for the windows are 256 MiB,
    which in Python would defeat backpressure; these are Envoy's recommended
    edge values (64 KiB per stream, 1 MiB per connection). ``max_concurrent_streams``
    is enforced with REFUSED_STREAM; header lists over ``max_headers_kb`` /
    ``max_headers_count`` reset the stream (Envoy: http2.too_many_headers)."""

    max_concurrent_streams: int = 2**31 - 1
    initial_stream_window_size: int = 64 * KIB
    initial_connection_window_size: int = 1024 * KIB
    max_frame_size: int = 16 * KIB
    hpack_table_size: int = 4096
    max_headers_kb: int = 60
    max_headers_count: int = 100

    @property
    def max_headers_bytes(self) -> int:
        return self.max_headers_kb * KIB


DEFAULT_HTTP1_LIMITS = Http1Limits()
DEFAULT_HTTP2_SETTINGS = Http2Settings()
