"""Per-request and per-connection telemetry: Istio's standard metrics and Envoy's counters.

Istio metrics (istio_requests_total, istio_request_duration_milliseconds,
istio_request_bytes, istio_response_bytes, istio_tcp_*) carry Istio's label names in
Istio's order. Label tuples are built from interned parts — who the source is, who
the destination is (`WorkloadLabels`, built once per peer), the service — and the
metric objects for a full label set are cached, so recording a request is one dict
lookup and a few attribute increments. Envoy-style counters per cluster, listener
and HCM (`ClusterStats`, `ListenerStats`, `HcmStats`) are plain `Counter`s held as
attributes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from isthmus.proxy.stats import SIZE_BUCKETS, Counter, Gauge, Histogram, Labels, Stats

UNKNOWN = "unknown"
SOURCE = "source"  # reporter of outbound requests
DESTINATION = "destination"  # reporter of inbound requests


@dataclass(frozen=True, slots=True)
class WorkloadLabels:
    """One side of a request: the workload_*, principal, app/version, canonical ones."""

    workload: str = UNKNOWN
    namespace: str = UNKNOWN
    principal: str = UNKNOWN
    app: str = UNKNOWN
    version: str = UNKNOWN
    canonical_service: str = UNKNOWN
    canonical_revision: str = UNKNOWN
    cluster: str = UNKNOWN

    def labels(self, side: str) -> Labels:
        return (
            (f"{side}_workload", self.workload), (f"{side}_canonical_service", self.canonical_service),
            (f"{side}_canonical_revision", self.canonical_revision), (f"{side}_workload_namespace", self.namespace),
            (f"{side}_principal", self.principal), (f"{side}_app", self.app), (f"{side}_version", self.version),
            (f"{side}_cluster", self.cluster),
        )

    def with_principal(self, principal: str) -> "WorkloadLabels":
        return WorkloadLabels(self.workload, self.namespace, principal or UNKNOWN, self.app, self.version,
                              self.canonical_service, self.canonical_revision, self.cluster)


UNKNOWN_WORKLOAD = WorkloadLabels()


def from_node(node, principal: str = UNKNOWN) -> WorkloadLabels:
    return WorkloadLabels(node.workload_name, node.namespace, principal or UNKNOWN, node.app or node.canonical_service or UNKNOWN,
                          node.version or UNKNOWN, node.canonical_service or UNKNOWN, node.canonical_revision or UNKNOWN,
                          node.cluster_id or UNKNOWN)


def from_workload_metadata(value: str, principal: str = UNKNOWN) -> WorkloadLabels:
    """EDS `istio.workload` metadata "name;namespace;canonical-name;revision;cluster"."""
    if not value:
        return UNKNOWN_WORKLOAD.with_principal(principal)
    parts = (value.split(";") + [""] * 5)[:5]
    name, ns, canonical, revision, cluster = (p or UNKNOWN for p in parts)
    return WorkloadLabels(name, ns, principal or UNKNOWN, canonical, revision, canonical, revision, cluster)


def from_peer_metadata(md: Mapping, principal: str = UNKNOWN) -> WorkloadLabels:
    """The map a peer sidecar sent in `x-envoy-peer-metadata` (see runtime/node.py)."""
    g = lambda k: str(md.get(k) or UNKNOWN)  # noqa: E731
    return WorkloadLabels(g("WORKLOAD_NAME"), g("NAMESPACE"), principal or UNKNOWN, g("APP"), g("VERSION"),
                          g("CANONICAL_SERVICE"), g("CANONICAL_REVISION"), g("CLUSTER_ID"))


def service_labels(host: str, name: str = "", namespace: str = "") -> Labels:
    return (("destination_service", host or UNKNOWN), ("destination_service_name", name or host or UNKNOWN),
            ("destination_service_namespace", namespace or UNKNOWN))


class LabelPart:
    """An interned label prefix; hashed by identity."""

    __slots__ = ("labels",)

    def __init__(self, labels: Labels) -> None:
        self.labels = labels


class HttpMetrics:
    __slots__ = ("requests", "duration", "request_bytes", "response_bytes")

    def __init__(self, stats: Stats, labels: Labels) -> None:
        self.requests = stats.counter("istio_requests_total", labels)
        self.duration = stats.histogram("istio_request_duration_milliseconds", labels)
        self.request_bytes = stats.histogram("istio_request_bytes", labels, SIZE_BUCKETS)
        self.response_bytes = stats.histogram("istio_response_bytes", labels, SIZE_BUCKETS)

    def record(self, duration_ms: float, request_bytes: int, response_bytes: int) -> None:
        self.requests.value += 1
        self.duration.observe(duration_ms)
        self.request_bytes.observe(request_bytes)
        self.response_bytes.observe(response_bytes)


class TcpMetrics:
    __slots__ = ("sent", "received", "opened", "closed")

    def __init__(self, stats: Stats, labels: Labels) -> None:
        self.sent = stats.counter("istio_tcp_sent_bytes_total", labels)
        self.received = stats.counter("istio_tcp_received_bytes_total", labels)
        self.opened = stats.counter("istio_tcp_connections_opened_total", labels)
        self.closed = stats.counter("istio_tcp_connections_closed_total", labels)


class IstioTelemetry:
    """The cache of metric objects by full label set; see the module docstring."""

    def __init__(self, stats: Stats, node) -> None:
        self.stats = stats
        self.node = node
        self.local = from_node(node)
        self._http: dict[tuple, HttpMetrics] = {}
        self._tcp: dict[tuple, TcpMetrics] = {}
        self._parts: dict[tuple, Labels] = {}

    def peer_part(self, reporter: str, source: WorkloadLabels, destination: WorkloadLabels, service: Labels) -> "LabelPart":
        """(reporter, source_*, destination_* incl. service), interned: the same object
        for the same peers, so per-request cache keys hash by identity."""
        key = (reporter, source, destination, service)
        part = self._parts.get(key)
        if part is None:
            d = destination.labels("destination")
            # Istio's order: destination_workload, _workload_namespace, _principal, _app, _version,
            # _service, _service_name, _service_namespace, _canonical_service, _canonical_revision, _cluster
            part = self._parts[key] = LabelPart((("reporter", reporter),) + source.labels("source") + (
                d[0], d[3], d[4], d[5], d[6]) + service + (d[1], d[2], d[7]))
        return part

    def http(self, part: "LabelPart", protocol: str, code: int, grpc: str, flags: str, security: str) -> HttpMetrics:
        key = (part, protocol, code, grpc, flags, security)
        m = self._http.get(key)
        if m is None:
            labels = part.labels + (("request_protocol", protocol), ("response_code", str(code)), ("grpc_response_status", grpc),
                                    ("response_flags", flags), ("connection_security_policy", security))
            m = self._http[key] = HttpMetrics(self.stats, labels)
        return m

    def tcp(self, part: "LabelPart", flags: str, security: str) -> TcpMetrics:
        key = (part, flags, security)
        m = self._tcp.get(key)
        if m is None:
            labels = part.labels + (("request_protocol", "tcp"), ("response_flags", flags), ("connection_security_policy", security))
            m = self._tcp[key] = TcpMetrics(self.stats, labels)
        return m


class _Named:
    """Envoy-style counters of one scope, created once: `s.upstream_rq_total.value += 1`."""

    COUNTERS: tuple[str, ...] = ()
    GAUGES: tuple[str, ...] = ()
    PREFIX = ""
    LABEL = ""

    def __init__(self, stats: Stats, name: str) -> None:
        labels = ((self.LABEL, name),)
        for c in self.COUNTERS:
            setattr(self, c, stats.counter(f"{self.PREFIX}.{c}", labels))
        for g in self.GAUGES:
            setattr(self, g, stats.gauge(f"{self.PREFIX}.{g}", labels))


class ClusterStats(_Named):
    PREFIX, LABEL = "cluster", "cluster_name"
    COUNTERS = (
        "upstream_rq_total", "upstream_rq_completed", "upstream_rq_2xx", "upstream_rq_3xx", "upstream_rq_4xx",
        "upstream_rq_5xx", "upstream_cx_total", "upstream_cx_connect_fail", "upstream_cx_connect_timeout",
        "upstream_cx_destroy", "upstream_cx_destroy_remote", "upstream_cx_overflow", "upstream_rq_pending_overflow",
        "upstream_rq_retry", "upstream_rq_retry_success", "upstream_rq_retry_overflow", "upstream_rq_retry_limit_exceeded",
        "upstream_rq_timeout", "upstream_rq_per_try_timeout", "upstream_rq_rx_reset", "upstream_rq_tx_reset",
        "upstream_rq_cancelled", "upstream_rq_maintenance_mode", "upstream_cx_none_healthy", "upstream_cx_rx_bytes_total",
        "upstream_cx_tx_bytes_total", "upstream_cx_protocol_error", "upstream_rq_pending_total",
        "upstream_cx_ssl_handshake_error", "outlier_detection_ejections_enforced_total",
    )
    GAUGES = ("upstream_cx_active", "upstream_rq_active", "upstream_rq_pending_active")

    def response(self, status: int) -> None:
        self.upstream_rq_completed.value += 1  # type: ignore[attr-defined]
        if status < 300:
            self.upstream_rq_2xx.value += 1  # type: ignore[attr-defined]
        elif status >= 500:
            self.upstream_rq_5xx.value += 1  # type: ignore[attr-defined]
        elif status >= 400:
            self.upstream_rq_4xx.value += 1  # type: ignore[attr-defined]
        else:
            self.upstream_rq_3xx.value += 1  # type: ignore[attr-defined]


class ListenerStats(_Named):
    PREFIX, LABEL = "listener", "listener_address"
    COUNTERS = ("downstream_cx_total", "downstream_cx_destroy", "downstream_cx_overflow", "no_filter_chain_match",
                "downstream_listener_filter_error", "downstream_pre_cx_timeout")
    GAUGES = ("downstream_cx_active",)


class HcmStats(_Named):
    PREFIX, LABEL = "http", "http_conn_manager_prefix"
    COUNTERS = (
        "downstream_rq_total", "downstream_rq_http1_total", "downstream_rq_http2_total", "downstream_rq_2xx",
        "downstream_rq_3xx", "downstream_rq_4xx", "downstream_rq_5xx", "downstream_cx_total", "downstream_cx_protocol_error",
        "downstream_rq_rx_reset", "downstream_rq_tx_reset", "downstream_rq_timeout", "downstream_rq_idle_timeout",
        "downstream_rq_header_timeout", "downstream_cx_destroy_remote_active_rq", "no_route", "rq_direct_response",
        "rq_redirect", "downstream_rq_ws_on_non_ws_route", "downstream_cx_ssl_handshake_error",
        "downstream_rq_completed", "downstream_rq_max_duration_reached",
    )
    GAUGES = ("downstream_rq_active", "downstream_cx_active")

    def response(self, status: int) -> None:
        self.downstream_rq_completed.value += 1  # type: ignore[attr-defined]
        if status < 300:
            self.downstream_rq_2xx.value += 1  # type: ignore[attr-defined]
        elif status >= 500:
            self.downstream_rq_5xx.value += 1  # type: ignore[attr-defined]
        elif status >= 400:
            self.downstream_rq_4xx.value += 1  # type: ignore[attr-defined]
        else:
            self.downstream_rq_3xx.value += 1  # type: ignore[attr-defined]


__all__ = [
    "ClusterStats", "Counter", "Gauge", "HcmStats", "Histogram", "HttpMetrics", "IstioTelemetry", "LabelPart", "ListenerStats",
    "TcpMetrics", "WorkloadLabels", "from_node", "from_peer_metadata", "from_workload_metadata", "service_labels",
]
