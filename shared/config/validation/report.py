"""Findings from validation: every problem with its field path, errors apart from warnings.

Validators are pure: they take a value and a `Findings` collector and return nothing.
Paths read like `spec.http[0].route[1].weight`.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Finding:
    path: str
    message: str

    def render(self, subject: str) -> str:
        """`VirtualService default/reviews: spec.http[0].route[1].weight: must be ...`"""
        where = f"{self.path}: " if self.path else ""
        return f"{subject}: {where}{self.message}" if subject else f"{where}{self.message}"


@dataclass
class Findings:
    """Collector handed to validators; `at(...)` builds child paths."""

    errors: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        self.errors.append(Finding(path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(Finding(path, message))

    @property
    def ok(self) -> bool:
        return not self.errors


def at(path: str, child: str | int) -> str:
    """Join a field path: at("spec.http", 0) → "spec.http[0]"; at("spec", "hosts") → "spec.hosts"."""
    if isinstance(child, int):
        return f"{path}[{child}]"
    if not path:
        return child
    return f"{path}.{child}"
