"""Structural validation against the CRD schema (placeholder until it lands)."""
from __future__ import annotations

from typing import Any

from isthmus.shared.config.validation.report import Findings


def check_spec(schema: dict[str, Any], spec: Any, f: Findings, path: str = "spec") -> None: ...
