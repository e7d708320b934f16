"""Hosts of one cluster, built from EDS, with the state that must outlive EDS updates.

Contract: `HostSet(endpoints)` owns the `Host` objects of a cluster. `update(endpoints)`
applies a new EDS assignment: a host whose `address:port` was already present keeps its
object, and with it its counters, outlier monitor and ejection flag (as Envoy does);
its weight, metadata, locality, priority and EDS health are refreshed. Health flags
change only through `HostSet.set_health_flag`, so every change that alters what a
load balancer may pick bumps `version`; balancers rebuild their tables when it moves.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from .health import EDS_FLAGS, HealthFlag, HealthStatus, HostHealth, coarse_health, eds_flags

__all__ = ["Locality", "Endpoint", "Host", "PriorityHosts", "HostSetUpdate", "HostSet"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclasses.dataclass(frozen=True, slots=True)
class Locality:
    region: str = ""
    zone: str = ""
    sub_zone: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    """One `LbEndpoint` of an EDS `ClusterLoadAssignment`, as plain values."""

    address: str
    port: int
    weight: int = 1
    health_status: HealthStatus | int = HealthStatus.UNKNOWN
    metadata: Mapping[str, Any] = dataclasses.field(default=None)  # type: ignore[assignment]
    # filter_metadata: namespace → struct
    locality: Locality = Locality()
    priority: int = 0
    hostname: str = ""

    def __post_init__(self) -> None:
        if self.metadata is None:
            object.__setattr__(self, "metadata", _EMPTY)
        if self.weight < 1:
            raise ValueError(f"endpoint {self.address}:{self.port}: weight must be >= 1 (got {self.weight})")
        if self.priority < 0:
            raise ValueError(f"endpoint {self.address}:{self.port}: priority must be >= 0 (got {self.priority})")


def _address_string(address: str, port: int) -> str:
    """Envoy's `Address::asString()`: `ip:port`, IPv6 in brackets."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class Host:
    """A live upstream host. Identity is the object; `HostSet` keys it by `address:port`.

    Read freely; only `HostSet` changes configuration and health, and only the
    connection pool changes the request/connection counters.
    """

    __slots__ = (
        "_address", "_port", "_key", "_weight", "_metadata", "_locality", "_priority",
        "_hostname", "_flags", "_active_requests", "_connections", "__weakref__",
    )

    def __init__(self, endpoint: Endpoint) -> None:
        self._address = endpoint.address
        self._port = endpoint.port
        self._key = _address_string(endpoint.address, endpoint.port)
        self._flags = HealthFlag.NONE
        self._active_requests = 0
        self._connections = 0
        self._apply(endpoint)

    def _apply(self, endpoint: Endpoint) -> None:
        self._weight = endpoint.weight
        self._metadata = MappingProxyType(dict(endpoint.metadata))
        self._locality = endpoint.locality
        self._priority = endpoint.priority
        self._hostname = endpoint.hostname
        self._flags = (self._flags & ~EDS_FLAGS) | eds_flags(endpoint.health_status)

    # -- configuration (from EDS) -------------------------------------------------
    @property
    def address(self) -> str:
        return self._address

    @property
    def port(self) -> int:
        return self._port

    @property
    def address_string(self) -> str:
        """`ip:port` (`[ip6]:port`), the key Envoy hashes hosts by."""
        return self._key

    @property
    def weight(self) -> int:
        return self._weight

    @property
    def metadata(self) -> Mapping[str, Any]:
        return self._metadata

    @property
    def locality(self) -> Locality:
        return self._locality

    @property
    def priority(self) -> int:
        return self._priority

    @property
    def hostname(self) -> str:
        return self._hostname

    def hash_key(self, use_hostname: bool = False) -> str:
        """What consistent hashing places on the ring/table for this host.

        `filter_metadata["envoy.lb"]["hash_key"]` wins, then the hostname when
        `use_hostname` (and one is set), else the address string — Envoy's order.
        """
        lb = self._metadata.get("envoy.lb")
        if isinstance(lb, Mapping):
            key = lb.get("hash_key")
            if isinstance(key, str) and key:
                return key
        if use_hostname and self._hostname:
            return self._hostname
        return self._key

    # -- health ---------------------------------------------------------------------
    @property
    def health_flags(self) -> HealthFlag:
        return self._flags

    @property
    def health(self) -> HostHealth:
        return coarse_health(self._flags)

    @property
    def ejected(self) -> bool:
        return bool(self._flags & HealthFlag.FAILED_OUTLIER_CHECK)

    # -- load (the pool keeps these) ----------------------------------------------------
    @property
    def active_requests(self) -> int:
        return self._active_requests

    @property
    def connections(self) -> int:
        return self._connections

    def request_started(self) -> None:
        self._active_requests += 1

    def request_finished(self) -> None:
        if self._active_requests > 0:
            self._active_requests -= 1

    def connection_opened(self) -> None:
        self._connections += 1

    def connection_closed(self) -> None:
        if self._connections > 0:
            self._connections -= 1

    def __repr__(self) -> str:
        return f"Host({self._key} w={self._weight} p={self._priority} {self.health.value})"


@dataclasses.dataclass(frozen=True, slots=True)
class PriorityHosts:
    """The hosts of one priority level, split by coarse health (EDS order kept)."""

    priority: int
    hosts: tuple[Host, ...]
    healthy: tuple[Host, ...]
    degraded: tuple[Host, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class HostSetUpdate:
    added: tuple[Host, ...]
    removed: tuple[Host, ...]


class HostSet:
    """All hosts of one cluster, grouped by priority; see the module docstring."""

    def __init__(self, endpoints: Iterable[Endpoint] = (), *, overprovisioning_factor: int = 140) -> None:
        if overprovisioning_factor < 1:
            raise ValueError(f"overprovisioning_factor must be >= 1 (got {overprovisioning_factor})")
        self.overprovisioning_factor = overprovisioning_factor
        self._by_key: dict[str, Host] = {}
        self._hosts: tuple[Host, ...] = ()
        self._priorities: tuple[PriorityHosts, ...] = ()
        self.version = 0
        self.membership_version = 0
        self.update(endpoints)

    def update(self, endpoints: Iterable[Endpoint]) -> HostSetUpdate:
        """Apply an EDS assignment; returns the hosts added and removed."""
        before = self._signature()
        new: dict[str, Host] = {}
        added: list[Host] = []
        for ep in endpoints:
            key = _address_string(ep.address, ep.port)
            if key in new:  # duplicate address in one assignment: first one wins
                continue
            host = self._by_key.get(key)
            if host is None:
                host = Host(ep)
                added.append(host)
            else:
                host._apply(ep)
            new[key] = host
        removed = tuple(h for k, h in self._by_key.items() if k not in new)
        self._by_key = new
        self._hosts = tuple(new.values())
        if added or removed:
            self.membership_version += 1
        if self._signature() != before:  # an identical EDS push leaves balancers' tables alone
            self._regroup()
        return HostSetUpdate(tuple(added), removed)

    def _signature(self) -> tuple:
        return tuple((h._key, h._weight, h._priority, h._flags, h._hostname, h.hash_key()) for h in self._hosts)

    def set_health_flag(self, host: Host, flag: HealthFlag, on: bool) -> bool:
        """Set or clear one health flag; True if the host's flags changed."""
        before = host._flags
        host._flags = (before | flag) if on else (before & ~flag)
        if host._flags == before:
            return False
        if self._by_key.get(host._key) is host:
            self._regroup()
        return True

    def _regroup(self) -> None:
        levels: dict[int, tuple[list[Host], list[Host], list[Host]]] = {}
        for host in self._hosts:
            all_, healthy, degraded = levels.setdefault(host._priority, ([], [], []))
            all_.append(host)
            health = coarse_health(host._flags)
            if health is HostHealth.HEALTHY:
                healthy.append(host)
            elif health is HostHealth.DEGRADED:
                degraded.append(host)
        top = max(levels, default=-1)
        self._priorities = tuple(
            PriorityHosts(p, *(tuple(x) for x in levels.get(p, ([], [], []))))
            for p in range(top + 1)
        )
        self.version += 1

    # -- reading ------------------------------------------------------------------------
    @property
    def hosts(self) -> tuple[Host, ...]:
        return self._hosts

    @property
    def priorities(self) -> tuple[PriorityHosts, ...]:
        """One entry per level 0..max (a level with no hosts is empty, not missing)."""
        return self._priorities

    def get(self, address: str, port: int) -> Host | None:
        return self._by_key.get(_address_string(address, port))

    def __contains__(self, host: object) -> bool:
        return isinstance(host, Host) and self._by_key.get(host._key) is host

    def __len__(self) -> int:
        return len(self._hosts)

    def __iter__(self) -> Iterator[Host]:
        return iter(self._hosts)

    def __repr__(self) -> str:
        healthy = sum(len(p.healthy) for p in self._priorities)
        return f"HostSet({len(self._hosts)} hosts, {healthy} healthy, {len(self._priorities)} priorities)"
