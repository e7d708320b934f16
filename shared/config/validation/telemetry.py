"""Istio's webhook (semantic) checks for Telemetry, run after the CRD schema admitted it.

Pure: `validate_telemetry(spec, obj, f)` records errors and warnings in `f` with JSON
field paths (`spec.tracing[0].customTags[env].environment.name`) and never raises.
"""
from __future__ import annotations

import math
from typing import Any

from isthmus.shared.config import types as t
from isthmus.shared.config.validation import common
from isthmus.shared.config.validation.cel import CelSyntaxError, compile_rule
from isthmus.shared.config.validation.report import Findings, at
from isthmus.shared.config.validation.security import check_policy_target, text

METRICS = ("ALL_METRICS", "REQUEST_COUNT", "REQUEST_DURATION", "REQUEST_SIZE", "RESPONSE_SIZE",
           "TCP_OPENED_CONNECTIONS", "TCP_CLOSED_CONNECTIONS", "TCP_SENT_BYTES", "TCP_RECEIVED_BYTES",
           "GRPC_REQUEST_MESSAGES", "GRPC_RESPONSE_MESSAGES")
TAG_KINDS = ("literal", "environment", "header", "formatter")


def _list(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else ()


def _map(value: Any) -> dict[str, Any]:
    return dict(value) if hasattr(value, "items") else {}


def _check_providers(providers: Any, path: str, f: Findings) -> None:
    for i, ref in enumerate(_list(providers)):
        p = at(path, i)
        if ref is None:
            f.error(p, "provider must not be null")
        elif isinstance(ref, t.ProviderRef) and not text(ref.name).strip():
            f.error(at(p, "name"), "provider name must not be empty; name an extension provider from the mesh config")


def _check_custom_tag(name: str, tag: Any, path: str, f: Findings) -> None:
    if not name:
        f.error(path, "tag name must not be empty")
    if not isinstance(tag, t.TelemetryTracingCustomTagsValue):
        if tag is None:
            f.error(path, f"tag {name!r} must not be null: set one of {', '.join(TAG_KINDS)}")
        return
    kinds = [k for k in TAG_KINDS if getattr(tag, k) is not None]
    if len(kinds) != 1:
        found = f" (found {', '.join(kinds)})" if kinds else ""
        f.error(path, f"set exactly one of {', '.join(TAG_KINDS)}{found}")
    for kind in kinds:
        value = getattr(tag, kind)
        if kind in ("literal", "formatter"):
            if not text(getattr(value, "value", None)):
                f.error(at(at(path, kind), "value"), f"{kind} tag value must not be empty")
        elif not text(getattr(value, "name", None)):
            what = "header name" if kind == "header" else "environment variable name"
            f.error(at(at(path, kind), "name"), f"{kind} tag needs a {what}")


def _check_tracing(tracing: t.Tracing, path: str, f: Findings) -> None:
    _check_providers(tracing.providers, at(path, "providers"), f)
    if len(_list(tracing.providers)) > 1:
        f.warn(at(path, "providers"), "multiple providers are not currently supported; list one")
    pct = tracing.random_sampling_percentage
    if pct is not None and not isinstance(pct, bool) and isinstance(pct, int | float):
        if not math.isfinite(pct) or not 0 <= pct <= 100:
            f.error(at(path, "randomSamplingPercentage"), f"must be in range [0.0, 100.0] (got {pct})")
    for name, tag in _map(tracing.custom_tags).items():
        _check_custom_tag(str(name), tag, f"{at(path, 'customTags')}[{name}]", f)


def _check_override(override: t.TelemetryMetricsOverrides, path: str, f: Findings) -> None:
    match = override.match
    if isinstance(match, t.TelemetryMetricsOverridesMatch):
        if match.metric is not None and match.custom_metric is not None:
            f.error(at(path, "match"), "set only one of metric or customMetric")
        if match.metric is not None and match.metric not in METRICS:
            f.error(at(at(path, "match"), "metric"),
                    f"unknown metric {match.metric!r}; use one of {', '.join(METRICS)}")
        if match.custom_metric is not None and not text(match.custom_metric):
            f.error(at(at(path, "match"), "customMetric"), "customMetric must not be empty")
    for name, tag in _map(override.tag_overrides).items():
        p = f"{at(path, 'tagOverrides')}[{name}]"
        if not name:
            f.error(p, "tag name must not be empty")
        if not isinstance(tag, t.TelemetryMetricsOverridesTagOverridesValue):
            if tag is None:
                f.error(p, "tag override must not be null")
            continue
        operation = text(tag.operation) or "UPSERT"
        if operation == "UPSERT" and not text(tag.value):
            f.error(at(p, "value"), "value must be set when operation is UPSERT (the default)")
        elif operation == "REMOVE" and tag.value is not None:
            f.error(at(p, "value"), "value must not be set when operation is REMOVE")


def _check_metrics(metrics: t.Metrics, path: str, f: Findings) -> None:
    _check_providers(metrics.providers, at(path, "providers"), f)
    if isinstance(metrics.reporting_interval, str):
        common.check_duration(metrics.reporting_interval, at(path, "reportingInterval"), f, ms_precision=False)
    for i, override in enumerate(_list(metrics.overrides)):
        if isinstance(override, t.TelemetryMetricsOverrides):
            _check_override(override, at(at(path, "overrides"), i), f)
        elif override is None:
            f.error(at(at(path, "overrides"), i), "override must not be null")


def _check_access_logging(logging: t.AccessLogging, path: str, f: Findings) -> None:
    _check_providers(logging.providers, at(path, "providers"), f)
    flt = logging.filter
    if not isinstance(flt, t.TelemetryAccessLoggingFilter):
        return
    expression = text(flt.expression)
    if not expression.strip():
        f.error(at(at(path, "filter"), "expression"), "filter expression must not be empty; "
                                                      "drop `filter` to log every request")
        return
    try:
        compile_rule(expression)
    except CelSyntaxError as exc:
        f.error(at(at(path, "filter"), "expression"), f"must be a valid CEL expression: {exc}")


def validate_telemetry(spec: Any, obj: Any, f: Findings) -> None:
    """Policy target, then tracing, metrics and access-logging entries."""
    if not isinstance(spec, t.TelemetrySpec):
        return
    check_policy_target(spec, f)
    tracing = _list(spec.tracing)
    if len(tracing) > 1:
        f.warn("spec.tracing", "multiple tracing entries are not currently supported; merge them into one")
    sections = (("tracing", tracing, t.Tracing, _check_tracing),
                ("metrics", _list(spec.metrics), t.Metrics, _check_metrics),
                ("accessLogging", _list(spec.access_logging), t.AccessLogging, _check_access_logging))
    for name, entries, cls, check in sections:
        for i, entry in enumerate(entries):
            if isinstance(entry, cls):
                check(entry, at(at("spec", name), i), f)
            elif entry is None:
                f.error(at(at("spec", name), i), f"{name} entry must not be null")
