"""Semantic (webhook) validation for the networking kinds, as Istio's pkg/config/validation.

Runs only on documents the CRD schema admitted. Each validator takes
`(typed spec, ObjectInfo, Findings)` and records errors and warnings with JSON field
paths; none raises. The rules live in one module per kind; this module is the table's view.
"""
from __future__ import annotations

from isthmus.shared.config.validation.networking_gateway import validate_gateway
from isthmus.shared.config.validation.networking_policy import validate_destination_rule
from isthmus.shared.config.validation.networking_sidecar import validate_sidecar
from isthmus.shared.config.validation.networking_vs import validate_virtual_service
from isthmus.shared.config.validation.networking_workloads import (
    validate_service_entry,
    validate_workload_entry,
    validate_workload_group,
)

__all__ = [
    "validate_virtual_service",
    "validate_destination_rule",
    "validate_gateway",
    "validate_service_entry",
    "validate_sidecar",
    "validate_workload_entry",
    "validate_workload_group",
]
