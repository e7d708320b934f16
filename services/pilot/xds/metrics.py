"""Pilot's xDS metrics under Istio's names, on a registry the caller owns.

prometheus-client exposes counters with a `_total` suffix
(`pilot_xds_pushes_total`); gauges and histograms keep the plain names.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_PUSH_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 3, 5, 10, 20, 30)
_CONVERGENCE_BUCKETS = (0.01, 0.1, 0.5, 1, 3, 5, 10, 20, 30)


class XdsMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.pushes = Counter("pilot_xds_pushes", "xDS responses sent, by type (cds, eds, lds, rds)", ["type"], registry=r)
        self.push_time = Histogram("pilot_xds_push_time", "Seconds to generate and send one xDS response, by type",
                                   ["type"], buckets=_PUSH_BUCKETS, registry=r)
        self.convergence = Histogram("pilot_proxy_convergence_time", "Seconds from the first config change of a "
                                     "push to the proxy having been sent all of it", buckets=_CONVERGENCE_BUCKETS,
                                     registry=r)
        self.connected = Gauge("pilot_xds", "Connected xDS clients", registry=r)
        self.rejects = Counter("pilot_total_xds_rejects", "xDS responses rejected by proxies (NACK), by type",
                               ["type"], registry=r)
        self.push_context_errors = Counter("pilot_xds_push_context_errors", "PushContext builds that failed "
                                           "(the previous snapshot stays in service)", registry=r)
        self.internal_errors = Counter("pilot_total_xds_internal_errors", "Generator failures while answering "
                                       "or pushing", ["type"], registry=r)
        self.push_triggers = Counter("pilot_push_triggers", "Debounced pushes, by reason", ["type"], registry=r)
        self.debounced = Histogram("pilot_debounce_time", "Seconds a push request waited in the debouncer",
                                   buckets=_PUSH_BUCKETS, registry=r)

    def value(self, name: str, **labels: str) -> float:
        """Current sample value (tests, debug pages); 0 when absent."""
        return self.registry.get_sample_value(name, labels) or 0.0
