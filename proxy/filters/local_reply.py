"""Responses the proxy makes itself, with Envoy's bodies, flags and gRPC mapping.

`RESPONSE_FLAGS` are Envoy's short names as bits, in Envoy's print order
(`flags_string(mask)` joins them with "," and gives "-" for none). Local replies to
gRPC requests are trailers-only (HTTP 200, `grpc-status` mapped from the HTTP status
as Envoy's `Grpc::Utility::httpToGrpcStatus`, `grpc-message` = the body).
"""
from __future__ import annotations

# Envoy's ResponseFlag order (response_flag_utils.cc), one bit each.
_ORDER = ("LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC", "URX", "SI",
          "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR")
FLAG = {name: 1 << i for i, name in enumerate(_ORDER)}
UH, UT, LR, UR, UF, UC, UO, NR, DI, FI = (FLAG[n] for n in ("UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI"))
DC, URX, SI, DPE, UPE, NC, DR = (FLAG[n] for n in ("DC", "URX", "SI", "DPE", "UPE", "NC", "DR"))
UMSDR = FLAG["UMSDR"]

_FLAG_STRINGS: dict[int, str] = {0: "-"}


def flags_string(mask: int) -> str:
    s = _FLAG_STRINGS.get(mask)
    if s is None:
        s = _FLAG_STRINGS[mask] = ",".join(n for i, n in enumerate(_ORDER) if mask & (1 << i))
    return s


RESET_BEFORE_HEADERS = "upstream connect error or disconnect/reset before headers. "

# Envoy's local reply bodies by cause.
BODY_NO_HEALTHY_UPSTREAM = b"no healthy upstream"
BODY_TIMEOUT = b"upstream request timeout"
BODY_FAULT_ABORT = b"fault filter abort"
BODY_STREAM_TIMEOUT = b"stream timeout"
BODY_HEADER_TIMEOUT = b"request header timeout"
BODY_MAX_DURATION = b"downstream duration timeout"

RESET_REASONS = {
    "connection_failure": "connection failure",
    "connect_timeout": "connection timeout",
    "overflow": "overflow",
    "connection_termination": "connection termination",
    "remote_reset": "remote reset",
    "refused_stream": "remote refused stream reset",
    "protocol_error": "protocol error",
    "local_reset": "local reset",
}


def reset_body(reason: str, transport_failure: str = "", retried: bool = False) -> bytes:
    """Envoy's "upstream connect error or disconnect/reset before headers" body."""
    text = RESET_REASONS.get(reason, reason)
    lead = "retried and the latest reset reason: " if retried else "reset reason: "
    body = RESET_BEFORE_HEADERS + lead + text
    if transport_failure:
        body += ", transport failure reason: " + transport_failure
    return body.encode()


def grpc_status_for(http_status: int) -> int:
    """Envoy's Grpc::Utility::httpToGrpcStatus."""
    if http_status == 400:
        return 13  # INTERNAL
    if http_status == 401:
        return 16  # UNAUTHENTICATED
    if http_status == 403:
        return 7  # PERMISSION_DENIED
    if http_status == 404:
        return 12  # UNIMPLEMENTED
    if http_status in (429, 502, 503, 504):
        return 14  # UNAVAILABLE
    return 2  # UNKNOWN


def grpc_message(body: bytes) -> bytes:
    """grpc-message is percent-encoded (RFC 3986 unreserved + space-ish printable ASCII kept)."""
    out = bytearray()
    for b in body:
        if 0x20 <= b <= 0x7E and b != 0x25:
            out.append(b)
        else:
            out += b"%%%02X" % b
    return bytes(out)


TEXT_PLAIN = b"text/plain"
APPLICATION_GRPC = b"application/grpc"
