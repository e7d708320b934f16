"""HTTPMatchRequest → Envoy RouteMatch, and which matches apply to a sidecar.

`route_match(match)` is Istio's TranslateRouteMatch: uri exact/prefix/regex (RE2),
case sensitivity, headers / withoutHeaders / queryParams (sorted by name), then the
pseudo-headers `:method`, `:authority`, `:scheme`. `applies_to_sidecar` is Istio's
sourceMatchHTTP + port check: gateways (`mesh`), sourceLabels, sourceNamespace, port;
`applies_to_gateway` is the same for a gateway proxy serving Gateway `ns/name`.
"""
from __future__ import annotations

from typing import Mapping

from google.protobuf import wrappers_pb2

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.type.matcher.v3 import regex_pb2, string_pb2

from isthmus.pilot.model.proxy import Proxy
from isthmus.pilot.model.push_context import resolve_gateway_name
from isthmus.shared.config.types import HTTPMatchRequest, StringMatch

MESH_GATEWAY = "mesh"
HEADER_METHOD = ":method"
HEADER_AUTHORITY = ":authority"
HEADER_SCHEME = ":scheme"


def is_presence_match(m: StringMatch | None) -> bool:
    """An empty StringMatch (or Istio's legacy regex `*`) means "the header is present"."""
    if m is None:
        return True
    if m.exact is None and m.prefix is None and m.regex is None:
        return True
    return m.exact is None and m.prefix is None and m.regex == "*"


def string_matcher(m: StringMatch) -> string_pb2.StringMatcher | None:
    """Istio's ConvertToEnvoyMatch: exact, prefix or RE2 safe_regex."""
    if m.exact is not None:
        return string_pb2.StringMatcher(exact=m.exact)
    if m.prefix is not None:
        return string_pb2.StringMatcher(prefix=m.prefix)
    if m.regex is not None:
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=m.regex))
    return None


def header_matcher(name: str, m: StringMatch | None) -> rc.HeaderMatcher:
    out = rc.HeaderMatcher(name=name)
    if is_presence_match(m):
        out.present_match = True
        return out
    sm = string_matcher(m)  # type: ignore[arg-type]
    if sm is not None:
        out.string_match.CopyFrom(sm)
    return out


def query_matcher(name: str, m: StringMatch | None) -> rc.QueryParameterMatcher:
    out = rc.QueryParameterMatcher(name=name)
    if is_presence_match(m):
        out.present_match = True
        return out
    sm = string_matcher(m)  # type: ignore[arg-type]
    if sm is not None:
        out.string_match.CopyFrom(sm)
    return out


def _sorted(m: Mapping[str, StringMatch]) -> list[tuple[str, StringMatch]]:
    return sorted(m.items(), key=lambda kv: kv[0])


def route_match(match: HTTPMatchRequest | None) -> rc.RouteMatch:
    """One Envoy RouteMatch for one HTTPMatchRequest (None: everything, prefix `/`)."""
    out = rc.RouteMatch(prefix="/")
    if match is None:
        return out
    headers: list[rc.HeaderMatcher] = []
    for name, sm in _sorted(match.headers):
        headers.append(header_matcher(name, sm))
    for name, sm in _sorted(match.without_headers):
        h = header_matcher(name, sm)
        h.invert_match = True
        if not is_presence_match(sm):
            h.treat_missing_header_as_empty = True  # absent counts as "not equal"
        headers.append(h)
    headers.sort(key=lambda h: h.name)
    uri = match.uri
    if uri is not None:
        if uri.exact is not None:
            out.path = uri.exact
        elif uri.prefix is not None:
            out.prefix = uri.prefix
        elif uri.regex is not None:
            out.safe_regex.CopyFrom(regex_pb2.RegexMatcher(regex=uri.regex))
    out.case_sensitive.CopyFrom(wrappers_pb2.BoolValue(value=not bool(match.ignore_uri_case)))
    for name, sm in ((HEADER_METHOD, match.method), (HEADER_AUTHORITY, match.authority), (HEADER_SCHEME, match.scheme)):
        if sm is not None:
            headers.append(header_matcher(name, sm))
    out.headers.extend(headers)
    out.query_parameters.extend(query_matcher(n, sm) for n, sm in _sorted(match.query_params))
    return out


def applies_to_sidecar(match: HTTPMatchRequest | None, proxy: Proxy, port: int) -> bool:
    """Does this match condition apply to `proxy` for traffic to service port `port`?

    Istio: a match naming gateways applies when one of them is `mesh` (labels are then
    not checked); otherwise sourceLabels must be a subset of the proxy's labels and
    sourceNamespace, if set, the proxy's namespace. A match port other than `port` drops it.
    """
    if match is None:
        return True
    if match.port is not None and match.port != 0 and match.port != port:
        return False
    if match.gateways:
        return MESH_GATEWAY in match.gateways
    if any(proxy.labels.get(k) != v for k, v in match.source_labels.items()):
        return False
    return not match.source_namespace or match.source_namespace == proxy.namespace


def applies_to_gateway(match: HTTPMatchRequest | None, proxy: Proxy, port: int, gateway: str, vs_namespace: str) -> bool:
    """Istio's sourceMatchHTTP for a gateway: a match naming gateways applies when one of them
    (resolved in the VirtualService's namespace) is `gateway`; otherwise sourceLabels and
    sourceNamespace are checked against the gateway proxy. A match port other than the
    Gateway server's `port` drops it."""
    if match is None:
        return True
    if match.port is not None and match.port != 0 and match.port != port:
        return False
    if match.gateways:
        return gateway in {resolve_gateway_name(g, vs_namespace) for g in match.gateways}
    if any(proxy.labels.get(k) != v for k, v in match.source_labels.items()):
        return False
    return not match.source_namespace or match.source_namespace == proxy.namespace


def is_catch_all(route: rc.Route) -> bool:
    """Istio's IsCatchAllRoute: prefix `/` (or regex `.*`) with no header or query conditions."""
    m = route.match
    which = m.WhichOneof("path_specifier")
    catch_all = (
        (which == "prefix" and m.prefix == "/")
        or (which == "path_separated_prefix" and m.path_separated_prefix == "/")
        or (which == "safe_regex" and m.safe_regex.regex == ".*")
    )
    return catch_all and not m.headers and not m.query_parameters and not m.dynamic_metadata


def path_description(match: rc.RouteMatch) -> str:
    """The path part of Istio's trace operation: `/prefix*`, `/exact`, or the regex."""
    which = match.WhichOneof("path_specifier")
    if which == "prefix":
        return match.prefix + "*"
    if which == "path":
        return match.path
    if which == "safe_regex":
        return match.safe_regex.regex
    return "/*"
