"""Why a resource is refused, and the allow-lists that decide it.

`Unsupported(type_url, resource_name, field_path, reason)` is the one error every
compiler raises; the xDS client NACKs with `str(err)` as error_detail. `Invalid` is
the subclass for configuration Envoy itself would reject (duplicate matches, bad
regex). `Fields` is a message's explicit allow-list: a field that is set and neither
honoured nor knowingly ignored — including one a newer Envoy adds — fails loudly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from google.protobuf import unknown_fields
from google.protobuf.message import Message

TYPE_PREFIX = "type.googleapis.com/"


class Unsupported(ValueError):
    """A resource uses something the isthmus proxy does not implement (or gets wrong)."""

    def __init__(self, type_url: str, resource_name: str, field_path: str, reason: str) -> None:
        self.type_url = type_url
        self.resource_name = resource_name
        self.field_path = field_path
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        kind = self.type_url.rsplit(".", 1)[-1] if self.type_url else "resource"
        path = f" {self.field_path}:" if self.field_path else ""
        return f"{kind} {self.resource_name!r}:{path} {self.reason}"

    def __reduce__(self):  # keep the four fields across pickling
        return (type(self), (self.type_url, self.resource_name, self.field_path, self.reason))


class Invalid(Unsupported):
    """Configuration Envoy itself rejects (duplicate domains or chain matches, bad regex, ...)."""


@dataclass(frozen=True, slots=True)
class Where:
    """Where the compiler is: the resource being compiled and the field path inside it."""

    type_url: str
    resource: str
    path: str = ""

    def at(self, field: str) -> "Where":
        return Where(self.type_url, self.resource, f"{self.path}.{field}" if self.path else field)

    def idx(self, i: int) -> "Where":
        return Where(self.type_url, self.resource, f"{self.path}[{i}]")

    def key(self, k: str) -> "Where":
        return Where(self.type_url, self.resource, f'{self.path}["{k}"]')

    def unsupported(self, reason: str) -> Unsupported:
        return Unsupported(self.type_url, self.resource, self.path, reason)

    def invalid(self, reason: str) -> Invalid:
        return Invalid(self.type_url, self.resource, self.path, reason)


class Fields:
    """The allow-list of one message type: fields we honour, and fields we may ignore
    because they do not change behaviour for us (stats names, descriptions, no-ops).
    Names are checked against the descriptor at import, so a typo fails at once."""

    def __init__(self, message: type[Message], honoured: Iterable[str], ignored: Mapping[str, str] | None = None) -> None:
        self.full_name = message.DESCRIPTOR.full_name
        self.honoured = frozenset(honoured)
        self.ignored = dict(ignored or {})
        known = {f.name for f in message.DESCRIPTOR.fields}
        unknown = (self.honoured | set(self.ignored)) - known
        if unknown:
            raise AssertionError(f"{self.full_name} has no field(s) {sorted(unknown)}")
        self.allowed = self.honoured | frozenset(self.ignored)
        self.rejected = frozenset(known - self.allowed)

    def check(self, msg: Message, where: Where) -> None:
        """Raise Unsupported for the first set field outside the allow-list."""
        for fd, _ in msg.ListFields():
            if fd.name not in self.allowed:
                raise where.at(fd.name).unsupported(f"{msg.DESCRIPTOR.name}.{fd.name} is not supported by the isthmus proxy")
        unknown = unknown_fields.UnknownFieldSet(msg)
        if len(unknown):
            number = next(iter(unknown)).field_number
            raise where.unsupported(f"{msg.DESCRIPTOR.name} carries unknown field number {number} (newer Envoy API?)")


def short_type(type_url: str) -> str:
    return type_url[len(TYPE_PREFIX):] if type_url.startswith(TYPE_PREFIX) else type_url
