"""Client codec ↔ server codec in memory: what one writes, the other reads back."""
from __future__ import annotations

import pytest

from isthmus.proxy.protocol import (Data, Http1ClientConnection, Http1ServerConnection,
                                    RequestHead, ResponseHead, Trailers)
from isthmus.proxy.protocol.headers import strip_hop_by_hop

from .wire import feed, merged


@pytest.mark.parametrize("piece", [None, 1, 7])
def test_request_response_round_trip(piece):
    client, server = Http1ClientConnection(), Http1ServerConnection()
    wire = client.send_request(b"POST", b"/api?q=1", b"svc:8080",
                               [(b"content-type", b"application/json")], b'{"a":1}',
                               stream_id=1)
    events = merged(feed(server, wire, piece))
    head = events[0]
    assert (head.method, head.target, head.authority) == (b"POST", b"/api?q=1", b"svc:8080")
    assert events[1] == Data(1, b'{"a":1}', True)
    back = server.send_response_head_and_body(201, [(b"location", b"/api/1")], b"created")
    events = merged(feed(client, back, piece))
    assert events[0].status == 201 and (b"location", b"/api/1") in events[0].headers
    assert events[1] == Data(1, b"created", True)
    assert client.reusable and not server.must_close


def test_streamed_chunked_both_ways_with_trailers():
    client, server = Http1ClientConnection(), Http1ServerConnection()
    wire = client.send(RequestHead(1, b"POST", b"/stream", b"h", []))
    for piece in (b"a", b"bc", b"def"):
        wire += client.send(Data(1, piece))
    wire += client.send(Trailers(1, [(b"x-done", b"yes")]))
    events = merged(server.receive_data(wire))
    assert events[1:] == [Data(1, b"abcdef"), Trailers(1, [(b"x-done", b"yes")])]
    back = server.send(ResponseHead(1, 200, [(b"content-type", b"application/grpc")]))
    back += server.send(Data(1, b"\x00\x00\x00\x00\x01z"))
    back += server.send(Trailers(1, [(b"grpc-status", b"0")]))
    events = merged(client.receive_data(back))
    assert events[0].chunked
    assert events[1:] == [Data(1, b"\x00\x00\x00\x00\x01z"), Trailers(1, [(b"grpc-status", b"0")])]


def test_pipelined_keep_alive_exchange():
    client, server = Http1ClientConnection(), Http1ServerConnection()
    wire = b"".join(client.send_request(b"GET", b"/%d" % i, b"h", [], stream_id=i)
                    for i in range(1, 6))
    heads = [e for e in server.receive_data(wire) if isinstance(e, RequestHead)]
    assert [h.target for h in heads] == [b"/1", b"/2", b"/3", b"/4", b"/5"]
    back = b"".join(server.send_response_head_and_body(200, [], h.target) for h in heads)
    datas = [e for e in client.receive_data(back) if isinstance(e, Data)]
    assert [(d.stream_id, d.data) for d in datas] == [(i, b"/%d" % i) for i in range(1, 6)]
    assert client.reusable


def test_proxy_path_downstream_to_upstream():
    """The runtime's loop in miniature: downstream server → filters → upstream client."""
    down, up = Http1ServerConnection(), Http1ClientConnection()
    [req] = down.receive_data(b"GET http://reviews:9080/reviews/0 HTTP/1.1\r\n"
                              b"Host: reviews:9080\r\nConnection: keep-alive, X-Secret\r\n"
                              b"X-Secret: s\r\nProxy-Connection: keep-alive\r\n\r\n")
    req.headers = strip_hop_by_hop(req.headers)
    upstream_wire = up.send(req)
    assert upstream_wire == (b"GET /reviews/0 HTTP/1.1\r\nhost: reviews:9080\r\n\r\n")
    events = up.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: timeout=5\r\n\r\nok")
    resp = events[0]
    downstream_wire = down.send(ResponseHead(req.stream_id, resp.status,
                                             strip_hop_by_hop(resp.headers)))
    downstream_wire += down.send(events[1])
    assert downstream_wire == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def test_websocket_through_both_codecs():
    client, server = Http1ClientConnection(), Http1ServerConnection()
    wire = client.send_request(b"GET", b"/chat", b"h", [(b"sec-websocket-key", b"k")],
                               upgrade=b"websocket")
    [head] = server.receive_data(wire)
    assert head.upgrade == b"websocket"
    back = server.send(ResponseHead(1, 101, [(b"sec-websocket-accept", b"a")]))
    back += server.send(Data(1, b"\x81\x01x"))
    events = client.receive_data(back)
    assert events[0].status == 101 and events[1] == Data(1, b"\x81\x01x")
    assert server.receive_data(client.send(Data(1, b"\x81\x01y"))) == [Data(1, b"\x81\x01y")]


def test_http10_client_style_exchange():
    server = Http1ServerConnection()
    [req] = server.receive_data(b"GET / HTTP/1.0\r\nHost: h\r\n\r\n")
    out = server.send(ResponseHead(1, 200, [])) + server.send(Data(1, b"body", True))
    assert out == b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nbody"
    assert server.must_close
    client = Http1ClientConnection()
    client.send_request(b"GET", b"/", b"h", [])
    events = client.receive_data(out) + client.receive_data(b"")
    assert merged(events)[1] == Data(1, b"body", True)
