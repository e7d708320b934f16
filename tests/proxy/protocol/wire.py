"""In-memory wiring for codec tests (like h11's tests/helpers.py): no sockets, bytes
are handed from one endpoint to the other, optionally in small pieces."""
from __future__ import annotations

from isthmus.proxy.protocol import (Data, Event, Http2ClientConnection,
                                    Http2ServerConnection)


def feed(conn, data: bytes, piece: int | None = None) -> list[Event]:
    """All events from ``data`` fed whole, or ``piece`` bytes at a time."""
    if piece is None:
        return conn.receive_data(data)
    events: list[Event] = []
    for i in range(0, len(data), piece):
        events += conn.receive_data(data[i:i + piece])
    return events


def body_of(events: list[Event], stream_id: int | None = None) -> bytes:
    return b"".join(e.data for e in events
                    if isinstance(e, Data) and (stream_id is None or e.stream_id == stream_id))


def merged(events: list[Event]) -> list[Event]:
    """Events with consecutive Data of one stream joined (piece-size independent)."""
    out: list[Event] = []
    for e in events:
        if (isinstance(e, Data) and out and isinstance(out[-1], Data)
                and out[-1].stream_id == e.stream_id and not out[-1].end_stream):
            out[-1] = Data(e.stream_id, out[-1].data + e.data, e.end_stream)
        else:
            out.append(e)
    return [e for e in out if not (isinstance(e, Data) and not e.data and not e.end_stream)]


class H2Pair:
    """An HTTP/2 client and server joined back to back; `pump()` moves bytes both
    ways until quiet and returns (client_events, server_events)."""

    def __init__(self, client: Http2ClientConnection | None = None,
                 server: Http2ServerConnection | None = None) -> None:
        self.client = client or Http2ClientConnection()
        self.server = server or Http2ServerConnection()
        self._to_server = b""
        self._to_client = b""
        self.pump()

    def client_sends(self, event: Event) -> None:
        """``client.send(event)``, its bytes delivered by the next `pump()`."""
        self._to_server += self.client.send(event)

    def server_sends(self, event: Event) -> None:
        self._to_client += self.server.send(event)

    def pump(self) -> tuple[list[Event], list[Event]]:
        client_events: list[Event] = []
        server_events: list[Event] = []
        while True:
            to_server = self._to_server + self.client.data_to_send()
            to_client = self._to_client + self.server.data_to_send()
            self._to_server = self._to_client = b""
            if not to_server and not to_client:
                return client_events, server_events
            if to_server:
                server_events += self.server.receive_data(to_server)
            if to_client:
                client_events += self.client.receive_data(to_client)
