"""Minimal HTTP/2 peers for tests (h2 over asyncio): a gRPC-style server that answers
with headers, a body and `grpc-status` trailers, and a prior-knowledge client."""
from __future__ import annotations

import asyncio

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, RequestReceived, ResponseReceived, StreamEnded, TrailersReceived

WAIT = 5.0


class GrpcServer:
    """Echoes the request body back, with `grpc-status: 0` (or `x-status` asked) in trailers."""

    def __init__(self) -> None:
        self.port = 0
        self.requests: list[dict] = []
        self._server = None

    async def start(self) -> "GrpcServer":
        self._server = await asyncio.get_running_loop().create_server(lambda: _ServerProto(self), "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()


class _ServerProto(asyncio.Protocol):
    def __init__(self, owner: GrpcServer) -> None:
        self.owner = owner
        self.conn = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        self.bodies: dict[int, bytes] = {}
        self.heads: dict[int, dict] = {}

    def connection_made(self, transport) -> None:
        self.t = transport
        self.conn.initiate_connection()
        self.t.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        for ev in self.conn.receive_data(data):
            if isinstance(ev, RequestReceived):
                self.heads[ev.stream_id] = dict(ev.headers)
                self.bodies[ev.stream_id] = b""
            elif isinstance(ev, DataReceived):
                self.bodies[ev.stream_id] += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, StreamEnded):
                self._respond(ev.stream_id)
        self.t.write(self.conn.data_to_send())

    def _respond(self, sid: int) -> None:
        head = self.heads[sid]
        self.owner.requests.append({"headers": head, "body": self.bodies[sid]})
        self.conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
        self.conn.send_data(sid, self.bodies[sid])
        self.conn.send_headers(sid, [("grpc-status", head.get("x-status", "0")), ("grpc-message", "fine")], end_stream=True)


class H2Client:
    """Prior-knowledge HTTP/2 client; concurrent `request()`s return (headers, body, trailers)."""

    def __init__(self, reader, writer) -> None:
        self.reader, self.writer = reader, writer
        self.conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
        self.streams: dict[int, dict] = {}
        self.task = None

    @classmethod
    async def connect(cls, port: int) -> "H2Client":
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), WAIT)
        c = cls(r, w)
        c.conn.initiate_connection()
        w.write(c.conn.data_to_send())
        c.task = asyncio.create_task(c._read())
        return c

    async def _read(self) -> None:
        try:
            while chunk := await self.reader.read(65536):
                for ev in self.conn.receive_data(chunk):
                    st = self.streams.get(getattr(ev, "stream_id", None))
                    if st is None:
                        continue
                    if isinstance(ev, ResponseReceived):
                        st["head"].update(dict(ev.headers))
                    elif isinstance(ev, DataReceived):
                        st["body"] += ev.data
                        self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, TrailersReceived):
                        st["trailers"].update(dict(ev.headers))
                    elif isinstance(ev, StreamEnded):
                        st["done"].set_result(None)
                self.writer.write(self.conn.data_to_send())
        finally:
            for st in self.streams.values():
                if not st["done"].done():
                    st["done"].set_exception(ConnectionError("closed"))

    async def request(self, method: str, authority: str, path: str, headers: list, body: bytes = b"") -> tuple[dict, bytes, dict]:
        sid = self.conn.get_next_available_stream_id()
        st = self.streams[sid] = {"head": {}, "body": b"", "trailers": {}, "done": asyncio.get_running_loop().create_future()}
        self.conn.send_headers(sid, [(":method", method), (":scheme", "http"), (":authority", authority), (":path", path),
                                     *headers], end_stream=not body)
        if body:
            self.conn.send_data(sid, body, end_stream=True)
        self.writer.write(self.conn.data_to_send())
        await asyncio.wait_for(st["done"], WAIT)
        return st["head"], st["body"], st["trailers"]

    async def close(self) -> None:
        self.writer.close()
        if self.task is not None:
            self.task.cancel()
