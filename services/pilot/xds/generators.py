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


def _wildcard(fn: WildcardFn) -> Callable[[Proxy, PushContext, frozenset[str] | None], Resources]:
    return lambda proxy, push, names: fn(proxy, push)


def _named(fn: NamedFn) -> Callable[[Proxy, PushContext, frozenset[str] | None], Resources]:
    return lambda proxy, push, names: fn(proxy, push, tuple(sorted(names or ())))


def generator_table(clusters: WildcardFn, endpoints: NamedFn, listeners: WildcardFn,
                    routes: NamedFn, secrets: NamedFn | None = None) -> Mapping[str, Generator]:
    table = {
        CLUSTER: Generator(CLUSTER, _wildcard(clusters)),
        ENDPOINT: Generator(ENDPOINT, _named(endpoints)),
        LISTENER: Generator(LISTENER, _wildcard(listeners)),
        ROUTE: Generator(ROUTE, _named(routes)),
    }
    if secrets is not None:
        table[SECRET] = Generator(SECRET, _named(secrets))
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
