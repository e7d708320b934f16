"""Why citadel refused a request: one exception per outcome, each with a metric reason.

`Unauthenticated` → gRPC UNAUTHENTICATED; `Rejected` carries the status it maps to
(INVALID_ARGUMENT for a malformed request, PERMISSION_DENIED for one asking more
than the caller may have). `reason` is a short stable label used in metrics.
"""
from __future__ import annotations

from isthmus.shared.errors import IsthmusError


class Unauthenticated(IsthmusError):
    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


class Rejected(IsthmusError):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    PERMISSION_DENIED = "PERMISSION_DENIED"

    def __init__(self, reason: str, message: str, code: str = INVALID_ARGUMENT):
        self.reason = reason
        self.code = code
        super().__init__(message)


def denied(reason: str, message: str) -> Rejected:
    return Rejected(reason, message, Rejected.PERMISSION_DENIED)


class CaUnavailable(IsthmusError):
    """The certificate manager could not reach citadel (used for retry decisions)."""
