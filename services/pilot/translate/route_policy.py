"""Per-route policies: retries, fault injection, CORS, mirror fractions, percents.

Pure conversions from Istio's typed values to Envoy protos, following Istio's
pilot/pkg/networking/core/route (retry.ConvertPolicy, TranslateFault,
TranslateCORSPolicy, MirrorPercent). Durations are Istio strings ("7s"). Consistent-hash
keys come from translate/policy.py, shared with the clusters they hash onto.
"""
from __future__ import annotations

import http
from typing import Any

from google.protobuf import any_pb2, wrappers_pb2
from google.protobuf.duration_pb2 import Duration

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.extensions.retry.priority.previous_priorities.v3 import previous_priorities_config_pb2
from envoy.type.v3 import percent_pb2

from isthmus.pilot.model.mesh import RetryPolicy
from isthmus.pilot.translate.route_match import string_matcher
from isthmus.shared.config.types import CorsPolicy, HTTPFaultInjection, HTTPRetry, Percent
from isthmus.shared.config.validation.common import parse_duration

FAULT_FILTER = "envoy.filters.http.fault"
CORS_FILTER = "envoy.filters.http.cors"
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
PREVIOUS_HOSTS = "envoy.retry_host_predicates.previous_hosts"
PREVIOUS_PRIORITIES = "envoy.retry_priorities.previous_priorities"

# Istio's SupportedGRPCStatus (google.rpc.Code names).
GRPC_STATUS = {
    name: code for code, name in enumerate((
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED",
    ))
}
_HTTP_STATUS_CODES = frozenset(s.value for s in http.HTTPStatus)


def pack(message: Any) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(message)
    return a


def duration(text: str | None) -> Duration | None:
    """An Istio duration string → protobuf Duration (None when unset or malformed)."""
    seconds = parse_duration(text) if text else None
    return None if seconds is None else seconds_to_duration(seconds)


def seconds_to_duration(seconds: float) -> Duration:
    nanos = round(seconds * 1e9)
    return Duration(seconds=nanos // 1_000_000_000, nanos=nanos % 1_000_000_000)


def percent_fraction(p: Percent | None) -> percent_pb2.FractionalPercent:
    """Istio Percent (0-100, fractional) → parts per million."""
    value = (p.value if p is not None else 0) or 0
    return percent_pb2.FractionalPercent(numerator=int(value * 10000), denominator=percent_pb2.FractionalPercent.MILLION)


def integer_fraction(value: int) -> percent_pb2.FractionalPercent:
    return percent_pb2.FractionalPercent(numerator=int(value), denominator=percent_pb2.FractionalPercent.HUNDRED)


# ---------------------------------------------------------------- retries

def _default_envoy_retry(consistent_hash: bool) -> rc.RetryPolicy:
    out = rc.RetryPolicy(
        retry_on=DEFAULT_RETRY_ON,
        num_retries=wrappers_pb2.UInt32Value(value=2),
        host_selection_retry_max_attempts=5,
        retriable_status_codes=[503],
    )
    if not consistent_hash:  # with consistent hashing, retries stay on the hashed host
        out.retry_host_predicate.add(name=PREVIOUS_HOSTS, typed_config=pack(previous_hosts_pb2.PreviousHostsPredicate()))
    return out


def _parse_retry_on(retry_on: str) -> tuple[str, list[int]]:
    """Istio: integer parts that are HTTP status codes become retriable_status_codes."""
    words, codes = [], []
    for part in (p.strip() for p in retry_on.split(",")):
        if not part:
            continue
        if part.isdigit() and int(part) in _HTTP_STATUS_CODES:
            codes.append(int(part))
        else:
            words.append(part)
    return ",".join(words), codes


def mesh_retry(default: RetryPolicy) -> HTTPRetry | None:
    """The mesh's defaultHttpRetryPolicy as an HTTPRetry; None when it is Istio's built-in default."""
    if default == RetryPolicy():
        return None
    per_try = f"{default.per_try_timeout_s}s" if default.per_try_timeout_s else None
    return HTTPRetry(attempts=default.attempts, retry_on=default.retry_on, per_try_timeout=per_try)


def retry_policy(retries: HTTPRetry | None, consistent_hash: bool = False) -> rc.RetryPolicy | None:
    """Istio's retry.ConvertPolicy: None → the default policy; attempts <= 0 → no retries."""
    out = _default_envoy_retry(consistent_hash)
    if retries is None:
        return out
    if not retries.attempts or retries.attempts <= 0:
        return None
    out.num_retries.value = retries.attempts
    if retries.retry_on:
        words, codes = _parse_retry_on(retries.retry_on)
        out.retry_on = words
        del out.retriable_status_codes[:]
        out.retriable_status_codes.extend(codes)
        if codes and "retriable-status-codes" not in words:
            out.retry_on = f"{words},retriable-status-codes" if words else "retriable-status-codes"
    per_try = duration(retries.per_try_timeout)
    if per_try is not None:
        out.per_try_timeout.CopyFrom(per_try)
    if retries.retry_ignore_previous_hosts is not None:
        del out.retry_host_predicate[:]
        if retries.retry_ignore_previous_hosts:
            out.retry_host_predicate.add(name=PREVIOUS_HOSTS, typed_config=pack(previous_hosts_pb2.PreviousHostsPredicate()))
    if retries.retry_remote_localities:
        out.retry_priority.name = PREVIOUS_PRIORITIES
        out.retry_priority.typed_config.CopyFrom(
            pack(previous_priorities_config_pb2.PreviousPrioritiesConfig(update_frequency=2))
        )
    backoff = duration(retries.backoff)
    if backoff is not None:
        out.retry_back_off.base_interval.CopyFrom(backoff)
    return out


# ---------------------------------------------------------------- fault injection

def fault_config(fault: HTTPFaultInjection | None) -> fault_pb2.HTTPFault | None:
    """Istio's TranslateFault: fixed delays and HTTP/gRPC aborts; None when nothing applies."""
    if fault is None:
        return None
    out = fault_pb2.HTTPFault()
    effective = False
    d = fault.delay
    fixed = duration(d.fixed_delay) if d is not None else None
    if d is not None and fixed is not None:  # exponential delays are not supported (as Istio)
        out.delay.fixed_delay.CopyFrom(fixed)
        out.delay.percentage.CopyFrom(
            percent_fraction(d.percentage) if d.percentage is not None else integer_fraction(d.percent or 0)
        )
        effective = True
    a = fault.abort
    if a is not None and (a.http_status is not None or a.grpc_status in GRPC_STATUS):
        if a.http_status is not None:
            out.abort.http_status = a.http_status
        else:
            out.abort.grpc_status = GRPC_STATUS[a.grpc_status]  # type: ignore[index]
        if a.percentage is not None:
            out.abort.percentage.CopyFrom(percent_fraction(a.percentage))
        effective = True
    return out if effective else None


# ---------------------------------------------------------------- CORS

def cors_config(cors: CorsPolicy) -> cors_pb2.CorsPolicy:
    """Istio's TranslateCORSPolicy (per-route config of envoy.filters.http.cors)."""
    out = cors_pb2.CorsPolicy(
        allow_methods=",".join(cors.allow_methods),
        allow_headers=",".join(cors.allow_headers),
        expose_headers=",".join(cors.expose_headers),
        forward_not_matching_preflights=wrappers_pb2.BoolValue(value=cors.unmatched_preflights != "IGNORE"),
    )
    out.filter_enabled.default_value.CopyFrom(integer_fraction(100))
    if cors.allow_origins:
        for origin in cors.allow_origins:
            sm = string_matcher(origin)
            if sm is not None:
                out.allow_origin_string_match.append(sm)
    else:
        for origin in cors.allow_origin:
            out.allow_origin_string_match.add(exact=origin)
    if cors.allow_credentials is not None:
        out.allow_credentials.value = cors.allow_credentials
    max_age = parse_duration(cors.max_age) if cors.max_age else None
    if max_age is not None:
        out.max_age = str(int(max_age))
    return out


# ---------------------------------------------------------------- mirroring

def mirror_fraction(percentage: Percent | None, legacy_percent: int | None) -> base_pb2.RuntimeFractionalPercent | None:
    """Istio's MirrorPercent: unset → 100%; an explicit 0 → no mirroring."""
    if percentage is not None:
        if not percentage.value or percentage.value <= 0:
            return None
        return base_pb2.RuntimeFractionalPercent(default_value=percent_fraction(percentage))
    if legacy_percent is not None:
        return None if legacy_percent <= 0 else base_pb2.RuntimeFractionalPercent(default_value=integer_fraction(legacy_percent))
    return base_pb2.RuntimeFractionalPercent(default_value=integer_fraction(100))
