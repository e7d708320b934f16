"""Galley's config API (gRPC): validate, store atomically, serve, stream changes.

A thin shell: validation is `isthmus.shared.config.validation`, storage is any
`ConfigStore`. Apply stores all resources of a request in one batch or none.
"""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from isthmus.galley.convert import to_document, to_proto
from isthmus.shared.config.kinds import by_kind, resolve_kind
from isthmus.shared.config.resource import Resource, ResourceKey
from isthmus.shared.config.validation import validate_document
from isthmus.shared.errors import AlreadyExists, Conflict, NotFound, ResyncRequired, StoreUnavailable
from isthmus.shared.logging import get_logger
from isthmus.shared.protos import galley_pb2, galley_pb2_grpc
from isthmus.shared.store.base import Action, ConfigStore, EventType, Op

log = get_logger("galley")

_EVENT_TYPES = {
    EventType.ADDED: galley_pb2.WatchEvent.ADDED,
    EventType.MODIFIED: galley_pb2.WatchEvent.MODIFIED,
    EventType.DELETED: galley_pb2.WatchEvent.DELETED,
}


class GalleyMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.applies = Counter("galley_applies", "Apply requests by result", ["result"], registry=registry)
        self.objects = Counter("galley_objects_written", "Objects written by kind and action", ["kind", "action"], registry=registry)
        self.rejections = Counter("galley_validation_rejections", "Resources rejected by validation, by kind", ["kind"], registry=registry)
        self.watchers = Gauge("galley_watchers", "Open watch streams", registry=registry)
        self.store_latency = Histogram(
            "galley_store_latency_seconds", "Store operation latency", ["op"], registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )


class _Timer:
    def __init__(self, hist: Histogram, op: str):
        self.hist, self.op = hist, op

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.hist.labels(self.op).observe(time.perf_counter() - self.start)


def _kind_or_abort(name: str) -> str:
    row = resolve_kind(name)
    return row.kind if row else ""


class ConfigService(galley_pb2_grpc.ConfigServiceServicer):
    def __init__(self, store: ConfigStore, metrics: GalleyMetrics, watch_backlog: int = 1000):
        self.store = store
        self.metrics = metrics
        self.watch_backlog = watch_backlog

    async def _store_call(self, context: grpc.aio.ServicerContext, op: str, coro):
        try:
            with _Timer(self.metrics.store_latency, op):
                return await coro
        except NotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except (Conflict,) as exc:
            await context.abort(grpc.StatusCode.ABORTED, f"{exc}; get the object again and reapply")
        except AlreadyExists as exc:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, str(exc))
        except StoreUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"config store unavailable: {exc}")

    async def Apply(self, request: galley_pb2.ApplyRequest, context: grpc.aio.ServicerContext) -> galley_pb2.ApplyResponse:
        if not request.resources:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no resources in the request")
        errors: list[str] = []
        warnings: list[str] = []
        valid: dict[ResourceKey, Resource] = {}
        for i, wire in enumerate(request.resources):
            try:
                doc = to_document(wire)
            except ValueError as exc:
                errors.append(f"resources[{i}] ({wire.kind} {wire.namespace}/{wire.name}): spec_json is not valid JSON: {exc}")
                continue
            outcome = validate_document(doc, default_namespace=wire.namespace or "default")
            warnings.extend(outcome.warnings)
            if outcome.errors:
                errors.extend(outcome.errors)
                self.metrics.rejections.labels(wire.kind if by_kind(wire.kind) else "unknown").inc()
            elif outcome.resource is not None:
                r = outcome.resource.with_meta(resource_version=wire.resource_version)
                valid[r.key] = r  # the last document for a key wins, as applying files in order
        if errors:
            self.metrics.applies.labels("invalid").inc()
            log.info("apply rejected", errors=len(errors))
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{len(errors)} validation error(s); nothing was stored:\n" + "\n".join(errors),
            )
        mode = request.mode or "apply"
        if mode not in ("apply", "create"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"mode: must be apply or create (got {mode!r})")
        ops = [Op.create(r) if mode == "create" else Op.upsert(r) for r in valid.values()]
        if request.dry_run:
            self.metrics.applies.labels("dry_run").inc()
            results = []
            for r in valid.values():
                current = await self._store_call(context, "get", self.store.get(r.key))
                action = "created" if current is None else ("unchanged" if current.same_content(r) else "configured")
                results.append(galley_pb2.ApplyResult(resource=to_proto(r), action=action))
            return galley_pb2.ApplyResponse(results=results, warnings=warnings, revision=await self.store.revision())
        result = await self._store_call(context, "apply", self.store.apply_batch(ops))
        self.metrics.applies.labels("ok").inc()
        for r, action in zip(result.resources, result.actions):
            self.metrics.objects.labels(r.kind, action.value).inc()
        log.info("applied", objects=len(ops), revision=result.revision,
                 changed=sum(a is not Action.UNCHANGED for a in result.actions))
        return galley_pb2.ApplyResponse(
            results=[galley_pb2.ApplyResult(resource=to_proto(r), action=a.value) for r, a in zip(result.resources, result.actions)],
            warnings=warnings,
            revision=result.revision,
        )

    async def Get(self, request: galley_pb2.GetRequest, context: grpc.aio.ServicerContext) -> galley_pb2.Resource:
        kind = _kind_or_abort(request.kind)
        if not kind:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown kind {request.kind!r}")
        key = ResourceKey(kind, request.namespace or "default", request.name)
        found = await self._store_call(context, "get", self.store.get(key))
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"{kind} {key.namespace}/{key.name} not found")
        return to_proto(found)

    async def List(self, request: galley_pb2.ListRequest, context: grpc.aio.ServicerContext) -> galley_pb2.ListResponse:
        kind = None
        if request.kind:
            kind = _kind_or_abort(request.kind)
            if not kind:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown kind {request.kind!r}")
        result = await self._store_call(context, "list", self.store.list(kind, request.namespace or None))
        return galley_pb2.ListResponse(resources=[to_proto(r) for r in result.items], revision=result.revision)

    async def Delete(self, request: galley_pb2.DeleteRequest, context: grpc.aio.ServicerContext) -> galley_pb2.DeleteResponse:
        kind = _kind_or_abort(request.kind)
        if not kind:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown kind {request.kind!r}")
        key = ResourceKey(kind, request.namespace or "default", request.name)
        gone = await self._store_call(context, "delete", self.store.delete(key, request.resource_version))
        log.info("deleted", kind=kind, namespace=key.namespace, name=key.name, revision=gone.revision)
        return galley_pb2.DeleteResponse(resource=to_proto(gone), revision=gone.revision)

    async def Watch(self, request: galley_pb2.WatchRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[galley_pb2.WatchEvent]:
        kinds = {_kind_or_abort(k) for k in request.kinds} or None
        if kinds and "" in kinds:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown kind in {list(request.kinds)}")
        self.metrics.watchers.inc()
        since = request.since_revision
        try:
            while True:
                if since <= 0:
                    listed = await self._store_call(context, "list", self.store.list())
                    for r in listed.items:
                        if kinds is None or r.kind in kinds:
                            yield galley_pb2.WatchEvent(type=galley_pb2.WatchEvent.ADDED, resource=to_proto(r), revision=r.revision)
                    since = listed.revision
                    yield galley_pb2.WatchEvent(type=galley_pb2.WatchEvent.SYNCED, revision=since)
                try:
                    async for ev in self.store.watch(since, kinds):
                        since = ev.revision
                        yield galley_pb2.WatchEvent(type=_EVENT_TYPES[ev.type], resource=to_proto(ev.resource), revision=ev.revision)
                    return
                except ResyncRequired as exc:
                    log.info("watcher resync", requested=exc.requested, compacted=exc.compacted)
                    yield galley_pb2.WatchEvent(type=galley_pb2.WatchEvent.RESYNC, revision=exc.compacted)
                    since = 0
                except StoreUnavailable as exc:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, f"config store unavailable: {exc}")
        except asyncio.CancelledError:
            raise
        finally:
            self.metrics.watchers.dec()
