"""Clients of galley's config API: a blocking one for the CLI, an async watch for pilot.

Transport errors become `GalleyError`s whose message names the address and the fix.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator, Sequence

import grpc

from isthmus.galley.convert import from_proto
from isthmus.shared.config.resource import Resource
from isthmus.shared.errors import IsthmusError
from isthmus.shared.protos import galley_pb2, galley_pb2_grpc

MAX_MESSAGE = 4 * 1024 * 1024


class GalleyError(IsthmusError):
    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class ApplyOutcome:
    results: tuple[tuple[Resource, str], ...]  # (stored resource, created|configured|unchanged)
    warnings: tuple[str, ...]
    revision: int


def _translate(exc: grpc.RpcError, address: str) -> GalleyError:
    code = exc.code()
    detail = exc.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        return GalleyError(
            f"cannot reach galley at {address}: {detail or 'unavailable'}. "
            "Start the mesh with `isthmus up` (or `isthmus galley`), or point --galley / $ISTHMUS_GALLEY at it.",
            code,
        )
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return GalleyError(f"galley refused the request as too large ({detail}); apply fewer files at a time", code)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return GalleyError(f"galley at {address} did not answer in time", code)
    return GalleyError(detail or code.name, code)


class GalleyClient:
    """Blocking client (CLI)."""

    def __init__(self, address: str, timeout: float = 15.0):
        self.address = address
        self.timeout = timeout
        self._channel = grpc.insecure_channel(
            address,
            options=[("grpc.max_send_message_length", 64 * 1024 * 1024), ("grpc.max_receive_message_length", 64 * 1024 * 1024)],
        )
        self._stub = galley_pb2_grpc.ConfigServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "GalleyClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _translate(exc, self.address) from None

    def apply(self, resources: Sequence[galley_pb2.Resource], dry_run: bool = False, mode: str = "apply") -> ApplyOutcome:
        request = galley_pb2.ApplyRequest(resources=list(resources), dry_run=dry_run, mode=mode)
        size = request.ByteSize()
        if size > MAX_MESSAGE:
            raise GalleyError(
                f"this apply is {size / 1048576:.1f} MiB; galley accepts at most 4 MiB per request: "
                "split the files into several applies"
            )
        resp = self._call(self._stub.Apply, request)
        return ApplyOutcome(
            results=tuple((from_proto(r.resource), r.action) for r in resp.results),
            warnings=tuple(resp.warnings),
            revision=resp.revision,
        )

    def get(self, kind: str, namespace: str, name: str) -> Resource:
        return from_proto(self._call(self._stub.Get, galley_pb2.GetRequest(kind=kind, namespace=namespace, name=name)))

    def list(self, kind: str = "", namespace: str = "") -> tuple[list[Resource], int]:
        resp = self._call(self._stub.List, galley_pb2.ListRequest(kind=kind, namespace=namespace))
        return [from_proto(r) for r in resp.resources], resp.revision

    def delete(self, kind: str, namespace: str, name: str, resource_version: str = "") -> Resource:
        resp = self._call(
            self._stub.Delete,
            galley_pb2.DeleteRequest(kind=kind, namespace=namespace, name=name, resource_version=resource_version),
        )
        return from_proto(resp.resource)


async def watch(
    channel: grpc.aio.Channel, since_revision: int = 0, kinds: Sequence[str] = ()
) -> AsyncIterator[galley_pb2.WatchEvent]:
    """Stream galley's watch events (async); the caller handles reconnection."""
    stub = galley_pb2_grpc.ConfigServiceStub(channel)
    call = stub.Watch(galley_pb2.WatchRequest(since_revision=since_revision, kinds=list(kinds)))
    try:
        async for event in call:
            yield event
    finally:
        call.cancel()


class AsyncGalleyClient:
    """asyncio client (pilot's auto-registration writes WorkloadEntries through galley)."""

    def __init__(self, address: str, timeout: float = 10.0):
        self.address = address
        self.timeout = timeout
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = galley_pb2_grpc.ConfigServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def apply(self, resources: Sequence[galley_pb2.Resource]) -> ApplyOutcome:
        try:
            resp = await self._stub.Apply(galley_pb2.ApplyRequest(resources=list(resources)), timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc, self.address) from None
        return ApplyOutcome(
            results=tuple((from_proto(r.resource), r.action) for r in resp.results),
            warnings=tuple(resp.warnings),
            revision=resp.revision,
        )

    async def delete(self, kind: str, namespace: str, name: str, resource_version: str = "") -> Resource:
        try:
            resp = await self._stub.Delete(
                galley_pb2.DeleteRequest(kind=kind, namespace=namespace, name=name, resource_version=resource_version),
                timeout=self.timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc, self.address) from None
        return from_proto(resp.resource)
