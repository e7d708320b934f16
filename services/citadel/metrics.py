"""Citadel's Prometheus metrics, on a registry the caller owns (one per process or test)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class CitadelMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.signed = Counter("citadel_certs_signed", "Workload certificates issued, by how the caller authenticated",
                              ["auth"], registry=self.registry)
        self.rejected = Counter("citadel_requests_rejected", "CreateCertificate requests refused, by reason",
                                ["reason"], registry=self.registry)
        self.sign_seconds = Histogram("citadel_sign_seconds", "Time to check a CSR and sign it",
                                      buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
                                      registry=self.registry)

    def value(self, name: str, **labels: str) -> float:
        """Current sample value (for tests and debug pages); 0 when absent."""
        return self.registry.get_sample_value(name, labels) or 0.0
