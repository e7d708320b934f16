"""A cluster's traffic policy: circuit breakers, outlier detection, load-balancer settings.

Every value is filled with Envoy's default when unset, so proxy/upstream/ reads plain
numbers (seconds, counts, percents) and never consults a proto.
"""
from __future__ import annotations

from dataclasses import dataclass

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import base_pb2

from isthmus.proxy.config.common import enum, opt_seconds, wrapped
from isthmus.proxy.config.errors import Fields, Where

C = cluster_pb2.Cluster
CIRCUIT_BREAKERS = Fields(circuit_breaker_pb2.CircuitBreakers, {"thresholds", "per_host_thresholds"})
THRESHOLDS = Fields(circuit_breaker_pb2.CircuitBreakers.Thresholds, {
    "priority", "max_connections", "max_pending_requests", "max_requests", "max_retries", "max_connection_pools",
    "retry_budget",
}, {"track_remaining": "stats only"})
RETRY_BUDGET = Fields(circuit_breaker_pb2.CircuitBreakers.Thresholds.RetryBudget, {"budget_percent", "min_retry_concurrency"})
OUTLIER = Fields(outlier_detection_pb2.OutlierDetection, {
    "consecutive_5xx", "interval", "base_ejection_time", "max_ejection_percent", "enforcing_consecutive_5xx",
    "enforcing_success_rate", "success_rate_minimum_hosts", "success_rate_request_volume", "success_rate_stdev_factor",
    "consecutive_gateway_failure", "enforcing_consecutive_gateway_failure", "split_external_local_origin_errors",
    "consecutive_local_origin_failure", "enforcing_consecutive_local_origin_failure", "enforcing_local_origin_success_rate",
    "failure_percentage_threshold", "enforcing_failure_percentage", "enforcing_failure_percentage_local_origin",
    "failure_percentage_minimum_hosts", "failure_percentage_request_volume", "max_ejection_time",
    "max_ejection_time_jitter", "always_eject_one_host",
}, {"successful_active_health_check_uneject_host": "no active health checking in the isthmus proxy"})
RING_HASH = Fields(C.RingHashLbConfig, {"minimum_ring_size", "hash_function", "maximum_ring_size"})
MAGLEV = Fields(C.MaglevLbConfig, {"table_size"})
LEAST_REQUEST = Fields(C.LeastRequestLbConfig, {"choice_count", "active_request_bias", "slow_start_config"})
ROUND_ROBIN = Fields(C.RoundRobinLbConfig, {"slow_start_config"})
SLOW_START = Fields(C.SlowStartConfig, {"slow_start_window", "aggression", "min_weight_percent"})
COMMON_LB = Fields(C.CommonLbConfig, {"healthy_panic_threshold", "locality_weighted_lb_config",
                                      "close_connections_on_host_set_change", "consistent_hashing_lb_config"},
                   {"update_merge_window": "host-set update batching", "ignore_new_hosts_until_first_hc": "no active health checking"})
CONSISTENT_HASHING = Fields(C.CommonLbConfig.ConsistentHashingLbConfig, {"use_hostname_for_hashing", "hash_balance_factor"})
RUNTIME_DOUBLE = Fields(base_pb2.RuntimeDouble, {"default_value"}, {"runtime_key": "no runtime layer"})

HASH_FUNCTIONS = {C.RingHashLbConfig.XX_HASH: "xx_hash", C.RingHashLbConfig.MURMUR_HASH_2: "murmur_hash_2"}


@dataclass(frozen=True, slots=True)
class RetryBudgetConfig:
    budget_percent: float = 20.0  # of active requests that may be retries
    min_retry_concurrency: int = 3


@dataclass(frozen=True, slots=True)
class Thresholds:
    max_connections: int = 1024
    max_pending_requests: int = 1024
    max_requests: int = 1024
    max_retries: int = 3  # ignored by Envoy when retry_budget is set
    max_connection_pools: int | None = None  # None: unlimited
    retry_budget: RetryBudgetConfig | None = None


@dataclass(frozen=True, slots=True)
class CircuitBreakersConfig:
    default: Thresholds = Thresholds()
    high: Thresholds = Thresholds()
    per_host_max_connections: int | None = None

    def for_priority(self, priority: str) -> Thresholds:
        return self.high if priority == "high" else self.default


@dataclass(frozen=True, slots=True)
class OutlierDetectionConfig:
    consecutive_5xx: int = 5
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_time: float = 300.0  # unset: max(300 s, base_ejection_time), as Envoy
    max_ejection_time_jitter: float = 0.0
    max_ejection_percent: int = 10
    enforcing_consecutive_5xx: int = 100
    enforcing_success_rate: int = 100
    success_rate_minimum_hosts: int = 5
    success_rate_request_volume: int = 100
    success_rate_stdev_factor: int = 1900
    consecutive_gateway_failure: int = 5
    enforcing_consecutive_gateway_failure: int = 0
    split_external_local_origin_errors: bool = False
    consecutive_local_origin_failure: int = 5
    enforcing_consecutive_local_origin_failure: int = 100
    enforcing_local_origin_success_rate: int = 100
    failure_percentage_threshold: int = 85
    enforcing_failure_percentage: int = 0
    enforcing_failure_percentage_local_origin: int = 0
    failure_percentage_minimum_hosts: int = 5
    failure_percentage_request_volume: int = 50
    always_eject_one_host: bool = False


@dataclass(frozen=True, slots=True)
class SlowStartConfig:
    window: float
    aggression: float = 1.0
    min_weight_percent: float = 10.0


@dataclass(frozen=True, slots=True)
class LbConfig:
    """The policy and its knobs; only those of `policy` are meaningful."""

    policy: str = "round_robin"  # round_robin | least_request | ring_hash | random | maglev | cluster_provided
    choice_count: int = 2  # least_request
    active_request_bias: float = 1.0  # least_request
    slow_start: SlowStartConfig | None = None  # round_robin / least_request
    minimum_ring_size: int = 1024  # ring_hash
    maximum_ring_size: int = 8 * 1024 * 1024
    hash_function: str = "xx_hash"
    maglev_table_size: int = 65537
    healthy_panic_threshold: float = 50.0  # percent; 0 disables panic mode
    locality_weighted: bool = False
    close_connections_on_host_set_change: bool = False
    use_hostname_for_hashing: bool = False
    hash_balance_factor: int | None = None


LB_POLICIES = {C.ROUND_ROBIN: "round_robin", C.LEAST_REQUEST: "least_request", C.RING_HASH: "ring_hash", C.RANDOM: "random",
               C.MAGLEV: "maglev", C.CLUSTER_PROVIDED: "cluster_provided"}


def _thresholds(msg: circuit_breaker_pb2.CircuitBreakers.Thresholds, where: Where) -> Thresholds:
    THRESHOLDS.check(msg, where)
    budget = None
    if msg.HasField("retry_budget"):
        b = msg.retry_budget
        RETRY_BUDGET.check(b, where.at("retry_budget"))
        budget = RetryBudgetConfig(b.budget_percent.value if b.HasField("budget_percent") else 20.0,
                                   wrapped(b, "min_retry_concurrency", 3))
    return Thresholds(
        wrapped(msg, "max_connections", 1024), wrapped(msg, "max_pending_requests", 1024),
        wrapped(msg, "max_requests", 1024), wrapped(msg, "max_retries", 3), wrapped(msg, "max_connection_pools", None),
        budget,
    )


def circuit_breakers(msg: circuit_breaker_pb2.CircuitBreakers, where: Where) -> CircuitBreakersConfig:
    CIRCUIT_BREAKERS.check(msg, where)
    by_priority: dict[int, Thresholds] = {}
    for i, t in enumerate(msg.thresholds):
        w = where.at("thresholds").idx(i)
        if t.priority in by_priority:
            raise w.at("priority").invalid("two thresholds for the same priority")
        by_priority[t.priority] = _thresholds(t, w)
    per_host = None
    for i, t in enumerate(msg.per_host_thresholds):
        w = where.at("per_host_thresholds").idx(i)
        THRESHOLDS.check(t, w)
        extra = [f.name for f, _ in t.ListFields() if f.name not in ("priority", "max_connections", "track_remaining")]
        if extra:
            raise w.at(extra[0]).unsupported("per-host thresholds support only max_connections")
        if t.priority == base_pb2.DEFAULT:
            per_host = wrapped(t, "max_connections", None)
    return CircuitBreakersConfig(by_priority.get(base_pb2.DEFAULT, Thresholds()), by_priority.get(base_pb2.HIGH, Thresholds()), per_host)


def outlier_detection(msg: outlier_detection_pb2.OutlierDetection, where: Where) -> OutlierDetectionConfig:
    OUTLIER.check(msg, where)
    d = OutlierDetectionConfig()
    values = {}
    for name in ("interval", "base_ejection_time", "max_ejection_time_jitter"):
        values[name] = opt_seconds(msg, name, getattr(d, name))
    values["max_ejection_time"] = opt_seconds(msg, "max_ejection_time", max(300.0, values["base_ejection_time"]))
    if values["max_ejection_time"] < values["base_ejection_time"]:
        raise where.at("max_ejection_time").invalid("max_ejection_time cannot be smaller than base_ejection_time")
    if values["interval"] <= 0:
        raise where.at("interval").invalid("interval must be > 0")
    for name in OutlierDetectionConfig.__dataclass_fields__:
        if name in values:
            continue
        default = getattr(d, name)
        values[name] = getattr(msg, name) if isinstance(default, bool) else wrapped(msg, name, default)
    for name in ("max_ejection_percent", "enforcing_consecutive_5xx", "enforcing_success_rate",
                 "enforcing_consecutive_gateway_failure", "enforcing_local_origin_success_rate",
                 "enforcing_consecutive_local_origin_failure", "failure_percentage_threshold",
                 "enforcing_failure_percentage", "enforcing_failure_percentage_local_origin"):
        if values[name] > 100:
            raise where.at(name).invalid(f"{name} is a percentage (0-100), got {values[name]}")
    return OutlierDetectionConfig(**values)


def _slow_start(msg: C.SlowStartConfig, where: Where) -> SlowStartConfig:
    SLOW_START.check(msg, where)
    aggression = 1.0
    if msg.HasField("aggression"):
        RUNTIME_DOUBLE.check(msg.aggression, where.at("aggression"))
        aggression = msg.aggression.default_value
    return SlowStartConfig(opt_seconds(msg, "slow_start_window", 0.0) or 0.0, aggression,
                           msg.min_weight_percent.value if msg.HasField("min_weight_percent") else 10.0)


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % k for k in range(2, int(n ** 0.5) + 1))


def lb_config(msg: C, where: Where) -> LbConfig:
    out: dict = {"policy": enum(LB_POLICIES, msg, "lb_policy", where)}
    which = msg.WhichOneof("lb_config")
    if which == "ring_hash_lb_config":
        r, w = msg.ring_hash_lb_config, where.at(which)
        RING_HASH.check(r, w)
        out.update(minimum_ring_size=wrapped(r, "minimum_ring_size", 1024), maximum_ring_size=wrapped(r, "maximum_ring_size", 8 * 1024 * 1024),
                   hash_function=enum(HASH_FUNCTIONS, r, "hash_function", w))
        if out["minimum_ring_size"] > out["maximum_ring_size"]:
            raise w.invalid("minimum_ring_size must not exceed maximum_ring_size")
    elif which == "maglev_lb_config":
        MAGLEV.check(msg.maglev_lb_config, where.at(which))
        out["maglev_table_size"] = wrapped(msg.maglev_lb_config, "table_size", 65537)
        if not _is_prime(out["maglev_table_size"]):
            raise where.at(which).at("table_size").invalid("the Maglev table size must be prime")
    elif which == "least_request_lb_config":
        lr, w = msg.least_request_lb_config, where.at(which)
        LEAST_REQUEST.check(lr, w)
        out["choice_count"] = wrapped(lr, "choice_count", 2)
        if lr.HasField("active_request_bias"):
            RUNTIME_DOUBLE.check(lr.active_request_bias, w.at("active_request_bias"))
            out["active_request_bias"] = lr.active_request_bias.default_value
        if lr.HasField("slow_start_config"):
            out["slow_start"] = _slow_start(lr.slow_start_config, w.at("slow_start_config"))
    elif which == "round_robin_lb_config":
        ROUND_ROBIN.check(msg.round_robin_lb_config, where.at(which))
        if msg.round_robin_lb_config.HasField("slow_start_config"):
            out["slow_start"] = _slow_start(msg.round_robin_lb_config.slow_start_config, where.at(which).at("slow_start_config"))
    if msg.HasField("common_lb_config"):
        c, w = msg.common_lb_config, where.at("common_lb_config")
        COMMON_LB.check(c, w)
        if c.HasField("healthy_panic_threshold"):
            out["healthy_panic_threshold"] = c.healthy_panic_threshold.value
        out["locality_weighted"] = c.HasField("locality_weighted_lb_config")
        out["close_connections_on_host_set_change"] = c.close_connections_on_host_set_change
        if c.HasField("consistent_hashing_lb_config"):
            ch = c.consistent_hashing_lb_config
            CONSISTENT_HASHING.check(ch, w.at("consistent_hashing_lb_config"))
            out["use_hostname_for_hashing"] = ch.use_hostname_for_hashing
            out["hash_balance_factor"] = wrapped(ch, "hash_balance_factor", None)
    return LbConfig(**out)

