"""The small, flat error hierarchy every layer translates into at its boundary.

Messages name the thing and the fix; services map these onto gRPC status codes.
"""
from __future__ import annotations


class IsthmusError(Exception):
    """Base of every error Isthmus raises on purpose."""


class InvalidConfig(IsthmusError):
    """One or more resources failed validation; `errors` holds every message."""

    def __init__(self, errors: list[str] | tuple[str, ...]):
        self.errors = tuple(errors)
        super().__init__("\n".join(self.errors) if self.errors else "invalid configuration")


class NotFound(IsthmusError):
    pass


class AlreadyExists(IsthmusError):
    pass


class Conflict(IsthmusError):
    """Optimistic concurrency failed: the caller's resourceVersion is stale."""


class ResyncRequired(IsthmusError):
    """A watch asked for a revision that has been compacted away: list again."""

    def __init__(self, requested: int, compacted: int):
        self.requested = requested
        self.compacted = compacted
        super().__init__(
            f"revision {requested} has been compacted (oldest kept is {compacted}): "
            "list again and watch from the list's revision"
        )


class StoreUnavailable(IsthmusError):
    pass
