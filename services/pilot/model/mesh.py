"""Mesh-wide settings: the subset of Istio's MeshConfig that pilot honours."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 2
    per_try_timeout_s: float | None = None
    retry_on: str = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"


@dataclass(frozen=True)
class MeshConfig:
    trust_domain: str = "cluster.local"
    domain_suffix: str = "cluster.local"
    root_namespace: str = "istio-system"
    outbound_traffic_policy: str = "ALLOW_ANY"  # or REGISTRY_ONLY
    enable_auto_mtls: bool = True
    default_retry: RetryPolicy = field(default_factory=RetryPolicy)
    access_log_file: str = "/dev/stdout"  # "" disables
    access_log_encoding: str = "JSON"  # or TEXT
    tracing_sampling: float = 1.0  # percent, as Istio's defaultConfig.tracing.sampling
    connect_timeout_s: float = 10.0
    protocol_detection_timeout_s: float = 0.1

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MeshConfig":
        """Istio MeshConfig YAML keys (camelCase) → MeshConfig; unknown keys are an error."""
        known = {
            "trustDomain", "outboundTrafficPolicy", "enableAutoMtls", "defaultHttpRetryPolicy",
            "accessLogFile", "accessLogEncoding", "rootNamespace", "defaultConfig", "connectTimeout",
            "protocolDetectionTimeout",
        }
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"mesh config: unknown field(s) {', '.join(sorted(unknown))}")
        retry = d.get("defaultHttpRetryPolicy") or {}
        sampling = ((d.get("defaultConfig") or {}).get("tracing") or {}).get("sampling", 1.0)
        return cls(
            trust_domain=d.get("trustDomain", "cluster.local"),
            root_namespace=d.get("rootNamespace", "istio-system"),
            outbound_traffic_policy=(d.get("outboundTrafficPolicy") or {}).get("mode", "ALLOW_ANY"),
            enable_auto_mtls=bool(d.get("enableAutoMtls", True)),
            default_retry=RetryPolicy(
                attempts=int(retry.get("attempts", 2)),
                retry_on=retry.get("retryOn", RetryPolicy.retry_on),
            ),
            access_log_file=d.get("accessLogFile", "/dev/stdout"),
            access_log_encoding=d.get("accessLogEncoding", "JSON"),
            tracing_sampling=float(sampling),
        )
