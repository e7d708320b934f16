"""Effective PeerAuthentication mode for a workload port: Istio's precedence.

workload (port-level, then workload-wide) → namespace → mesh (root namespace) →
PERMISSIVE. `UNSET` at a level inherits from the level above it.
"""
from __future__ import annotations

import enum
from typing import Mapping

from isthmus.pilot.model.push_context import Config, PushContext


class MtlsMode(str, enum.Enum):
    STRICT = "STRICT"
    PERMISSIVE = "PERMISSIVE"
    DISABLE = "DISABLE"


def _mode(value: str | None) -> MtlsMode | None:
    if not value or value == "UNSET":
        return None
    return MtlsMode(value)


def _level(pa: Config | None) -> MtlsMode | None:
    if pa is None or pa.spec.mtls is None:
        return None
    return _mode(pa.spec.mtls.mode)


def effective_mode(push: PushContext, namespace: str, labels: Mapping[str, str], port: int) -> MtlsMode:
    mesh_pa, ns_pa, workload_pa = push.peer_authentications(namespace, labels)
    mode = MtlsMode.PERMISSIVE
    for level in (mesh_pa, ns_pa):
        m = _level(level)
        if m is not None:
            mode = m
    if workload_pa is not None:
        m = _level(workload_pa)
        if m is not None:
            mode = m
        port_level = workload_pa.spec.port_level_mtls.get(str(port)) if workload_pa.spec.port_level_mtls else None
        if port_level is not None:
            pm = _mode(port_level.mode)
            if pm is not None:
                mode = pm
    return mode
