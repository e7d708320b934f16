"""Pilot's view of config: a resumable watch on galley kept as an in-memory snapshot.

`GalleyConfigSource.run()` connects, takes the initial snapshot (until SYNCED), then
applies events; on every change it calls `on_change(snapshot, changed_keys)`. When
galley is away it keeps the last snapshot (pilot goes on serving it) and reconnects
with jittered backoff, resuming from the last revision; RESYNC starts over.
"""
from __future__ import annotations

import asyncio
import random
from typing import Awaitable, Callable

import grpc

from isthmus.galley.convert import from_proto
from isthmus.shared.config.resource import Resource, ResourceKey
from isthmus.shared.logging import get_logger
from isthmus.shared.protos import galley_pb2, galley_pb2_grpc

log = get_logger("pilot.config")
W = galley_pb2.WatchEvent

OnChange = Callable[[int, dict[ResourceKey, Resource], frozenset[ResourceKey]], Awaitable[None]]


class GalleyConfigSource:
    def __init__(self, address: str, on_change: OnChange, *, backoff_max: float = 5.0):
        self.address = address
        self.on_change = on_change
        self.backoff_max = backoff_max
        self.objects: dict[ResourceKey, Resource] = {}
        self.revision = 0
        self.synced = asyncio.Event()
        self.connected = False

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                async with grpc.aio.insecure_channel(self.address) as channel:
                    await self._watch(channel)
                attempt = 0
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                self.connected = False
                attempt += 1
                delay = min(self.backoff_max, 0.1 * 2 ** min(attempt, 6)) * (0.5 + random.random() / 2)
                log.warning("galley watch lost; serving last config", address=self.address, code=exc.code().name,
                            revision=self.revision, retry_in=round(delay, 2))
                await asyncio.sleep(delay)

    async def _watch(self, channel: grpc.aio.Channel) -> None:
        stub = galley_pb2_grpc.ConfigServiceStub(channel)
        call = stub.Watch(galley_pb2.WatchRequest(since_revision=self.revision))
        resuming = self.revision > 0
        pending: dict[ResourceKey, Resource] | None = None if resuming else {}
        changed: set[ResourceKey] = set()
        async for ev in call:
            if not self.connected:
                self.connected = True
                log.info("galley watch connected", address=self.address, since=self.revision)
            if ev.type == W.RESYNC:
                pending, changed = {}, set()
                continue
            if ev.type == W.SYNCED:
                snapshot = pending if pending is not None else self.objects
                changed = set(self.objects) ^ set(snapshot) | {k for k in snapshot if k in self.objects and self.objects[k] != snapshot[k]}
                self.objects = dict(snapshot)
                self.revision = ev.revision
                pending = None
                self.synced.set()
                await self.on_change(self.revision, self.objects, frozenset(changed))
                continue
            r = from_proto(ev.resource)
            target = pending if pending is not None else self.objects
            if ev.type == W.DELETED:
                target.pop(r.key, None)
            else:
                target[r.key] = r
            if pending is None:
                self.revision = ev.revision
                await self.on_change(self.revision, self.objects, frozenset({r.key}))
