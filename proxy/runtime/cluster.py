"""Per-cluster runtime state that outlives snapshots: hosts, balancer, breakers, pools,
outlier detection, DNS resolution, stats.

`ClusterManager.reconcile(snapshot)` returns {name: ClusterState} for a new
generation. A cluster whose proto is unchanged keeps its `ClusterState` (an EDS
change only updates the HostSet in place, so counters and ejections persist); a
changed or removed cluster's state is retired: its pools close idle connections and
drain the busy ones. ORIGINAL_DST clusters make hosts on demand (`original_host`).
"""
from __future__ import annotations

import asyncio
import dataclasses
import socket
from typing import TYPE_CHECKING

from isthmus.proxy.config.clusters import ClusterConfig
from isthmus.proxy.config.endpoints import EndpointConfig, EndpointsConfig
from isthmus.proxy.telemetry import ClusterStats, WorkloadLabels, from_workload_metadata, service_labels
from isthmus.proxy.upstream.circuit import RetryBudget, RoutingPriority, ResourceManager, Thresholds, UNLIMITED
from isthmus.proxy.upstream.endpoints import Endpoint, Host, HostSet, Locality
from isthmus.proxy.upstream.hash_lb import Maglev, RingHash
from isthmus.proxy.upstream.health import HealthStatus
from isthmus.proxy.upstream.lb import ChooseContext, LeastRequest, Random, RoundRobin
from isthmus.shared.service.runtime import host_bytes
from isthmus.proxy.upstream.outlier import OutlierConfig, OutlierDetector, Result

if TYPE_CHECKING:
    from isthmus.proxy.config.snapshot import Snapshot
    from isthmus.proxy.runtime.context import Runtime

CLUSTER_TYPE_URL = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
_HEALTH = {"unknown": HealthStatus.UNKNOWN, "healthy": HealthStatus.HEALTHY, "unhealthy": HealthStatus.UNHEALTHY,
           "draining": HealthStatus.DRAINING, "timeout": HealthStatus.TIMEOUT, "degraded": HealthStatus.DEGRADED}
_FAMILIES = {"v4_only": socket.AF_INET, "v6_only": socket.AF_INET6}
_OUTLIER_FIELDS = tuple(f.name for f in dataclasses.fields(OutlierConfig))


class HostInfo:
    """What the runtime keeps per host besides `Host` (which upstream/ owns)."""

    __slots__ = ("host", "endpoint", "tls", "workload", "parts", "rq_total", "rq_success", "rq_error", "rq_timeout",
                 "cx_total", "cx_connect_fail", "cx_active", "pools")

    def __init__(self, host: Host, endpoint: EndpointConfig | None, tls) -> None:
        self.host = host
        self.endpoint = endpoint
        self.tls = tls  # UpstreamTls | None
        self.workload: WorkloadLabels = from_workload_metadata(endpoint.workload if endpoint is not None else "")
        self.parts: dict = {}  # telemetry label parts by (principal, service)
        self.rq_total = self.rq_success = self.rq_error = self.rq_timeout = 0
        self.cx_total = self.cx_connect_fail = self.cx_active = 0
        self.pools: dict = {}  # protocol → HostPool (runtime/upstream.py)


def _thresholds(t, priority: RoutingPriority) -> Thresholds:
    budget = RetryBudget(t.retry_budget.budget_percent, t.retry_budget.min_retry_concurrency) if t.retry_budget else None
    return Thresholds(priority, t.max_connections, t.max_pending_requests, t.max_requests, t.max_retries, budget,
                      t.max_connection_pools if t.max_connection_pools is not None else UNLIMITED)


def _balancer(config: ClusterConfig, hosts: HostSet):
    lb = config.lb
    panic = lb.healthy_panic_threshold
    if lb.policy == "least_request":
        return LeastRequest(hosts, choice_count=lb.choice_count, active_request_bias=lb.active_request_bias, panic_threshold=panic)
    if lb.policy == "random":
        return Random(hosts, panic_threshold=panic)
    if lb.policy == "ring_hash":
        return RingHash(hosts, minimum_ring_size=lb.minimum_ring_size, maximum_ring_size=lb.maximum_ring_size,
                        use_hostname_for_hashing=lb.use_hostname_for_hashing, panic_threshold=panic)
    if lb.policy == "maglev":
        return Maglev(hosts, table_size=lb.maglev_table_size, use_hostname_for_hashing=lb.use_hostname_for_hashing, panic_threshold=panic)
    if lb.policy == "cluster_provided":
        return None
    return RoundRobin(hosts, panic_threshold=panic)


class ClusterState:
    def __init__(self, config: ClusterConfig, proto, rt: "Runtime") -> None:
        self.name = config.name
        self.config = config
        self.proto = proto
        self.rt = rt
        self.stats = ClusterStats(rt.stats, config.name)
        self.host_set = HostSet()
        self.lb = _balancer(config, self.host_set)
        self.hash_based = bool(getattr(self.lb, "hash_based", False))
        cb = config.circuit_breakers
        self.breakers = {"default": ResourceManager(_thresholds(cb.default, RoutingPriority.DEFAULT)),
                         "high": ResourceManager(_thresholds(cb.high, RoutingPriority.HIGH))}
        self.outlier = None
        if config.outlier_detection is not None:
            od = config.outlier_detection
            self.outlier = OutlierDetector(OutlierConfig(**{f: getattr(od, f) for f in _OUTLIER_FIELDS}), self.host_set)
        self.info: dict[Host, HostInfo] = {}
        self.endpoints: EndpointsConfig | None = None
        self.retired = False
        md = config.metadata.get("istio", {}) if config.metadata else {}
        services = md.get("services") or []
        svc = services[0] if services else {}
        self.service = service_labels(svc.get("host", ""), svc.get("name", ""), svc.get("namespace", "")) if svc else None
        self._timers: list[asyncio.TimerHandle] = []
        self._dns_task: asyncio.Task | None = None
        self._odst: dict[str, HostInfo] = {}
        self.snapshot_secrets = None  # the current Snapshot's secrets (for SDS names the provider lacks)

    def manager_secrets(self):
        return self.snapshot_secrets

    # -- endpoints ------------------------------------------------------------
    def set_endpoints(self, eps: EndpointsConfig | None) -> None:
        if eps is self.endpoints:
            return
        self.endpoints = eps
        if self.config.discovery_type in ("STRICT_DNS", "LOGICAL_DNS") and eps is not None and any(
                not _is_ip(e.address.host) for e in eps.endpoints):
            if self._dns_task is None:
                self._dns_task = self.rt.loop.create_task(self._resolve_forever())
            return
        self._apply(self._endpoints_of(eps), {})

    def _endpoints_of(self, eps: EndpointsConfig | None) -> list[tuple[Endpoint, EndpointConfig]]:
        out = []
        if eps is None:
            return out
        for loc in eps.localities:
            locality = Locality(loc.region, loc.zone, loc.sub_zone)
            for ep in loc.endpoints:
                if ep.address.pipe:
                    continue
                out.append((Endpoint(ep.address.host, ep.address.port, ep.weight, _HEALTH.get(ep.health, HealthStatus.UNKNOWN),
                                     ep.metadata, locality, loc.priority, ep.hostname), ep))
        return out

    def _apply(self, pairs: list[tuple[Endpoint, EndpointConfig]], resolved: dict) -> None:
        overprovisioning = self.endpoints.overprovisioning_factor if self.endpoints is not None else 140
        self.host_set.overprovisioning_factor = overprovisioning
        update = self.host_set.update([e for e, _ in pairs])
        by_key = {}
        for e, cfg in pairs:
            by_key.setdefault(f"[{e.address}]:{e.port}" if ":" in e.address else f"{e.address}:{e.port}", cfg)
        for host in update.removed:
            info = self.info.pop(host, None)
            if info is not None:
                for pool in info.pools.values():
                    pool.drain()
        for host in self.host_set.hosts:
            cfg = by_key.get(host.address_string)
            tls = self.config.transport_for(cfg)
            info = self.info.get(host)
            if info is None or info.endpoint != cfg or info.tls is not tls:
                new = HostInfo(host, cfg, tls)
                if info is not None:
                    if info.tls is tls:
                        new.pools = info.pools
                    else:
                        for pool in info.pools.values():
                            pool.drain()
                    new.rq_total, new.rq_success, new.rq_error = info.rq_total, info.rq_success, info.rq_error
                    new.rq_timeout, new.cx_total, new.cx_connect_fail = info.rq_timeout, info.cx_total, info.cx_connect_fail
                    new.cx_active = info.cx_active
                self.info[host] = new

    async def _resolve_forever(self) -> None:
        loop = self.rt.loop
        family = _FAMILIES.get(self.config.dns_lookup_family, socket.AF_UNSPEC)
        while not self.retired:
            eps = self.endpoints
            pairs = []
            for endpoint, cfg in self._endpoints_of(eps):
                if _is_ip(endpoint.address):
                    pairs.append((endpoint, cfg))
                    continue
                try:
                    infos = await loop.getaddrinfo(host_bytes(endpoint.address), endpoint.port, family=family, type=socket.SOCK_STREAM)
                except OSError:
                    continue
                addresses = list(dict.fromkeys(i[4][0] for i in infos))
                if self.config.dns_lookup_family == "v4_preferred":
                    addresses.sort(key=lambda a: ":" in a)
                if self.config.discovery_type == "LOGICAL_DNS":
                    addresses = addresses[:1]
                for a in addresses:
                    pairs.append((dataclasses.replace(endpoint, address=a, hostname=endpoint.hostname or endpoint.address), cfg))
            if eps is self.endpoints:
                self._apply(pairs, {})
            await asyncio.sleep(self.config.dns_refresh_rate or 5.0)

    # -- picking hosts ----------------------------------------------------------
    def choose(self, hash_key: int | None, exclude=(), max_reselects: int = 1) -> HostInfo | None:
        lb = self.lb
        if lb is None:
            return None
        if hash_key is None and not exclude:
            host = lb.choose(None)
        else:
            host = lb.choose(ChooseContext(hash_key, exclude, max_reselects))
        if host is None:
            return None
        return self.info.get(host)

    def original_host(self, address: str, port: int) -> HostInfo:
        """An ORIGINAL_DST host (created on first use, kept while used)."""
        od = self.config.original_dst
        if od is not None and od.upstream_port_override:
            port = od.upstream_port_override
        key = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        info = self._odst.get(key)
        if info is None:
            host = Host(Endpoint(address, port))
            info = self._odst[key] = HostInfo(host, None, self.config.tls)
            if len(self._odst) > 1024:
                for k in [k for k, i in self._odst.items() if not i.host.active_requests and not i.cx_active][:512]:
                    del self._odst[k]
        return info

    # -- outlier detection --------------------------------------------------------
    def report(self, info: HostInfo, result) -> None:
        """An upstream outcome (status code or outlier.Result) for outlier detection."""
        od = self.outlier
        if od is None or info.host not in self.host_set:
            return
        events = od.on_result(info.host, result, self.rt.loop.time())
        if events:
            self._on_outlier(events)

    def _on_outlier(self, events) -> None:
        for ev in events:
            if ev.ejected:
                self.stats.outlier_detection_ejections_enforced_total.value += 1  # type: ignore[attr-defined]
                info = self.info.get(ev.host)
                if info is not None:
                    for pool in info.pools.values():
                        pool.drain()

    def start(self) -> None:
        if self.outlier is not None:
            self._schedule_tick()

    def _schedule_tick(self) -> None:
        if self.retired or self.outlier is None:
            return
        interval = self.outlier.config.interval
        self._timers = [self.rt.loop.call_later(interval, self._tick)]

    def _tick(self) -> None:
        if self.outlier is not None:
            events = self.outlier.tick(self.rt.loop.time())
            if events:
                self._on_outlier(events)
        self._schedule_tick()

    def retire(self) -> None:
        """No longer in the config: stop timers and DNS, drain every pool."""
        self.retired = True
        for t in self._timers:
            t.cancel()
        if self._dns_task is not None:
            self._dns_task.cancel()
        for info in (*self.info.values(), *self._odst.values()):
            for pool in info.pools.values():
                pool.drain()

    def all_hosts(self) -> list[HostInfo]:
        return [*self.info.values(), *self._odst.values()]

    def outlier_result(self, status: int | None, local: str | None = None):
        return local_result(local) if local else status


def local_result(kind: str):
    return {"connect": Result.LOCAL_ORIGIN_CONNECT_FAILED, "timeout": Result.LOCAL_ORIGIN_TIMEOUT,
            "reset": Result.EXT_ORIGIN_REQUEST_FAILED}.get(kind, Result.LOCAL_ORIGIN_CONNECT_FAILED)


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return True
    except OSError:
        return False


class ClusterManager:
    """Carries ClusterStates across snapshots; see the module docstring."""

    def __init__(self, rt: "Runtime") -> None:
        self.rt = rt
        self.states: dict[str, ClusterState] = {}

    def reconcile(self, snapshot: "Snapshot") -> dict[str, ClusterState]:
        raw = snapshot.resources.get(CLUSTER_TYPE_URL, {})
        out: dict[str, ClusterState] = {}
        for name, config in snapshot.clusters.items():
            proto = raw.get(name)
            old = self.states.get(name)
            if old is not None and (old.config is config or (proto is not None and old.proto == proto)):
                state = old
            else:
                state = ClusterState(config, proto, self.rt)
                state.start()
                if old is not None:
                    old.retire()
            state.snapshot_secrets = snapshot.secrets
            state.set_endpoints(snapshot.endpoints_for(state.config))
            out[name] = state
        for name, old in self.states.items():
            if name not in out:
                old.retire()
        self.states = out
        return out

    def stop(self) -> None:
        for state in self.states.values():
            state.retire()
