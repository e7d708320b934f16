"""Semantic validation for security kinds (placeholder until the rules land)."""
from __future__ import annotations

from typing import Any

from isthmus.shared.config.validation.report import Findings


def validate_peer_authentication(spec: Any, obj: Any, f: Findings) -> None: ...
def validate_authorization_policy(spec: Any, obj: Any, f: Findings) -> None: ...
def validate_request_authentication(spec: Any, obj: Any, f: Findings) -> None: ...
