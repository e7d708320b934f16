"""Checks of one VirtualService HTTP route and of route destinations (Istio's validateHTTPRoute).

Pure: each `check_*` takes a typed value, its JSON path and a `Findings`. Used by
networking_vs (routes) and networking_sidecar (the egress proxy destination).
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

from isthmus.shared.config.validation import common as c
from isthmus.shared.config.validation.report import Findings, at

KB, MB = 1024, 1024 * 1024
RETRY_ON_POLICIES = frozenset({
    # x-envoy-retry-on
    "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "retriable-4xx",
    "refused-stream", "retriable-status-codes", "retriable-headers", "envoy-ratelimited",
    "http3-post-connect-failure",
    # x-envoy-retry-grpc-on
    "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
})
CORS_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*"})
GRPC_STATUSES = frozenset({
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
})


# ---------------------------------------------------------------- destinations and gateways

def check_destination(dest: Any, path: str, f: Findings) -> None:
    """Istio's validateDestination: a host (no bare `*`), a DNS-1123 subset, a port in range."""
    if dest is None:
        return
    if dest.host == "*":
        f.error(at(path, "host"), "invalid destination host *: name a service, e.g. reviews.default.svc.cluster.local")
    else:
        c.check_wildcard_host(dest.host, at(path, "host"), f)
    if dest.subset is not None:
        if dest.subset == "":
            f.error(at(path, "subset"), "subset name cannot be empty")
        else:
            c.check_dns1123_label(dest.subset, at(path, "subset"), f, "subset name")
    if dest.port is not None:
        c.check_port(dest.port.number or 0, at(at(path, "port"), "number"), f)


def check_route_destinations(routes: Any, path: str, f: Findings) -> None:
    """HTTP/TCP/TLS route destinations: destination required, weights >= 0, not all zero."""
    total = 0
    for i, rd in enumerate(routes):
        p = at(path, i)
        if rd.destination is None:
            f.error(at(p, "destination"), "destination is required")
        check_destination(rd.destination, at(p, "destination"), f)
        headers = getattr(rd, "headers", None)
        if headers is not None:
            check_header_operations(headers, at(p, "headers"), f)
        weight = rd.weight or 0
        if weight < 0:
            f.error(at(p, "weight"), f"weight must be non-negative (got {weight})")
        total += weight
    if len(routes) > 1 and total == 0:
        f.error(path, "total destination weight = 0: give at least one destination a positive weight")


def check_gateway_names(names: Any, path: str, f: Findings) -> None:
    """Istio's validateGatewayNames: `mesh`, `name`, `ns/name`; legacy `name.ns` warns."""
    for i, name in enumerate(names):
        p = at(path, i)
        ns, sep, gw = name.partition("/")
        if not sep:
            if "." in name:
                parts = name.split(".")
                f.warn(p, f"using legacy gatewayName format {name!r}; prefer the <namespace>/<name> "
                          f"format: '{parts[1]}/{parts[0]}'")
            c.check_fqdn(name, p, f)
            continue
        if not ns or not gw:
            f.error(p, f"config namespace and gateway name cannot be empty (got {name!r})")
            continue
        if not c.is_dns1123_label(ns):
            f.error(p, f"invalid value for namespace: {ns!r}")
        if not c.is_dns1123_label(gw):
            f.error(p, f"invalid value for gateway name: {gw!r}")


# ---------------------------------------------------------------- headers

def check_header_operations(headers: Any, path: str, f: Findings) -> None:
    """Request/response add, set, remove: names Envoy lets a route change, well-formed values."""
    for side in ("request", "response"):
        ops = getattr(headers, side)
        if ops is None:
            continue
        sp = at(path, side)
        for verb in ("add", "set"):
            for name, value in getattr(ops, verb).items():
                p = c.key(at(sp, verb), name)
                c.check_header_operation_name(name, p, f, allow_authority=side == "request")
                c.check_header_value(value, p, f)
        for i, name in enumerate(ops.remove):
            c.check_header_operation_name(name, at(at(sp, "remove"), i), f)


def _check_authority_rewrite(route: Any, path: str, f: Findings) -> None:
    """The authority may be rewritten in one place only (rewrite.authority or a request header)."""
    current = route.rewrite.authority if route.rewrite else None
    request = route.headers.request if route.headers else None
    if request is None:
        return
    for verb in ("set", "add"):
        for name, value in getattr(request, verb).items():
            if name.lower() not in (":authority", "host"):
                continue
            if current:
                f.error(c.key(at(at(at(path, "headers"), "request"), verb), name),
                        f"authority header cannot be set multiple times: have {current!r}, attempting to set {value!r}")
                return
            current = value


# ---------------------------------------------------------------- match

def check_http_match(match: Any, path: str, f: Findings) -> None:
    for field, headers in (("headers", match.headers), ("withoutHeaders", match.without_headers)):
        for name, sm in headers.items():
            p = c.key(at(path, field), name)
            c.check_match_header_name(name, p, f)
            if field == "headers" or (sm is not None and sm.regex != "*"):  # withoutHeaders `*` = absent
                c.check_string_match(sm, p, f)
    c.check_string_match(match.uri, at(path, "uri"), f, allow_empty_prefix=True)
    for field in ("scheme", "method", "authority"):
        c.check_string_match(getattr(match, field), at(path, field), f)
    for name, sm in match.query_params.items():
        c.check_string_match(sm, c.key(at(path, "queryParams"), name), f)
    if match.port:
        c.check_port(match.port, at(path, "port"), f)
    c.check_labels(match.source_labels, at(path, "sourceLabels"), f)
    check_gateway_names(match.gateways, at(path, "gateways"), f)
    if match.source_namespace:
        c.check_dns1123_label(match.source_namespace, at(path, "sourceNamespace"), f, "sourceNamespace")


# ---------------------------------------------------------------- route

def check_http_route(route: Any, path: str, f: Findings, *, delegate: bool) -> None:
    """Istio's validateHTTPRoute for one entry of `spec.http` (`delegate`: the VS has no hosts)."""
    _check_route_conflicts(route, path, f, delegate=delegate)
    for j, match in enumerate(route.match):
        check_http_match(match, at(at(path, "match"), j), f)
    if route.headers is not None:
        check_header_operations(route.headers, at(path, "headers"), f)
    _check_cors(route.cors_policy, at(path, "corsPolicy"), f)
    _check_fault(route.fault, at(path, "fault"), f)
    _check_mirrors(route, path, f)
    _check_redirect(route.redirect, at(path, "redirect"), f)
    _check_direct_response(route.direct_response, at(path, "directResponse"), f)
    _check_retries(route.retries, at(path, "retries"), f)
    _check_rewrite(route.rewrite, at(path, "rewrite"), f)
    _check_authority_rewrite(route, path, f)
    check_route_destinations(route.route, at(path, "route"), f)
    c.check_duration(route.timeout, at(path, "timeout"), f)


def _check_route_conflicts(route: Any, path: str, f: Findings, *, delegate: bool) -> None:
    name = f" {route.name}" if route.name else ""
    if route.delegate is not None and not delegate:  # a root route only delegates
        if route.redirect is not None:
            f.error(at(path, "redirect"), f"root HTTP route{name} must not specify redirect (it has a delegate)")
        if route.route:
            f.error(at(path, "route"), f"root HTTP route{name} must not specify route (it has a delegate)")
        return
    if delegate and route.delegate is not None:
        f.error(at(path, "delegate"), "delegate HTTP route cannot contain delegate")
    for action, action_json in (("redirect", "redirect"), ("direct_response", "directResponse")):
        if getattr(route, action) is None:
            continue
        if route.route:
            f.error(at(path, "route"), f"HTTP route cannot contain both route and {action_json}")
        if route.fault is not None:
            f.error(at(path, "fault"), f"HTTP route cannot contain both fault and {action_json}")
        if route.rewrite is not None:
            f.error(at(path, "rewrite"), f"HTTP route rule cannot contain both rewrite and {action_json}")
    if route.redirect is not None and route.direct_response is not None:
        f.error(at(path, "directResponse"), "HTTP route rule cannot contain both redirect and directResponse")
    if route.redirect is None and route.direct_response is None and not route.route:
        f.error(path, "HTTP route, redirect or directResponse is required")
    if route.mirror is not None and route.mirrors:
        f.error(at(path, "mirrors"), "HTTP route cannot contain both mirror and mirrors; use mirrors")


def _check_cors(cors: Any, path: str, f: Findings) -> None:
    if cors is None:
        return
    for i, origin in enumerate(cors.allow_origins):
        p = at(at(path, "allowOrigins"), i)
        if not (origin.exact or origin.prefix or origin.regex):
            f.error(p, "'' is not a valid match type for CORS allow origins: set a non-empty exact, prefix or regex")
        elif origin.regex:
            c.check_regex(origin.regex, at(p, "regex"), f)
    if cors.allow_origin:
        f.warn(at(path, "allowOrigin"), "allowOrigin is deprecated; use allowOrigins with exact/prefix/regex matches")
    for i, method in enumerate(cors.allow_methods):
        if method not in CORS_METHODS:
            f.error(at(at(path, "allowMethods"), i), f"{method!r} is not a supported HTTP method")
    for field, names in (("allowHeaders", cors.allow_headers), ("exposeHeaders", cors.expose_headers)):
        for i, name in enumerate(names):
            c.check_cors_header_name(name, at(at(path, field), i), f)
    seconds = c.check_duration(cors.max_age, at(path, "maxAge"), f)
    if seconds is not None and seconds != int(seconds):
        f.error(at(path, "maxAge"), f"max_age duration is accurate only to seconds precision (got {cors.max_age})")


def _check_fault(fault: Any, path: str, f: Findings) -> None:
    if fault is None:
        return
    if fault.abort is None and fault.delay is None:
        f.error(path, "HTTP fault injection must have an abort and/or a delay")
    abort, delay = fault.abort, fault.delay
    if abort is not None:
        ap = at(path, "abort")
        if abort.percentage is not None:
            c.check_fractional_percent(abort.percentage.value or 0, at(at(ap, "percentage"), "value"), f)
        if abort.grpc_status is not None:
            if abort.grpc_status not in GRPC_STATUSES:
                f.error(at(ap, "grpcStatus"), f"gRPC status {abort.grpc_status!r} is not supported; use a name "
                                              "such as 'NOT_FOUND' or 'UNAVAILABLE'")
        elif abort.http2_error is not None:
            f.error(at(ap, "http2Error"), "HTTP/2 abort fault injection not supported yet; use httpStatus")
        elif abort.http_status is not None:
            c.check_http_status(abort.http_status, at(ap, "httpStatus"), f)
        else:
            f.warn(ap, "abort configured, but error type not set: add httpStatus or grpcStatus")
    if delay is not None:
        dp = at(path, "delay")
        if delay.percentage is not None:
            c.check_fractional_percent(delay.percentage.value or 0, at(at(dp, "percentage"), "value"), f)
        if delay.percent is not None:
            c.check_percentage(delay.percent, at(dp, "percent"), f)
            f.warn(at(dp, "percent"), "percent is deprecated; use percentage.value")
        if delay.exponential_delay is not None:
            c.check_duration(delay.exponential_delay, at(dp, "exponentialDelay"), f)
            f.error(at(dp, "exponentialDelay"), "exponentialDelay not supported yet; use fixedDelay")
        elif delay.fixed_delay is None:
            f.error(at(dp, "fixedDelay"), "required: a delay needs fixedDelay, e.g. '5s'")
        else:
            c.check_duration(delay.fixed_delay, at(dp, "fixedDelay"), f)


def _check_mirrors(route: Any, path: str, f: Findings) -> None:
    for field, value in (("mirrorPercent", route.mirror_percent), ("mirror_percent", route.mirror_percent_alias)):
        if value is not None:
            if value > 100:
                f.error(at(path, field), f"mirror percent must have a max value of 100 (got {value})")
            f.warn(at(path, field), f'using deprecated setting "{field}", use "mirrorPercentage" instead')
    if route.mirror_percentage is not None:
        c.check_percentage(route.mirror_percentage.value or 0, at(at(path, "mirrorPercentage"), "value"), f)
    check_destination(route.mirror, at(path, "mirror"), f)
    for i, mirror in enumerate(route.mirrors):
        mp = at(at(path, "mirrors"), i)
        if mirror.destination is None:
            f.error(at(mp, "destination"), "destination is required for mirrors")
            continue
        check_destination(mirror.destination, at(mp, "destination"), f)
        if mirror.percentage is not None:
            c.check_percentage(mirror.percentage.value or 0, at(at(mp, "percentage"), "value"), f)


def _check_redirect(redirect: Any, path: str, f: Findings) -> None:
    if redirect is None:
        return
    if not (redirect.uri or redirect.authority or redirect.scheme or redirect.prefix_rewrite
            or redirect.port is not None or redirect.derive_port is not None):
        f.error(path, "redirect must specify uri, authority, scheme, or port")
    c.check_redirect_code(redirect.redirect_code, at(path, "redirectCode"), f)
    if redirect.scheme and redirect.scheme not in ("http", "https"):
        f.error(at(path, "scheme"), f'invalid redirect scheme {redirect.scheme!r}, must be "http" or "https"')
    if redirect.port:
        c.check_port(redirect.port, at(path, "port"), f)


def _body_size(body: Any) -> int:
    if body.string is not None:
        return len(body.string.encode())
    if body.bytes is not None:
        try:
            return len(base64.b64decode(body.bytes, validate=True))
        except (binascii.Error, ValueError):
            return len(body.bytes) * 3 // 4
    return 0


def _check_direct_response(dr: Any, path: str, f: Findings) -> None:
    if dr is None:
        return
    c.check_http_status(dr.status or 0, at(path, "status"), f)
    if dr.body is None:
        return
    size = _body_size(dr.body)
    if size > MB:
        f.error(at(path, "body"), f"large direct_responses may impact control plane performance, "
                                  f"must be less than 1MB (got {size} bytes)")
    elif size > 100 * KB:
        f.warn(at(path, "body"), f"large direct_responses may impact control plane performance ({size} bytes)")


def _check_retries(retries: Any, path: str, f: Findings) -> None:
    if retries is None:
        return
    attempts = retries.attempts or 0
    if attempts < 0:
        f.error(at(path, "attempts"), f"attempts cannot be negative (got {attempts})")
    if attempts == 0 and (retries.per_try_timeout is not None or retries.retry_on
                          or retries.retry_remote_localities is not None):
        f.error(at(path, "attempts"), "http retry policy configured when attempts are set to 0 (disabled); "
                                      "set attempts > 0 or remove the retry settings")
    c.check_duration(retries.per_try_timeout, at(path, "perTryTimeout"), f)
    c.check_duration(retries.backoff, at(path, "backoff"), f)
    if retries.retry_on:
        for policy in retries.retry_on.split(","):
            if policy not in RETRY_ON_POLICIES and not c.is_http_status_code(policy):
                f.error(at(path, "retryOn"), f"{policy!r} is not a valid retryOn policy: use Envoy retry "
                                             "conditions (e.g. 5xx, connect-failure) or HTTP status codes")


def _check_rewrite(rewrite: Any, path: str, f: Findings) -> None:
    if rewrite is None:
        return
    regex_rw = rewrite.uri_regex_rewrite
    if rewrite.uri and regex_rw is not None:
        f.error(path, "rewrite may only contain one of uri or uriRegexRewrite")
    if not rewrite.uri and regex_rw is None and not rewrite.authority:
        f.error(path, "rewrite must specify at least one of uri, uriRegexRewrite, or authority")
    if regex_rw is not None:
        rp = at(path, "uriRegexRewrite")
        if not regex_rw.match or not regex_rw.rewrite:
            f.error(rp, "uriRegexRewrite requires both rewrite and match fields to be specified")
        if regex_rw.match:
            c.check_regex(regex_rw.match, at(rp, "match"), f)


__all__ = ["check_destination", "check_gateway_names", "check_header_operations", "check_http_match",
           "check_http_route", "check_route_destinations"]
