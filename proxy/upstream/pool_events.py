"""The vocabulary of the connection pool: events it is told, actions it answers with.

Contract: all frozen values. Requests are any hashable the runtime chooses (a stream
id); connections are ints the pool allocates in `OpenConnection`. `FailureReason`
says why a request failed and which response flag the router logs with its 503.
"""
from __future__ import annotations

import dataclasses
import enum
from collections.abc import Hashable
from typing import Union

__all__ = [
    "FailureReason",
    "RequestArrived", "RequestCancelled", "RequestFinished", "ConnectionReady", "ConnectFailed",
    "ConnectionClosed", "GoAway", "PeerSettings", "IdleTick", "DrainAll", "Event",
    "OpenConnection", "Assign", "CloseConnection", "FailRequest", "Action",
]


class FailureReason(enum.Enum):
    OVERFLOW = "overflow"  # circuit breaker: 503, response flag UO
    CONNECTION_FAILURE = "connection_failure"  # connect failed: 503, UF
    CONNECT_TIMEOUT = "connect_timeout"  # connect timed out: 503, UF
    CONNECTION_TERMINATION = "connection_termination"  # closed under the request: 503, UC

    @property
    def response_flag(self) -> str:
        """Envoy's access-log response flag for a request failed this way."""
        if self is FailureReason.OVERFLOW:
            return "UO"
        return "UC" if self is FailureReason.CONNECTION_TERMINATION else "UF"


# -- events (in) ------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class RequestArrived:
    request: Hashable


@dataclasses.dataclass(frozen=True, slots=True)
class RequestCancelled:
    """The downstream gave up (reset, timeout) while queued or in flight."""

    request: Hashable


@dataclasses.dataclass(frozen=True, slots=True)
class RequestFinished:
    """The stream ended; `close_connection` when it may not carry another request
    (HTTP/1.1 `Connection: close`, a response not read to the end, ...)."""

    request: Hashable
    close_connection: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionReady:
    """Connected (TLS and, for HTTP/2, the peer's first SETTINGS included)."""

    connection: int
    max_concurrent_streams: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectFailed:
    connection: int
    timeout: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """An established connection closed under us (peer close, reset, protocol error)."""

    connection: int


@dataclasses.dataclass(frozen=True, slots=True)
class GoAway:
    """HTTP/2 GOAWAY (or HTTP/1.1 `Connection: close` announced): drain it."""

    connection: int


@dataclasses.dataclass(frozen=True, slots=True)
class PeerSettings:
    connection: int
    max_concurrent_streams: int


@dataclasses.dataclass(frozen=True, slots=True)
class IdleTick:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class DrainAll:
    """The host became unavailable (or is being removed): stop reusing connections."""


Event = Union[RequestArrived, RequestCancelled, RequestFinished, ConnectionReady, ConnectFailed,
              ConnectionClosed, GoAway, PeerSettings, IdleTick, DrainAll]


# -- actions (out) ----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class OpenConnection:
    connection: int


@dataclasses.dataclass(frozen=True, slots=True)
class Assign:
    request: Hashable
    connection: int


@dataclasses.dataclass(frozen=True, slots=True)
class CloseConnection:
    connection: int
    reason: str  # idle_timeout | drained | excess | connection_close


@dataclasses.dataclass(frozen=True, slots=True)
class FailRequest:
    request: Hashable
    reason: FailureReason


Action = Union[OpenConnection, Assign, CloseConnection, FailRequest]
