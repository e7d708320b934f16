"""Outlier detection (passive health checking), with Envoy's rules and defaults.

Contract: the router reports each upstream outcome with `on_result(host, result, now)`
— an HTTP status, or a `Result` for locally originated outcomes (connect failure,
timeout, ...). Consecutive-error detectors (5xx, gateway failure 502/503/504, and
local-origin failure when `split_external_local_origin_errors`) eject inline; the
runtime calls `tick(now)` every `config.interval` for the sweep: hosts whose ejection
time passed come back, success-rate and failure-percentage detectors run over the
interval's counts, and the ejection-time multiplier of hosts that stayed healthy
decays by one. An ejection lasts min(base_ejection_time × multiplier,
max_ejection_time) + jitter; it is refused (`ejections_overflow`) when it would take
the ejected share above max_ejection_percent (unless `always_eject_one_host` and none
is ejected), and carried out with probability enforcing_*%. Ejecting sets
FAILED_OUTLIER_CHECK through the `HostSet`, so balancers stop picking the host (except
in panic). Both calls return the `OutlierEvent`s that happened; on an ejection the
runtime should drain the host's connection pools, as Envoy does.
"""
from __future__ import annotations

import dataclasses
import enum
import math
import random

from .endpoints import Host, HostSet
from .health import HealthFlag

__all__ = ["Result", "EjectionType", "OutlierConfig", "OutlierEvent", "OutlierDetector"]


class Result(enum.Enum):
    """Envoy's `Outlier::Result`: outcomes that are not (only) an HTTP status."""

    LOCAL_ORIGIN_CONNECT_SUCCESS = "connect_success"  # connected; the HTTP status follows
    LOCAL_ORIGIN_CONNECT_SUCCESS_FINAL = "connect_success_final"  # connected, nothing follows (TCP)
    LOCAL_ORIGIN_TIMEOUT = "timeout"
    LOCAL_ORIGIN_CONNECT_FAILED = "connect_failed"  # refused, reset, TLS failure, ...
    EXT_ORIGIN_REQUEST_FAILED = "request_failed"  # non-HTTP transaction failed
    EXT_ORIGIN_REQUEST_SUCCESS = "request_success"


class EjectionType(enum.Enum):
    """Values are Envoy's stat suffixes (`ejections_detected_<value>`)."""

    CONSECUTIVE_5XX = "consecutive_5xx"
    CONSECUTIVE_GATEWAY_FAILURE = "consecutive_gateway_failure"
    CONSECUTIVE_LOCAL_ORIGIN_FAILURE = "consecutive_local_origin_failure"
    SUCCESS_RATE = "success_rate"
    SUCCESS_RATE_LOCAL_ORIGIN = "local_origin_success_rate"
    FAILURE_PERCENTAGE = "failure_percentage"
    FAILURE_PERCENTAGE_LOCAL_ORIGIN = "local_origin_failure_percentage"


# Non-split mode reports local-origin outcomes as these HTTP statuses (None: not counted).
_AS_HTTP = {
    Result.EXT_ORIGIN_REQUEST_SUCCESS: 200,
    Result.LOCAL_ORIGIN_CONNECT_SUCCESS_FINAL: 200,
    Result.LOCAL_ORIGIN_TIMEOUT: 504,
    Result.LOCAL_ORIGIN_CONNECT_FAILED: 503,
    Result.EXT_ORIGIN_REQUEST_FAILED: 500,
    Result.LOCAL_ORIGIN_CONNECT_SUCCESS: None,
}


@dataclasses.dataclass(frozen=True, slots=True)
class OutlierConfig:
    """`config.cluster.v3.OutlierDetection`; durations in seconds, Envoy's defaults."""

    consecutive_5xx: int = 5
    consecutive_gateway_failure: int = 5
    consecutive_local_origin_failure: int = 5
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_time: float | None = None  # None: max(300 s, base_ejection_time)
    max_ejection_time_jitter: float = 0.0
    max_ejection_percent: float = 10.0
    always_eject_one_host: bool = False
    enforcing_consecutive_5xx: int = 100
    enforcing_consecutive_gateway_failure: int = 0
    enforcing_consecutive_local_origin_failure: int = 100
    split_external_local_origin_errors: bool = False
    success_rate_minimum_hosts: int = 5
    success_rate_request_volume: int = 100
    success_rate_stdev_factor: int = 1900  # /1000
    enforcing_success_rate: int = 100
    enforcing_local_origin_success_rate: int = 100
    failure_percentage_threshold: int = 85
    failure_percentage_minimum_hosts: int = 5
    failure_percentage_request_volume: int = 50
    enforcing_failure_percentage: int = 0
    enforcing_failure_percentage_local_origin: int = 0

    def __post_init__(self) -> None:
        if self.max_ejection_time is None:
            object.__setattr__(self, "max_ejection_time", max(300.0, self.base_ejection_time))
        if self.max_ejection_time < self.base_ejection_time:
            raise ValueError("outlier_detection: max_ejection_time cannot be smaller than base_ejection_time "
                             f"({self.max_ejection_time} < {self.base_ejection_time})")
        if self.interval <= 0:
            raise ValueError(f"outlier_detection.interval must be > 0 (got {self.interval})")

    def enforcing(self, kind: EjectionType) -> int:
        return {
            EjectionType.CONSECUTIVE_5XX: self.enforcing_consecutive_5xx,
            EjectionType.CONSECUTIVE_GATEWAY_FAILURE: self.enforcing_consecutive_gateway_failure,
            EjectionType.CONSECUTIVE_LOCAL_ORIGIN_FAILURE: self.enforcing_consecutive_local_origin_failure,
            EjectionType.SUCCESS_RATE: self.enforcing_success_rate,
            EjectionType.SUCCESS_RATE_LOCAL_ORIGIN: self.enforcing_local_origin_success_rate,
            EjectionType.FAILURE_PERCENTAGE: self.enforcing_failure_percentage,
            EjectionType.FAILURE_PERCENTAGE_LOCAL_ORIGIN: self.enforcing_failure_percentage_local_origin,
        }[kind]


@dataclasses.dataclass(frozen=True, slots=True)
class OutlierEvent:
    host: Host
    ejected: bool  # True: ejected now; False: returned to service
    kind: EjectionType | None  # why it was ejected (None for a return)
    num_ejections: int
    duration: float = 0.0  # how long this ejection lasts at least (ejections only)


class _Monitor:
    __slots__ = ("c5xx", "cgw", "clo", "num_ejections", "backoff", "ejected_at", "unejected_at", "jitter",
                 "ext", "loc", "ext_last", "loc_last")

    def __init__(self) -> None:
        self.c5xx = self.cgw = self.clo = 0
        self.num_ejections = self.backoff = 0
        self.ejected_at = 0.0
        self.unejected_at: float | None = None
        self.jitter = 0.0
        self.ext = [0, 0]  # [successes, total] this interval
        self.loc = [0, 0]
        self.ext_last = [0, 0]  # the last complete interval
        self.loc_last = [0, 0]


class OutlierDetector:
    """Outlier detection for one cluster; see the module docstring."""

    def __init__(self, config: OutlierConfig, host_set: HostSet, *, rng: random.Random | None = None) -> None:
        self.config = config
        self.host_set = host_set
        self.rng = rng if rng is not None else random.Random()
        self._monitors: dict[Host, _Monitor] = {}
        self._membership = -1
        self._ejected = 0
        self.stats: dict[str, int] = {"ejections_overflow": 0, "ejections_enforced_total": 0}
        for kind in EjectionType:
            self.stats[f"ejections_detected_{kind.value}"] = 0
            self.stats[f"ejections_enforced_{kind.value}"] = 0
        self.success_rate: dict[str, tuple[float, float] | None] = {"external": None, "local": None}
        self._sync()

    @property
    def ejections_active(self) -> int:
        return self._ejected

    def _sync(self) -> None:
        if self._membership == self.host_set.membership_version:
            return
        self._membership = self.host_set.membership_version
        current = set(self.host_set.hosts)
        self._monitors = {h: m for h, m in self._monitors.items() if h in current}
        for host in self.host_set.hosts:
            self._monitors.setdefault(host, _Monitor())
        self._ejected = sum(1 for h in self._monitors if h.ejected)

    # -- results ------------------------------------------------------------------------
    def on_result(self, host: Host, result: int | Result, now: float) -> list[OutlierEvent]:
        self._sync()
        m = self._monitors.get(host)
        if m is None:
            return []
        events: list[OutlierEvent] = []
        if isinstance(result, Result) and self.config.split_external_local_origin_errors:
            if result in (Result.LOCAL_ORIGIN_TIMEOUT, Result.LOCAL_ORIGIN_CONNECT_FAILED):
                m.loc[1] += 1
                m.clo += 1
                if m.clo == self.config.consecutive_local_origin_failure:
                    self._consecutive(host, m, EjectionType.CONSECUTIVE_LOCAL_ORIGIN_FAILURE, now, events)
            elif result is Result.EXT_ORIGIN_REQUEST_FAILED:
                self._http(host, m, 503, now, events)
            else:
                if result is Result.EXT_ORIGIN_REQUEST_SUCCESS:
                    self._http(host, m, 200, now, events)
                m.loc[0] += 1
                m.loc[1] += 1
                m.clo = 0
            return events
        code = _AS_HTTP[result] if isinstance(result, Result) else result
        if code is not None:
            self._http(host, m, code, now, events)
        return events

    def _http(self, host: Host, m: _Monitor, code: int, now: float, events: list[OutlierEvent]) -> None:
        m.ext[1] += 1
        if 500 <= code < 600:
            if code in (502, 503, 504):
                m.cgw += 1
                if m.cgw == self.config.consecutive_gateway_failure:
                    self._consecutive(host, m, EjectionType.CONSECUTIVE_GATEWAY_FAILURE, now, events)
            else:
                m.cgw = 0
            m.c5xx += 1
            if m.c5xx == self.config.consecutive_5xx:
                self._consecutive(host, m, EjectionType.CONSECUTIVE_5XX, now, events)
        else:
            m.ext[0] += 1
            m.c5xx = m.cgw = 0

    def _consecutive(self, host: Host, m: _Monitor, kind: EjectionType, now: float, events: list[OutlierEvent]) -> None:
        if host.ejected:
            return
        self.stats[f"ejections_detected_{kind.value}"] += 1
        self._eject(host, m, kind, now, events)
        if kind is EjectionType.CONSECUTIVE_5XX:
            m.c5xx = 0
        elif kind is EjectionType.CONSECUTIVE_GATEWAY_FAILURE:
            m.cgw = 0
        else:
            m.clo = 0

    # -- ejection ---------------------------------------------------------------------------
    def _eject(self, host: Host, m: _Monitor, kind: EjectionType, now: float, events: list[OutlierEvent]) -> None:
        cfg = self.config
        share = 100.0 * (self._ejected + 1) / len(self._monitors)
        allowed = share <= min(100.0, cfg.max_ejection_percent) or (cfg.always_eject_one_host and self._ejected == 0)
        if not allowed:
            self.stats["ejections_overflow"] += 1
            return
        enforcing = cfg.enforcing(kind)
        if enforcing <= 0 or (enforcing < 100 and self.rng.randrange(100) >= enforcing):
            return
        self._ejected += 1
        self.stats["ejections_enforced_total"] += 1
        self.stats[f"ejections_enforced_{kind.value}"] += 1
        m.num_ejections += 1
        m.ejected_at = now
        jitter_ms = int(cfg.max_ejection_time_jitter * 1000)
        m.jitter = self.rng.randrange(jitter_ms + 1) / 1000.0 if jitter_ms > 0 else 0.0
        if m.backoff * cfg.base_ejection_time < cfg.max_ejection_time + cfg.base_ejection_time:
            m.backoff += 1
        self.host_set.set_health_flag(host, HealthFlag.FAILED_OUTLIER_CHECK, True)
        events.append(OutlierEvent(host, True, kind, m.num_ejections, self._ejection_time(m)))

    def _ejection_time(self, m: _Monitor) -> float:
        cfg = self.config
        return min(cfg.base_ejection_time * m.backoff, cfg.max_ejection_time) + m.jitter

    def _uneject(self, host: Host, m: _Monitor, now: float, events: list[OutlierEvent]) -> None:
        self._ejected -= 1
        self.host_set.set_health_flag(host, HealthFlag.FAILED_OUTLIER_CHECK, False)
        m.c5xx = m.cgw = m.clo = 0
        m.unejected_at = now
        events.append(OutlierEvent(host, False, None, m.num_ejections))

    def ejection_time_remaining(self, host: Host, now: float) -> float:
        """Seconds until `host` may return (0 if it is not ejected)."""
        m = self._monitors.get(host)
        if m is None or not host.ejected:
            return 0.0
        return max(0.0, self._ejection_time(m) - (now - m.ejected_at))

    # -- the interval sweep -------------------------------------------------------------------
    def tick(self, now: float) -> list[OutlierEvent]:
        self._sync()
        events: list[OutlierEvent] = []
        for host, m in self._monitors.items():
            if host.ejected and self._ejection_time(m) <= now - m.ejected_at:
                self._uneject(host, m, now, events)
            m.ext_last, m.ext = m.ext, [0, 0]
            m.loc_last, m.loc = m.loc, [0, 0]
        self._success_rate(False, now, events)
        self._success_rate(True, now, events)
        for host, m in self._monitors.items():
            if (not host.ejected and m.unejected_at is not None and m.backoff
                    and now - m.unejected_at >= self.config.interval):
                m.backoff -= 1
        return events

    def _success_rate(self, local: bool, now: float, events: list[OutlierEvent]) -> None:
        cfg = self.config
        label = "local" if local else "external"
        self.success_rate[label] = None
        n = len(self._monitors)
        if n < cfg.success_rate_minimum_hosts and n < cfg.failure_percentage_minimum_hosts:
            return
        sr_hosts: list[tuple[Host, _Monitor, float]] = []
        fp_hosts: list[tuple[Host, _Monitor, float]] = []
        for host, m in self._monitors.items():
            if host.ejected:
                continue
            ok, total = m.loc_last if local else m.ext_last
            if not total:
                continue
            rate = ok * 100.0 / total
            if total >= cfg.success_rate_request_volume:
                sr_hosts.append((host, m, rate))
            if total >= cfg.failure_percentage_request_volume:
                fp_hosts.append((host, m, rate))
        if sr_hosts and len(sr_hosts) >= cfg.success_rate_minimum_hosts:
            mean = sum(r for _, _, r in sr_hosts) / len(sr_hosts)
            stdev = math.sqrt(sum((r - mean) ** 2 for _, _, r in sr_hosts) / len(sr_hosts))
            threshold = mean - cfg.success_rate_stdev_factor / 1000.0 * stdev
            self.success_rate[label] = (mean, threshold)
            kind = EjectionType.SUCCESS_RATE_LOCAL_ORIGIN if local else EjectionType.SUCCESS_RATE
            for host, m, rate in sr_hosts:
                if rate < threshold and not host.ejected:
                    self.stats[f"ejections_detected_{kind.value}"] += 1
                    self._eject(host, m, kind, now, events)
        if fp_hosts and len(fp_hosts) >= cfg.failure_percentage_minimum_hosts:
            kind = EjectionType.FAILURE_PERCENTAGE_LOCAL_ORIGIN if local else EjectionType.FAILURE_PERCENTAGE
            for host, m, rate in fp_hosts:
                if 100.0 - rate >= cfg.failure_percentage_threshold and not host.ejected:
                    self.stats[f"ejections_detected_{kind.value}"] += 1
                    self._eject(host, m, kind, now, events)
