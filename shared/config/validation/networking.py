"""Semantic (webhook) validation for the networking kinds, as Istio's pkg/config/validation.

Runs only on documents the CRD schema admitted. Each validator takes
`(typed spec, ObjectInfo, Findings)` and records errors and warnings with JSON field
paths (`spec.http[0].route[1].weight`); none raises. The rules live in one module per
kind (networking_vs, networking_http, networking_policy, networking_gateway,
networking_workloads, networking_sidecar); the functions here read `null` lists and
maps as empty, then delegate.
"""
from __future__ import annotations

from typing import Any

from isthmus.shared.config.validation import (
    networking_gateway,
    networking_policy,
    networking_sidecar,
    networking_vs,
    networking_workloads,
)
from isthmus.shared.config.validation.common import with_empty_collections
from isthmus.shared.config.validation.report import Findings


def validate_virtual_service(spec: Any, obj: Any, f: Findings) -> None:
    networking_vs.validate_virtual_service(with_empty_collections(spec), obj, f)


def validate_destination_rule(spec: Any, obj: Any, f: Findings) -> None:
    networking_policy.validate_destination_rule(with_empty_collections(spec), obj, f)


def validate_gateway(spec: Any, obj: Any, f: Findings) -> None:
    networking_gateway.validate_gateway(with_empty_collections(spec), obj, f)


def validate_service_entry(spec: Any, obj: Any, f: Findings) -> None:
    networking_workloads.validate_service_entry(with_empty_collections(spec), obj, f)


def validate_sidecar(spec: Any, obj: Any, f: Findings) -> None:
    networking_sidecar.validate_sidecar(with_empty_collections(spec), obj, f)


def validate_workload_entry(spec: Any, obj: Any, f: Findings) -> None:
    networking_workloads.validate_workload_entry(with_empty_collections(spec), obj, f)


def validate_workload_group(spec: Any, obj: Any, f: Findings) -> None:
    networking_workloads.validate_workload_group(with_empty_collections(spec), obj, f)


__all__ = [
    "validate_virtual_service",
    "validate_destination_rule",
    "validate_gateway",
    "validate_service_entry",
    "validate_sidecar",
    "validate_workload_entry",
    "validate_workload_group",
]
