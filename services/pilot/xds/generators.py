"""The one place type URLs meet generators: CDS, EDS, LDS, RDS, SDS → the pure translators.

`generator_table(clusters, endpoints, listeners, routes, secrets=None)` binds functions
with the translators' signatures to their type URLs; `default_generators()` binds
`isthmus.pilot.translate.{clusters,endpoints,listeners,routes,secrets}`, imported on
first use (SDS here is only `kubernetes://` credentials for gateways; the workload
certificate comes from the agent). Tests pass their own functions to `generator_table`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from google.protobuf.message import Message

from isthmus.pilot.model.proxy import Proxy
from isthmus.pilot.model.push_context import PushContext
from isthmus.pilot.xds.typeurls import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET

Resources = Sequence[Message]
WildcardFn = Callable[[Proxy, PushContext], Resources]  # build_clusters, build_listeners
NamedFn = Callable[[Proxy, PushContext, Sequence[str]], Resources]  # build_endpoints, build_routes, build_secrets


@dataclass(frozen=True)
class Generator:
    """Resources of one type for one proxy: names is None for "all" (wildcard types)."""

    type_url: str
    generate: Callable[[Proxy, PushContext, frozenset[str] | None], Resources]


def config_key(proxy: Proxy, addresses: bool = True) -> tuple:
    """Everything about a proxy the translators read. Proxies with equal keys get
    identical resources from one PushContext (the node id, workload name, version and
    proven identity never change the generated config). Only listeners depend on the
    proxy's own addresses and capture ports (`addresses=False` for clusters/routes)."""
    key = (
        proxy.type, proxy.namespace, tuple(sorted(proxy.labels.items())), proxy.capture_mode, proxy.ports,
        proxy.cluster, tuple(sorted(proxy.gateway_port_map.items())), proxy.gateway_bind,
    )
    if addresses:
        key += (proxy.ip_addresses, proxy.outbound_port, proxy.inbound_port, proxy.service_account, proxy.workload_group)
    return key


class PushMemo:
    """Generated resources of the current push, shared between proxies that would get
    the same ones (equal `config_key`; for EDS: the same namespace and cluster). A new
    PushContext starts a new memo, so nothing stale is ever served."""

    def __init__(self) -> None:
        self._push: PushContext | None = None  # held, so its identity cannot be reused
        self._entries: dict = {}

    def get(self, push: PushContext, key: tuple, build: Callable[[], Any]) -> Any:
        if push is not self._push:
            self._push, self._entries = push, {}
        try:
            return self._entries[key]
        except KeyError:
            value = self._entries[key] = build()
            return value


def _wildcard(fn: WildcardFn, memo: PushMemo, addresses: bool = True) -> Callable[[Proxy, PushContext, frozenset[str] | None], Resources]:
    def generate(proxy: Proxy, push: PushContext, names: frozenset[str] | None) -> Resources:
        return memo.get(push, (fn, config_key(proxy, addresses)), lambda: fn(proxy, push))

    return generate


def _named(fn: NamedFn, memo: PushMemo, addresses: bool = True) -> Callable[[Proxy, PushContext, frozenset[str] | None], Resources]:
    def generate(proxy: Proxy, push: PushContext, names: frozenset[str] | None) -> Resources:
        wanted = tuple(sorted(names or ()))
        return memo.get(push, (fn, config_key(proxy, addresses), wanted), lambda: fn(proxy, push, wanted))

    return generate


def _per_name(fn: NamedFn, memo: PushMemo) -> Callable[[Proxy, PushContext, frozenset[str] | None], Resources]:
    """EDS: one ClusterLoadAssignment per cluster name, shared by every proxy of a namespace."""
    def generate(proxy: Proxy, push: PushContext, names: frozenset[str] | None) -> Resources:
        out: list = []
        for name in sorted(names or ()):
            out.extend(memo.get(push, (fn, proxy.namespace, name), lambda name=name: fn(proxy, push, (name,))))
        return out

    return generate


def generator_table(clusters: WildcardFn, endpoints: NamedFn, listeners: WildcardFn,
                    routes: NamedFn, secrets: NamedFn | None = None) -> Mapping[str, Generator]:
    memo = PushMemo()
    table = {
        CLUSTER: Generator(CLUSTER, _wildcard(clusters, memo, addresses=False)),
        ENDPOINT: Generator(ENDPOINT, _per_name(endpoints, memo)),
        LISTENER: Generator(LISTENER, _wildcard(listeners, memo)),
        ROUTE: Generator(ROUTE, _named(routes, memo, addresses=False)),
    }
    if secrets is not None:
        table[SECRET] = Generator(SECRET, _named(secrets, memo))
    return table


def _lazy(module: str, function: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        return getattr(importlib.import_module(f"isthmus.pilot.translate.{module}"), function)(*args)

    call.__name__ = f"{module}.{function}"
    return call


def default_generators() -> Mapping[str, Generator]:
    return generator_table(
        clusters=_lazy("clusters", "build_clusters"),
        endpoints=_lazy("endpoints", "build_endpoints"),
        listeners=_lazy("listeners", "build_listeners"),
        routes=_lazy("routes", "build_routes"),
        secrets=_lazy("secrets", "build_secrets"),
    )
