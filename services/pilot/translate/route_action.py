"""One VirtualService HTTPRoute (+ one of its matches) → one Envoy Route, as Istio.

`translate_route(ctx, http, match)` returns None when the match does not apply to
this sidecar (gateways / sourceLabels / sourceNamespace / port). The action is a
redirect, a direct response, or a RouteAction to one cluster or weighted clusters
with rewrite, header operations, timeout, retries, mirrors and consistent-hash keys;
fault and CORS go in typed_per_filter_config. With an effective fault, the route
carries no retry policy and no timeout (Istio: "timeouts or retries will not be
enabled when faults are enabled").
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from google.protobuf import struct_pb2, wrappers_pb2
from google.protobuf.duration_pb2 import Duration

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import regex_pb2

from isthmus.pilot.model.proxy import Proxy
from isthmus.pilot.model.push_context import Config, PushContext
from isthmus.pilot.translate.naming import ClusterName
from isthmus.pilot.translate.policy import hash_policy_for_destination
from isthmus.pilot.translate.route_match import (
    MESH_GATEWAY, applies_to_gateway, applies_to_sidecar, path_description, route_match,
)
from isthmus.pilot.translate.route_policy import (
    CORS_FILTER,
    FAULT_FILTER,
    cors_config,
    duration,
    fault_config,
    mirror_fraction,
    pack,
    retry_policy,
)
from isthmus.shared.config.types import (
    Destination,
    Headers,
    HTTPDirectResponse,
    HTTPMatchRequest,
    HTTPRedirect,
    HTTPRetry,
    HTTPRoute,
    HTTPRouteDestination,
)

NO_TIMEOUT = Duration(seconds=0)
REDIRECT_CODES = {
    None: rc.RedirectAction.MOVED_PERMANENTLY,
    0: rc.RedirectAction.MOVED_PERMANENTLY,
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}


@dataclass(frozen=True)
class RouteContext:
    """What every route of one virtual host is built against."""

    proxy: Proxy
    push: PushContext
    port: int  # the service port the virtual host serves (a gateway: the Gateway server's port)
    default_retry: HTTPRetry | None  # the mesh default (None: Istio's built-in default)
    gateway: str = MESH_GATEWAY  # "mesh" for sidecars, else the Gateway ("ns/name") the routes serve
    tls: bool = False  # the gateway server terminates TLS (a redirect's default scheme is https)


# ---------------------------------------------------------------- destinations and hashing

def destination_key(ctx: RouteContext, dest: Destination, namespace: str) -> ClusterName:
    """outbound|PORT|SUBSET|HOST: the destination's port, else the service's only port, else the vhost
    port; a short host is resolved in the VirtualService's namespace."""
    host = ctx.push.resolve(dest.host or "", namespace)
    if dest.port is not None and dest.port.number:
        port = dest.port.number
    else:
        svc = ctx.push.service(host)
        port = svc.ports[0].port if svc is not None and len(svc.ports) == 1 else ctx.port
    return ClusterName("outbound", port, dest.subset or "", host)


def destination_cluster(ctx: RouteContext, dest: Destination, namespace: str) -> str:
    return str(destination_key(ctx, dest, namespace))


def cluster_hash_policy(ctx: RouteContext, key: ClusterName) -> list[rc.RouteAction.HashPolicy]:
    """The hash keys of the DestinationRule policy the cluster itself is built from (subset over
    port-level over top-level, translate/policy.py), so route keys and the cluster's ring agree."""
    return hash_policy_for_destination(ctx.push, ctx.proxy.namespace, key.host, key.port, key.subset)


# ---------------------------------------------------------------- header operations

@dataclass
class HeaderOps:
    request_add: list[base_pb2.HeaderValueOption]
    response_add: list[base_pb2.HeaderValueOption]
    request_remove: list[str]
    response_remove: list[str]
    authority: str


def _internal(name: str) -> bool:
    return name.startswith(":") or name.lower() == "host"


def _header_options(values, append: bool) -> tuple[list[base_pb2.HeaderValueOption], str]:
    action = (base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD if append
              else base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD)
    authority, out = "", []
    for key in sorted(values):
        if key.lower() in (":authority", "host"):
            authority = values[key]
        if _internal(key):
            continue
        out.append(base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=key, value=values[key]), append_action=action))
    return out, authority


def header_ops(headers: Headers | None) -> HeaderOps:
    """Istio's TranslateHeadersOperations: set overwrites, add appends; `:authority`/`host` → host rewrite."""
    req, resp = (headers.request, headers.response) if headers is not None else (None, None)
    req_set, set_auth = _header_options(req.set if req else {}, append=False)
    req_add, add_auth = _header_options(req.add if req else {}, append=True)
    resp_set, _ = _header_options(resp.set if resp else {}, append=False)
    resp_add, _ = _header_options(resp.add if resp else {}, append=True)
    return HeaderOps(
        request_add=req_set + req_add,
        response_add=resp_set + resp_add,
        request_remove=[h for h in (req.remove if req else ()) if not _internal(h)],
        response_remove=[h for h in (resp.remove if resp else ()) if not _internal(h)],
        authority=set_auth or add_auth,
    )


# ---------------------------------------------------------------- actions

def apply_redirect(out: rc.Route, redirect: HTTPRedirect, port: int, tls: bool = False) -> bool:
    """Istio's ApplyRedirect; False (route dropped) for an unsupported redirect code."""
    code = REDIRECT_CODES.get(redirect.redirect_code)
    if code is None:
        return False
    action = rc.RedirectAction(host_redirect=redirect.authority or "", response_code=code)
    if redirect.uri:
        action.path_redirect = redirect.uri
    elif redirect.prefix_rewrite:
        action.prefix_rewrite = redirect.prefix_rewrite
    if redirect.scheme:
        action.scheme_redirect = redirect.scheme
    if redirect.port is not None or redirect.derive_port is not None:
        if redirect.port is not None:
            action.port_redirect = redirect.port
        elif redirect.derive_port == "FROM_REQUEST_PORT":
            action.port_redirect = port  # routes are built per port, so the request port is known
        scheme = redirect.scheme or ("https" if tls else "http")  # only gateways terminate TLS
        if (action.port_redirect, scheme) in ((80, "http"), (443, "https")):
            action.port_redirect = 0
    out.redirect.CopyFrom(action)
    return True


def apply_direct_response(out: rc.Route, dr: HTTPDirectResponse) -> None:
    out.direct_response.status = dr.status or 200
    body = dr.body
    if body is None:
        return
    if body.string is not None:
        out.direct_response.body.inline_string = body.string
    elif body.bytes is not None:
        try:
            out.direct_response.body.inline_bytes = base64.b64decode(body.bytes, validate=True)
        except (binascii.Error, ValueError):
            out.direct_response.body.inline_bytes = body.bytes.encode()


def set_timeout(action: rc.RouteAction, timeout: Duration | None) -> None:
    """Istio's setTimeout: unset → 0 (disabled). A gRPC client's grpc-timeout header is honoured,
    capped at the route timeout (max_stream_duration, the replacement of deprecated max_grpc_timeout)."""
    t = timeout if timeout is not None else NO_TIMEOUT
    action.timeout.CopyFrom(t)
    action.max_stream_duration.grpc_timeout_header_max.CopyFrom(t)


def _mirror(ctx: RouteContext, dest: Destination, fraction, namespace: str) -> rc.RouteAction.RequestMirrorPolicy:
    return rc.RouteAction.RequestMirrorPolicy(
        cluster=destination_cluster(ctx, dest, namespace),
        runtime_fraction=fraction,
        trace_sampled=wrappers_pb2.BoolValue(value=False),
    )


def apply_route_action(ctx: RouteContext, out: rc.Route, http: HTTPRoute, vs: Config, authority: str) -> None:
    ns = vs.namespace
    action = out.route
    set_timeout(action, duration(http.timeout))
    if http.rewrite is not None:
        rw = http.rewrite
        if rw.uri_regex_rewrite is not None and rw.uri_regex_rewrite.match is not None:
            action.regex_rewrite.pattern.CopyFrom(regex_pb2.RegexMatcher(regex=rw.uri_regex_rewrite.match))
            action.regex_rewrite.substitution = rw.uri_regex_rewrite.rewrite or ""
        elif rw.uri:
            # Envoy swaps the matched prefix, or the whole path for exact and regex matches.
            action.prefix_rewrite = rw.uri
        if rw.authority:
            authority = rw.authority
    if authority:
        action.host_rewrite_literal = authority
    if http.mirror is not None:
        legacy = http.mirror_percent if http.mirror_percent is not None else http.mirror_percent_alias
        fraction = mirror_fraction(http.mirror_percentage, legacy)
        if fraction is not None:
            action.request_mirror_policies.append(_mirror(ctx, http.mirror, fraction, ns))
    for mp in http.mirrors:
        fraction = mirror_fraction(mp.percentage, None)
        if fraction is not None and mp.destination is not None:
            action.request_mirror_policies.append(_mirror(ctx, mp.destination, fraction, ns))
    consistent = False
    if len(http.route) == 1:
        consistent = _single_destination(ctx, out, action, http.route[0], ns)
    else:
        _weighted_destinations(ctx, action, http.route, ns)
    policy = retry_policy(http.retries if http.retries is not None else ctx.default_retry, consistent)
    if policy is not None:
        action.retry_policy.CopyFrom(policy)


def _single_destination(ctx: RouteContext, out: rc.Route, action: rc.RouteAction, rd: HTTPRouteDestination, ns: str) -> bool:
    key = destination_key(ctx, rd.destination or Destination(), ns)
    action.cluster = str(key)
    if rd.headers is not None:
        ops = header_ops(rd.headers)
        out.request_headers_to_add.extend(ops.request_add)
        out.request_headers_to_remove.extend(ops.request_remove)
        out.response_headers_to_add.extend(ops.response_add)
        out.response_headers_to_remove.extend(ops.response_remove)
        if ops.authority and not action.host_rewrite_literal:
            action.host_rewrite_literal = ops.authority
    hashes = cluster_hash_policy(ctx, key)
    action.hash_policy.extend(hashes)
    return bool(hashes)


def _weighted_destinations(ctx: RouteContext, action: rc.RouteAction, routes, ns: str) -> None:
    weighted = [rd for rd in routes if rd.weight]  # Istio drops 0-weight destinations
    if not weighted:
        weighted = list(routes)  # no weights at all: split evenly rather than emit an empty set
    for rd in weighted:
        key = destination_key(ctx, rd.destination or Destination(), ns)
        cw = action.weighted_clusters.clusters.add(name=str(key), weight=wrappers_pb2.UInt32Value(value=rd.weight or 1))
        if rd.headers is not None:
            ops = header_ops(rd.headers)
            cw.request_headers_to_add.extend(ops.request_add)
            cw.request_headers_to_remove.extend(ops.request_remove)
            cw.response_headers_to_add.extend(ops.response_add)
            cw.response_headers_to_remove.extend(ops.response_remove)
            if ops.authority:
                cw.host_rewrite_literal = ops.authority
        action.hash_policy.extend(cluster_hash_policy(ctx, key))


# ---------------------------------------------------------------- the route

def operation(route: rc.Route, vs_name: str, port: int) -> str:
    """Istio's GetRouteOperation: `HOST:PORT/path*` for one cluster, else `VSNAME:PORT/path*`."""
    path = path_description(route.match)
    cluster = ClusterName.parse(route.route.cluster) if route.HasField("route") and route.route.cluster else None
    if cluster is not None:
        return f"{cluster.host}:{cluster.port}{path}"
    return f"{vs_name}:{port}{path}"


def config_metadata(vs: Config) -> base_pb2.Metadata:
    meta = base_pb2.Metadata()
    s = struct_pb2.Struct()
    s.update({"config": f"/apis/networking.istio.io/v1/namespaces/{vs.namespace}/virtual-service/{vs.name}"})
    meta.filter_metadata["istio"].CopyFrom(s)
    return meta


def translate_route(ctx: RouteContext, vs: Config, http: HTTPRoute, match: HTTPMatchRequest | None) -> rc.Route | None:
    if ctx.gateway == MESH_GATEWAY:
        if not applies_to_sidecar(match, ctx.proxy, ctx.port):
            return None
    elif not applies_to_gateway(match, ctx.proxy, ctx.port, ctx.gateway, vs.namespace):
        return None
    name = http.name or ""
    if match is not None and match.name:
        name = f"{name}.{match.name}"
    out = rc.Route(name=name, match=route_match(match), metadata=config_metadata(vs))
    if match is not None and match.stat_prefix:
        out.stat_prefix = match.stat_prefix
    ops = header_ops(http.headers)
    out.request_headers_to_add.extend(ops.request_add)
    out.response_headers_to_add.extend(ops.response_add)
    out.request_headers_to_remove.extend(ops.request_remove)
    out.response_headers_to_remove.extend(ops.response_remove)
    if http.redirect is not None:
        if not apply_redirect(out, http.redirect, ctx.port, ctx.tls):
            return None
    elif http.direct_response is not None:
        apply_direct_response(out, http.direct_response)
    elif http.route:
        apply_route_action(ctx, out, http, vs, ops.authority)
    else:
        return None  # delegate-only routes apply to gateways, not sidecars
    out.decorator.operation = operation(out, vs.name, ctx.port)
    fault = fault_config(http.fault)
    if fault is not None:
        out.typed_per_filter_config[FAULT_FILTER].CopyFrom(pack(fault))
        if out.HasField("route"):
            out.route.ClearField("retry_policy")
            set_timeout(out.route, None)
    if http.cors_policy is not None:
        out.typed_per_filter_config[CORS_FILTER].CopyFrom(pack(cors_config(http.cors_policy)))
    return out
