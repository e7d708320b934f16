"""Small builders and bounded watch readers for the store tests."""
from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, AsyncIterator

from isthmus.shared.config.resource import Meta, Resource
from isthmus.shared.store.base import WatchEvent


def vs(name: str, namespace: str = "default", hosts: tuple[str, ...] = ("reviews",), **labels: str) -> Resource:
    return Resource(
        kind="VirtualService",
        api_version="networking.istio.io/v1",
        meta=Meta(name=name, namespace=namespace, labels=labels),
        spec={"hosts": list(hosts), "http": [{"route": [{"destination": {"host": hosts[0]}}]}]},
    )


def dr(name: str, namespace: str = "default", host: str = "reviews") -> Resource:
    return Resource(
        kind="DestinationRule",
        api_version="networking.istio.io/v1",
        meta=Meta(name=name, namespace=namespace),
        spec={"host": host},
    )


def with_spec(resource: Resource, **spec: Any) -> Resource:
    return replace(resource, spec={**resource.spec, **spec})


async def take(events: AsyncIterator[WatchEvent], count: int, timeout: float = 10.0) -> list[WatchEvent]:
    """The next `count` events, or fail after `timeout` seconds."""
    out: list[WatchEvent] = []
    async with asyncio.timeout(timeout):
        while len(out) < count:
            out.append(await anext(events))
    return out


async def nothing_more(events: AsyncIterator[WatchEvent], wait: float = 0.3) -> bool:
    """True when no event arrives within `wait` seconds (the generator is then closed)."""
    try:
        await asyncio.wait_for(anext(events), wait)
    except asyncio.TimeoutError:
        return True
    return False


def summary(events: list[WatchEvent]) -> list[tuple[str, str, int]]:
    return [(e.type.value, e.resource.name, e.revision) for e in events]
