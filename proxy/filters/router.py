"""envoy.filters.http.router: the terminal filter. Dispatches the matched route's action.

- redirect → the status with Envoy's Location (scheme/host/port/path rules of
  RouteEntryImplBase::newUri, x-forwarded-proto as the request's scheme);
- direct_response → status and body (text/plain), Location on 201/3xx;
- route → pick the cluster (cluster, cluster_header, weighted pick), then forward
  (filters/forward.py: upstream request preparation, attempts, retries, timeouts,
  mirrors). A cluster missing from the snapshot answers
  cluster_not_found_response_code with flag NC.
"""
from __future__ import annotations

import random

from isthmus.proxy.config.route_action import DirectResponseConfig, RedirectConfig, RouteActionConfig
from isthmus.proxy.filters import headers as hdr
from isthmus.proxy.filters.forward import Forward
from isthmus.proxy.filters.local_reply import NC

_rand = random.getrandbits


def _host_and_port(host: str) -> int:
    """Index where `:port` starts in host (Envoy's rules, IPv6 aware), -1 if none."""
    if host.startswith("["):
        end = host.rfind("]:")
        return end + 1 if end >= 0 else -1
    return host.rfind(":")


def redirect_location(stream, r: RedirectConfig | None) -> str:
    """Envoy's newUri: where a redirect (or a 201/3xx direct response) points."""
    xfp = hdr.get(stream.headers, b"x-forwarded-proto")
    request_scheme = xfp.decode("latin-1") if xfp else ("https" if stream.conn.info.tls else "http")
    scheme = (r.scheme if r is not None and r.scheme else "") or request_scheme
    port = f":{r.port}" if r is not None and r.port else ""
    if r is not None and r.host:
        host = r.host
    else:
        host = stream.head.authority.decode("latin-1")
        at = _host_and_port(host)
        if at >= 0:
            remove = bool(port)
            request_port = host[at:]
            if scheme != request_scheme:
                remove |= request_scheme == "https" and request_port == ":443"
                remove |= request_scheme == "http" and request_port == ":80"
            if remove:
                host = host[:at]
    path, query = stream.path, stream.query
    if r is not None:
        if r.path is not None:
            if "?" in r.path:
                return f"{scheme}://{host}{port}{r.path}"
            path = r.path
        elif r.prefix_rewrite is not None:
            m = stream.route.match
            if m.kind in ("prefix", "path_separated_prefix"):
                path = r.prefix_rewrite + path[len(m.value):]
            else:
                path = r.prefix_rewrite
        elif r.regex_rewrite is not None:
            path = r.regex_rewrite.apply(path)
        if r.strip_query:
            query = ""
    return f"{scheme}://{host}{port}{path}{'?' + query if query else ''}"


class Router:
    __slots__ = ("config", "hcm", "suppress_envoy_headers")

    def __init__(self, config, hcm) -> None:
        self.config = config
        self.hcm = hcm
        self.suppress_envoy_headers = config.suppress_envoy_headers

    def route(self, stream) -> None:
        action = stream.route.action
        cls = action.__class__
        if cls is RouteActionConfig:
            name = stream.cluster_name or action.cluster or self.target_cluster(stream)
            cluster = self.hcm.clusters.get(name) if name else None
            stream.cluster_name = name
            if cluster is None:
                stream.local_reply(action.cluster_not_found_response_code, b"", NC, "cluster_not_found")
                return
            stream.forward = fwd = Forward(stream, action, cluster, self)
            fwd.begin()
        elif cls is RedirectConfig:
            self.hcm.stats.rq_redirect.value += 1
            stream.local_reply(action.response_code, b"", 0, "direct_response",
                               [(b"location", redirect_location(stream, action).encode("latin-1"))])
        else:
            d: DirectResponseConfig = action  # type: ignore[assignment]
            self.hcm.stats.rq_direct_response.value += 1
            extra = None
            if d.status == 201 or 300 <= d.status < 400:
                extra = [(b"location", redirect_location(stream, None).encode("latin-1"))]
            stream.local_reply(d.status, d.body or b"", 0, "direct_response", extra)

    def target_cluster(self, stream) -> str:
        """The cluster this request goes to (weighted: picked once per request)."""
        if stream.cluster_name:
            return stream.cluster_name
        action = stream.route.action
        if action.__class__ is not RouteActionConfig:
            return ""
        if action.cluster:
            name = action.cluster
        elif action.weighted_clusters is not None:
            w = action.weighted_clusters.pick(_rand(32))
            stream.weighted = w
            name = w.name
            stream.has_filter_overrides = stream.has_filter_overrides or bool(w.per_filter_config)
        else:
            name = stream.header_str(action.cluster_header) or ""
        stream.cluster_name = name
        return name
