"""Semantic validation for Telemetry (placeholder until the rules land)."""
from __future__ import annotations

from typing import Any

from isthmus.shared.config.validation.report import Findings


def validate_telemetry(spec: Any, obj: Any, f: Findings) -> None: ...
