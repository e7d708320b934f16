"""Cluster status for the admin endpoint: structured (`clusters_status`) and Envoy's
`/clusters` text (`clusters_text`: `cluster::host::stat::value`, breakers first).
"""
from __future__ import annotations

from isthmus.proxy.upstream.circuit import Resource
from isthmus.proxy.upstream.health import HealthFlag

_FLAG_NAMES = (
    (HealthFlag.FAILED_ACTIVE_HC, "/failed_active_hc"),
    (HealthFlag.FAILED_OUTLIER_CHECK, "/failed_outlier_check"),
    (HealthFlag.FAILED_EDS_HEALTH, "/failed_eds_health"),
    (HealthFlag.DEGRADED_ACTIVE_HC, "/degraded_active_hc"),
    (HealthFlag.DEGRADED_EDS_HEALTH, "/degraded_eds_health"),
)


def health_flags(flags: HealthFlag) -> str:
    out = "".join(name for bit, name in _FLAG_NAMES if flags & bit)
    return out or "healthy"


def _host(state, info) -> dict:
    h = info.host
    loc = h.locality
    od = state.outlier
    sr = -1.0
    return {
        "address": h.address_string, "hostname": h.hostname, "weight": h.weight, "priority": h.priority,
        "region": loc.region, "zone": loc.zone, "sub_zone": loc.sub_zone,
        "health_flags": health_flags(h.health_flags), "outlier_ejected": h.ejected,
        "rq_active": h.active_requests, "rq_total": info.rq_total, "rq_success": info.rq_success,
        "rq_error": info.rq_error, "rq_timeout": info.rq_timeout, "cx_active": info.cx_active,
        "cx_total": info.cx_total, "cx_connect_fail": info.cx_connect_fail, "success_rate": sr,
        "ejection_remaining_s": od.ejection_time_remaining(h, state.rt.loop.time()) if od is not None else 0.0,
    }


def clusters_status(states: dict) -> list[dict]:
    out = []
    for name, state in sorted(states.items()):
        breakers = {}
        for prio, rm in state.breakers.items():
            breakers[prio] = {
                "max_connections": rm.limit(Resource.CONNECTIONS), "max_pending_requests": rm.limit(Resource.PENDING_REQUESTS),
                "max_requests": rm.limit(Resource.REQUESTS), "max_retries": rm.limit(Resource.RETRIES),
            }
        out.append({"name": name, "observability_name": name, "added_via_api": True,
                    "eds_service_name": state.config.eds_service_name, "circuit_breakers": breakers,
                    "hosts": [_host(state, info) for info in state.all_hosts()]})
    return out


def clusters_text(states: dict) -> str:
    lines: list[str] = []
    for c in clusters_status(states):
        name = c["name"]
        lines.append(f"{name}::observability_name::{c['observability_name']}")
        for prio, b in c["circuit_breakers"].items():
            for k in ("max_connections", "max_pending_requests", "max_requests", "max_retries"):
                lines.append(f"{name}::{prio}_priority::{k}::{b[k]}")
        lines.append(f"{name}::added_via_api::true")
        for h in c["hosts"]:
            p = f"{name}::{h['address']}::"
            for k in ("cx_active", "cx_connect_fail", "cx_total", "rq_active", "rq_error", "rq_success", "rq_timeout",
                      "rq_total"):
                lines.append(f"{p}{k}::{h[k]}")
            lines.append(f"{p}hostname::{h['hostname']}")
            lines.append(f"{p}health_flags::{h['health_flags']}")
            lines.append(f"{p}weight::{h['weight']}")
            lines.append(f"{p}region::{h['region']}")
            lines.append(f"{p}zone::{h['zone']}")
            lines.append(f"{p}sub_zone::{h['sub_zone']}")
            lines.append(f"{p}canary::false")
            lines.append(f"{p}priority::{h['priority']}")
            lines.append(f"{p}success_rate::-1.0")
            lines.append(f"{p}local_origin_success_rate::-1.0")
    return "\n".join(lines) + ("\n" if lines else "")
