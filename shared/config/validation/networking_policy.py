"""DestinationRule semantic checks and the traffic-policy pieces Sidecar reuses.

Follows Istio's ValidateDestinationRule / validateTrafficPolicy: `validate_destination_rule`
records findings; `check_connection_pool` is shared with Sidecar's inbound pools.
"""
from __future__ import annotations

import math
from typing import Any

from isthmus.shared.config.validation import common as c
from isthmus.shared.config.validation.report import Findings, at

MAGLEV_MAX_TABLE = 5000011
CONFIGMAP_PREFIX = "configmap://"
TOPOLOGY_LABELS = frozenset({"topology.kubernetes.io/region", "topology.kubernetes.io/zone",
                             "topology.istio.io/subzone"})


def validate_destination_rule(spec: Any, obj: Any, f: Findings) -> None:
    c.check_wildcard_host(spec.host, "spec.host", f)
    check_traffic_policy(spec.traffic_policy, "spec.trafficPolicy", f, namespace=obj.namespace)
    names: set[str] = set()
    for i, subset in enumerate(spec.subsets):
        p = at("spec.subsets", i)
        if subset.name in names:
            f.error(at(p, "name"), f"duplicate subset names: {subset.name}")
        names.add(subset.name or "")
        if not subset.name:
            f.error(at(p, "name"), "subset name cannot be empty")
        else:
            c.check_dns1123_label(subset.name, at(p, "name"), f, "subset name")
        c.check_labels(subset.labels, at(p, "labels"), f)
        check_traffic_policy(subset.traffic_policy, at(p, "trafficPolicy"), f, namespace=obj.namespace)
    c.check_export_to(spec.export_to, obj.namespace, "spec.exportTo", f,
                      workload_selector=spec.workload_selector is not None)
    c.check_workload_selector(spec.workload_selector, "spec.workloadSelector", f, subject="workloads")


def check_traffic_policy(policy: Any, path: str, f: Findings, *, namespace: str = "") -> None:
    if policy is None:
        return
    if not any(policy.has(a) for a in ("outlier_detection", "connection_pool", "load_balancer", "tls",
                                         "port_level_settings", "tunnel", "proxy_protocol", "retry_budget")):
        f.error(path, "traffic policy must have at least one field")
        return
    if policy.tunnel is not None and policy.proxy_protocol is not None:
        f.error(path, "tunnel and proxyProtocol must not be set together")
    _check_port_policy_parts(policy, path, f, namespace)
    _check_tunnel(policy.tunnel, at(path, "tunnel"), f)
    seen: set[int] = set()
    for i, pls in enumerate(policy.port_level_settings):
        p = at(at(path, "portLevelSettings"), i)
        if pls.port is None:
            f.error(at(p, "port"), "portTrafficPolicy must have valid port")
        else:
            number = pls.port.number or 0
            c.check_port(number, at(at(p, "port"), "number"), f)
            if number in seen:
                f.error(at(at(p, "port"), "number"), f"duplicate port {number} in portLevelSettings")
            seen.add(number)
        if not any(pls.has(a) for a in ("outlier_detection", "connection_pool", "load_balancer", "tls")):
            f.error(p, "port traffic policy must have at least one field")
        else:
            _check_port_policy_parts(pls, p, f, namespace)


def _check_port_policy_parts(policy: Any, path: str, f: Findings, namespace: str) -> None:
    check_outlier_detection(policy.outlier_detection, at(path, "outlierDetection"), f)
    check_connection_pool(policy.connection_pool, at(path, "connectionPool"), f)
    _check_load_balancer(policy.load_balancer, policy.outlier_detection, at(path, "loadBalancer"), f)
    check_client_tls(policy.tls, at(path, "tls"), f, namespace=namespace)


def check_outlier_detection(od: Any, path: str, f: Findings) -> None:
    if od is None:
        return
    c.check_duration(od.base_ejection_time, at(path, "baseEjectionTime"), f)
    c.check_duration(od.interval, at(path, "interval"), f)
    if od.consecutive_errors:
        f.warn(at(path, "consecutiveErrors"), "outlier detection consecutive errors is deprecated, "
                                              "use consecutiveGatewayErrors or consecutive5xxErrors instead")
    if not od.split_external_local_origin_errors and (od.consecutive_local_origin_failures or 0) > 0:
        f.error(at(path, "consecutiveLocalOriginFailures"), "consecutiveLocalOriginFailures is set, but "
                "splitExternalLocalOriginErrors is false; set splitExternalLocalOriginErrors: true")
    c.check_percentage(od.max_ejection_percent, at(path, "maxEjectionPercent"), f)
    c.check_percentage(od.min_health_percent, at(path, "minHealthPercent"), f)
    for field in ("consecutive_errors", "consecutive5xx_errors", "consecutive_gateway_errors"):
        c.check_non_negative(getattr(od, field), at(path, _camel(field)), f)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(p.title() for p in rest)


def check_connection_pool(pool: Any, path: str, f: Findings) -> None:
    if pool is None:
        return
    if pool.http is None and pool.tcp is None:
        f.error(path, "connection pool must have at least one field (http or tcp)")
        return
    if (h := pool.http) is not None:
        hp = at(path, "http")
        for field in ("http1_max_pending_requests", "http2_max_requests", "max_requests_per_connection",
                      "max_retries", "max_concurrent_streams"):
            c.check_non_negative(getattr(h, field), at(hp, _camel(field)), f)
        c.check_duration(h.idle_timeout, at(hp, "idleTimeout"), f)
        if h.http2_keep_alive is not None:
            c.check_duration(h.http2_keep_alive.interval, at(at(hp, "http2KeepAlive"), "interval"), f)
            c.check_duration(h.http2_keep_alive.timeout, at(at(hp, "http2KeepAlive"), "timeout"), f)
        if h.h2_upgrade_policy == "UPGRADE" and h.use_client_protocol:
            f.error(at(hp, "useClientProtocol"), "useClientProtocol must not be true when h2UpgradePolicy is UPGRADE")
    if (t := pool.tcp) is not None:
        tp = at(path, "tcp")
        c.check_non_negative(t.max_connections, at(tp, "maxConnections"), f)
        c.check_duration(t.connect_timeout, at(tp, "connectTimeout"), f)
        c.check_duration(t.max_connection_duration, at(tp, "maxConnectionDuration"), f)
        if c.parse_duration(t.idle_timeout) != 0:  # 0s disables the idle timeout
            c.check_duration(t.idle_timeout, at(tp, "idleTimeout"), f)
        if t.tcp_keepalive is not None:
            c.check_duration(t.tcp_keepalive.time, at(at(tp, "tcpKeepalive"), "time"), f)
            c.check_duration(t.tcp_keepalive.interval, at(at(tp, "tcpKeepalive"), "interval"), f)


def _is_prime(n: int) -> bool:
    """Envoy's isPrime (common/utility.cc), so maglev table sizes agree with the proxy."""
    if 0 < n < 4:
        return True
    if n % 2 == 0:
        return False
    return all(n % k for k in range(3, math.isqrt(n) + 1, 2))


def _check_consistent_hash(ch: Any, path: str, f: Findings) -> None:
    if ch.http_cookie is not None:
        if not ch.http_cookie.name:
            f.error(at(at(path, "httpCookie"), "name"), "name required for httpCookie")
        c.check_duration(ch.http_cookie.ttl, at(at(path, "httpCookie"), "ttl"), f, minimum=None)
    if not any(ch.has(a) for a in ("http_header_name", "http_cookie", "use_source_ip", "http_query_parameter_name")):
        f.warn(path, "consistentHash has no hash key (httpHeaderName, httpCookie, useSourceIp or "
                     "httpQueryParameterName); requests will not be pinned")
    if ch.minimum_ring_size:
        f.warn(at(path, "minimumRingSize"), "consistent hash minimumRingSize is deprecated, use ringHash instead")
        if ch.maglev is not None or ch.ring_hash is not None:
            f.error(at(path, "minimumRingSize"), "only one of minimumRingSize or maglev/ringHash can be specified")
    if ch.maglev is not None:
        size, mp = ch.maglev.table_size or 0, at(at(path, "maglev"), "tableSize")
        if size == 0:
            f.error(mp, "tableSize must be set for maglev")
        elif size >= MAGLEV_MAX_TABLE:
            f.error(mp, f"tableSize must be less than {MAGLEV_MAX_TABLE} for maglev (got {size})")
        elif not _is_prime(size):
            f.error(mp, f"tableSize must be a prime number for maglev (got {size}), e.g. 65537")


def _check_load_balancer(lb: Any, outlier: Any, path: str, f: Findings) -> None:
    if lb is None:
        return
    if lb.consistent_hash is not None:
        _check_consistent_hash(lb.consistent_hash, at(path, "consistentHash"), f)
    if lb.locality_lb_setting is not None:
        check_locality_lb(lb.locality_lb_setting, outlier, at(path, "localityLbSetting"), f)
    if (w := lb.warmup) is not None:
        wp = at(path, "warmup")
        if w.duration is None:
            f.error(at(wp, "duration"), "duration is required for warmup")
        c.check_duration(w.duration, at(wp, "duration"), f)
        c.check_percentage(w.minimum_percent, at(wp, "minimumPercent"), f)
        if w.aggression is not None and w.aggression < 1:
            f.error(at(wp, "aggression"), f"aggression should be greater than or equal to 1 (got {w.aggression})")


def check_locality_lb(lb: Any, outlier: Any, path: str, f: Findings) -> None:
    """Istio's ValidateLocalityLbSetting: distribute weights, failover regions, locality syntax."""
    if lb.distribute and lb.failover:
        f.error(path, "can not simultaneously specify 'distribute' and 'failover'")
        return
    if lb.failover:
        for i, label in enumerate(lb.failover_priority):
            if label in TOPOLOGY_LABELS:
                f.error(at(at(path, "failoverPriority"), i),
                        f"can not simultaneously set 'failover' and topology label {label!r} in 'failoverPriority'")
                return
    for i, dist in enumerate(lb.distribute):
        dp = at(at(path, "distribute"), i)
        weights = list(dist.to.values())
        if any(w <= 0 or w > 100 for w in weights):
            f.error(at(dp, "to"), "locality weight must be in range [1, 100]")
            return
        if sum(weights) != 100:
            f.error(at(dp, "to"), f"total locality weight {sum(weights)} != 100")
            return
        _check_localities(list(dist.to), at(dp, "to"), f)
    _check_localities([d.from_ or "" for d in lb.distribute], at(path, "distribute"), f)
    if (lb.failover or lb.failover_priority) and outlier is None:
        f.warn(path, "outlier detection policy must be provided for failover")
    for i, fo in enumerate(lb.failover):
        fp = at(at(path, "failover"), i)
        src, dst = fo.from_ or "", fo.to or ""
        if src == dst:
            f.error(fp, "locality lb failover settings must specify different regions")
        if "/" in src or "/" in dst:
            f.error(fp, "locality lb failover only specify region")
        if "*" in src or "*" in dst:
            f.error(fp, "locality lb failover region should not contain '*' wildcard")


def _check_localities(localities: list[str], path: str, f: Findings) -> None:
    """region[/zone[/subzone]] with at most one trailing `*`, and no overlaps (Istio's validateLocalities)."""
    tree: dict[str, dict[str, set[str]]] = {}
    for loc in localities:
        if loc.count("*") > 1 or ("*" in loc and not loc.endswith("*")):
            f.error(path, f"locality {loc} wildcard '*' number can not exceed 1 and must be in the end")
            return
        parts = loc.split("/", 2)
        if any(p == "" for p in parts):
            f.error(path, f"locality {loc} must not contain empty region/zone/subzone info")
            return
        if "*" in tree or _overlaps(tree, parts):
            f.error(path, f"locality {loc} overlap with previous specified ones")
            return


def _overlaps(tree: dict[str, dict[str, set[str]]], parts: list[str]) -> bool:
    """Insert region/zone/subzone into `tree`; True when an earlier entry already covers it."""
    region = parts[0]
    if len(parts) == 1:
        if region in tree:
            return True
        tree[region] = {"*": {"*"}}
        return False
    zones = tree.setdefault(region, {})
    if "*" in zones:
        return True
    zone = parts[1]
    if len(parts) == 2:
        if zone in zones:
            return True
        zones[zone] = {"*"}
        return False
    subzones = zones.setdefault(zone, set())
    if "*" in subzones or parts[2] in subzones:
        return True
    subzones.add(parts[2])
    return False


def check_client_tls(tls: Any, path: str, f: Findings, *, namespace: str = "") -> None:
    """Istio's ValidateTLS for ClientTLSSettings (DestinationRule)."""
    if tls is None:
        return
    if (tls.credential_name or "").startswith(CONFIGMAP_PREFIX):
        _check_configmap_credential(tls.credential_name, namespace, at(path, "credentialName"), f)
    mode = tls.mode or "DISABLE"
    certs = {"clientCertificate": tls.client_certificate, "privateKey": tls.private_key,
             "caCertificates": tls.ca_certificates, "caCrl": tls.ca_crl}
    if tls.insecure_skip_verify:
        if mode == "SIMPLE" and (tls.ca_certificates or tls.credential_name or tls.subject_alt_names):
            f.error(path, "cannot specify caCertificates or credentialName or subjectAltNames when "
                          "insecureSkipVerify is set true")
        if mode == "MUTUAL" and (tls.ca_certificates or tls.subject_alt_names):
            f.error(path, "cannot specify caCertificates or subjectAltNames when insecureSkipVerify is set true")
    if mode in ("SIMPLE", "MUTUAL") and tls.credential_name:
        for field, value in certs.items():
            if value:
                f.error(at(path, field), "cannot specify client certificates or CA certificate or CA CRL "
                                         "if credentialName is set")
        return
    if mode == "MUTUAL":
        if not tls.client_certificate:
            f.error(at(path, "clientCertificate"), "client certificate required for mutual tls "
                                                   "(or set credentialName)")
        if not tls.private_key:
            f.error(at(path, "privateKey"), "private key required for mutual tls (or set credentialName)")
    if mode == "ISTIO_MUTUAL":
        for field, value in (*certs.items(), ("credentialName", tls.credential_name)):
            if value:
                f.warn(at(path, field), "ISTIO_MUTUAL uses the mesh's own certificates; this field is ignored")


def _check_configmap_credential(name: str, namespace: str, path: str, f: Findings) -> None:
    """`configmap://[ns/]name` may only name a ConfigMap in the rule's own namespace."""
    parts = name.removeprefix(CONFIGMAP_PREFIX).split("/")
    if len(parts) > 2 or not all(parts):
        f.error(path, f"invalid configmap:// credentialName {name!r}: use configmap://<name>")
    elif len(parts) == 2 and parts[0] != namespace:
        f.error(path, f"invalid configmap:// credentialName: namespace must match the configuration "
                      f"namespace {namespace!r}")


def _check_tunnel(tunnel: Any, path: str, f: Findings) -> None:
    if tunnel is None:
        return
    if tunnel.protocol and tunnel.protocol not in ("CONNECT", "POST"):
        f.error(at(path, "protocol"), f'tunnel protocol must be "CONNECT" or "POST" (got {tunnel.protocol!r})')
    if c.fqdn_error(tunnel.target_host) and not c.is_ip(tunnel.target_host):
        f.error(at(path, "targetHost"),
                f"tunnel target host must be valid FQDN or IP address (got {tunnel.target_host!r})")
    c.check_port(tunnel.target_port or 0, at(path, "targetPort"), f)


__all__ = ["validate_destination_rule", "check_traffic_policy", "check_connection_pool", "check_client_tls",
           "check_outlier_detection", "check_locality_lb"]
