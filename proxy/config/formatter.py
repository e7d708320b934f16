"""Envoy substitution format strings (%COMMAND(args):max% operators), parsed once.

`parse_format(text)` → `Template`: a tuple of literal strings and `Operator`s that the
runtime evaluates per request/connection (access logs, header values). `%%` is a
literal percent. An unknown command, or a `%` that starts no valid operator, is
rejected, as Envoy does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from isthmus.proxy.config.errors import Where

# The command operators the isthmus runtime evaluates (Envoy's names).
COMMANDS = frozenset({
    "START_TIME", "EMIT_TIME", "PROTOCOL", "UPSTREAM_PROTOCOL", "RESPONSE_CODE", "RESPONSE_CODE_DETAILS",
    "CONNECTION_TERMINATION_DETAILS", "RESPONSE_FLAGS", "RESPONSE_FLAGS_LONG", "BYTES_RECEIVED", "BYTES_SENT",
    "REQUEST_HEADERS_BYTES", "RESPONSE_HEADERS_BYTES", "RESPONSE_TRAILERS_BYTES",
    "DURATION", "REQUEST_DURATION", "REQUEST_TX_DURATION", "RESPONSE_DURATION", "RESPONSE_TX_DURATION",
    "DOWNSTREAM_HANDSHAKE_DURATION", "ROUNDTRIP_DURATION",
    "UPSTREAM_HOST", "UPSTREAM_HOST_NAME", "UPSTREAM_CLUSTER", "UPSTREAM_CLUSTER_RAW",
    "UPSTREAM_LOCAL_ADDRESS", "UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", "UPSTREAM_LOCAL_PORT",
    "UPSTREAM_REMOTE_ADDRESS", "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", "UPSTREAM_REMOTE_PORT",
    "UPSTREAM_TRANSPORT_FAILURE_REASON", "UPSTREAM_REQUEST_ATTEMPT_COUNT", "UPSTREAM_CONNECTION_ID",
    "UPSTREAM_PEER_URI_SAN", "UPSTREAM_PEER_SUBJECT", "UPSTREAM_TLS_VERSION",
    "DOWNSTREAM_LOCAL_ADDRESS", "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", "DOWNSTREAM_LOCAL_PORT",
    "DOWNSTREAM_REMOTE_ADDRESS", "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT", "DOWNSTREAM_REMOTE_PORT",
    "DOWNSTREAM_DIRECT_REMOTE_ADDRESS", "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT",
    "DOWNSTREAM_DIRECT_REMOTE_PORT", "CONNECTION_ID", "STREAM_ID", "REQUESTED_SERVER_NAME", "ROUTE_NAME",
    "VIRTUAL_CLUSTER_NAME", "FILTER_CHAIN_NAME", "HOSTNAME", "LOCAL_REPLY_BODY", "ACCESS_LOG_TYPE",
    "DOWNSTREAM_PEER_URI_SAN", "DOWNSTREAM_LOCAL_URI_SAN", "DOWNSTREAM_PEER_DNS_SAN", "DOWNSTREAM_LOCAL_DNS_SAN",
    "DOWNSTREAM_PEER_SUBJECT", "DOWNSTREAM_LOCAL_SUBJECT", "DOWNSTREAM_PEER_ISSUER", "DOWNSTREAM_TLS_SESSION_ID",
    "DOWNSTREAM_TLS_CIPHER", "DOWNSTREAM_TLS_VERSION", "DOWNSTREAM_PEER_FINGERPRINT_256",
    "DOWNSTREAM_PEER_SERIAL", "DOWNSTREAM_PEER_CERT", "DOWNSTREAM_PEER_CERT_V_START", "DOWNSTREAM_PEER_CERT_V_END",
    "REQ", "RESP", "TRAILER", "REQ_WITHOUT_QUERY", "DYNAMIC_METADATA", "CLUSTER_METADATA", "UPSTREAM_METADATA",
    "FILTER_STATE", "GRPC_STATUS", "GRPC_STATUS_NUMBER", "ENVIRONMENT", "TRACE_ID", "PATH",
})
HEADER_COMMANDS = frozenset({"REQ", "RESP", "TRAILER", "REQ_WITHOUT_QUERY"})
METADATA_COMMANDS = frozenset({"DYNAMIC_METADATA", "CLUSTER_METADATA", "UPSTREAM_METADATA", "FILTER_STATE"})

_OPERATOR = re.compile(r"%([A-Z][A-Z0-9_]*)(?:\(([^)]*)\))?(?::([0-9]+))?%")


@dataclass(frozen=True, slots=True)
class Operator:
    """One %COMMAND(args):max_length%. `args` is pre-split: REQ/RESP/TRAILER on `?`
    (header, fallback header), *_METADATA/FILTER_STATE on `:`, otherwise one argument."""

    command: str
    args: tuple[str, ...] = ()
    max_length: int | None = None


Piece = Union[str, Operator]
Template = tuple[Piece, ...]


def _args(command: str, raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    if command in HEADER_COMMANDS:
        return tuple(a.lower() for a in raw.split("?"))
    if command in METADATA_COMMANDS:
        return tuple(raw.split(":"))
    return (raw,)


def parse_format(text: str, where: Where) -> Template:
    """Literal runs and operators, in order; adjacent literals are merged."""
    pieces: list[Piece] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        pos = text.find("%", i)
        if pos < 0:
            literal.append(text[i:])
            break
        literal.append(text[i:pos])
        if text.startswith("%%", pos):
            literal.append("%")
            i = pos + 2
            continue
        m = _OPERATOR.match(text, pos)
        if m is None:
            raise where.invalid(f"format {text!r}: no valid command operator at position {pos}")
        command, raw, length = m.group(1), m.group(2), m.group(3)
        if command not in COMMANDS:
            raise where.unsupported(f"format {text!r}: command %{command}% is not supported")
        if command in HEADER_COMMANDS and not raw:
            raise where.invalid(f"format {text!r}: %{command}% needs a header name")
        if literal and "".join(literal):
            pieces.append("".join(literal))
        literal = []
        pieces.append(Operator(command, _args(command, raw), int(length) if length else None))
        i = m.end()
    if literal and "".join(literal):
        pieces.append("".join(literal))
    return tuple(pieces)
