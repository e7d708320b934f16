"""Micro-benchmark of the sans-IO codecs: parse + serialize of a typical small
request/response, in operations per second (plain perf_counter loops).

    .venv/bin/python bench/codec_bench.py [--seconds 1.0]

Rows: each codec step alone, then a whole proxied exchange over HTTP/1.1 (server
parses the request, client writes it upstream, client parses the response,
server writes it downstream), and an HTTP/2 exchange (our client and server codecs:
request HEADERS, response HEADERS + DATA, WINDOW_UPDATEs).
"""
from __future__ import annotations

import argparse
import time

from isthmus.proxy.protocol import (Data, Http1ClientConnection, Http1ServerConnection,
                                    Http2ClientConnection, Http2ServerConnection,
                                    RequestHead, ResponseHead)

REQUEST = (b"GET /productpage?u=normal HTTP/1.1\r\n"
           b"Host: productpage.default.svc.cluster.local:9080\r\n"
           b"User-Agent: curl/8.5.0\r\nAccept: */*\r\n"
           b"X-Request-Id: 6f1c2a5e-8d3b-4b1e-9c1a-2f0e5d7a9b31\r\n"
           b"X-B3-TraceId: 80f198ee56343ba864fe8b2a57d3eff7\r\n"
           b"X-B3-SpanId: e457b5a2e4d86bd1\r\n\r\n")
BODY = b'{"id": 0, "reviews": [{"reviewer": "Reviewer1"}]}'
RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"date: Mon, 01 Jan 2024 00:00:00 GMT\r\nserver: istio-envoy\r\n"
            b"x-envoy-upstream-service-time: 3\r\ncontent-length: %d\r\n\r\n%s"
            % (len(BODY), BODY))
RESP_HEADERS = [(b"content-type", b"application/json"),
                (b"date", b"Mon, 01 Jan 2024 00:00:00 GMT"), (b"server", b"istio-envoy"),
                (b"x-envoy-upstream-service-time", b"3")]


def measure(name: str, step, seconds: float) -> float:
    step()  # warm up
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(500):
            step()
        n += 500
        now = time.perf_counter()
        if now >= deadline:
            break
    rate = n / (now - start)
    print(f"{name:<44} {rate:>12,.0f} /s   {1e6 / rate:7.2f} us")
    return rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.0)
    seconds = ap.parse_args().seconds

    server = Http1ServerConnection()
    head: RequestHead = server.receive_data(REQUEST)[0]  # type: ignore[assignment]
    server.send_response_head_and_body(200, RESP_HEADERS, BODY)

    assert server.receive_data(REQUEST)[0].__class__ is RequestHead
    server._pending.clear()

    def h1_parse_request():
        server.receive_data(REQUEST)
        server._pending.clear()  # no response: keep the queue empty

    def h1_serialize_response():
        server._pending.append((1, False, True, False, None))
        server.send_response_head_and_body(200, RESP_HEADERS, BODY)

    client = Http1ClientConnection()

    def h1_serialize_request():
        client.send(head)
        client._pending.clear()

    def h1_parse_response():
        client._pending.append((1, 0))
        client.receive_data(RESPONSE)

    client._pending.append((1, 0))
    assert len(client.receive_data(RESPONSE)) == 2, "response did not parse"

    down, up = Http1ServerConnection(), Http1ClientConnection()

    def h1_proxied_exchange():
        for ev in down.receive_data(REQUEST):
            if ev.__class__ is RequestHead:
                up.send(ev)
        for ev in up.receive_data(RESPONSE):
            if ev.__class__ is ResponseHead:
                resp = ev
            elif ev.__class__ is Data:
                down.send_response_head_and_body(resp.status, resp.headers, ev.data)

    h2c, h2s = Http2ClientConnection(), Http2ServerConnection()
    h2s.receive_data(h2c.data_to_send())
    h2c.receive_data(h2s.data_to_send())
    req_headers = [(b"user-agent", b"grpc-python/1.60"), (b"accept", b"*/*"),
                   (b"x-request-id", b"6f1c2a5e-8d3b-4b1e-9c1a-2f0e5d7a9b31")]

    def h2_exchange():
        sid = h2c.send_request(b"GET", b"/productpage", b"productpage:9080", req_headers,
                               end_stream=True)
        h2s.receive_data(h2c.data_to_send())
        out = h2s.send_response_head_and_body(sid, 200, RESP_HEADERS, BODY)
        for ev in h2c.receive_data(out):
            if ev.__class__ is Data:
                h2c.acknowledge_received_data(sid, len(ev.data))
        acks = h2c.data_to_send()
        if acks:  # receive_data(b"") would mean the peer closed
            h2s.receive_data(acks)

    print(f"request {len(REQUEST)} B, response {len(RESPONSE)} B, {seconds:.1f} s per row")
    measure("HTTP/1.1 server: parse request", h1_parse_request, seconds)
    measure("HTTP/1.1 server: serialize response", h1_serialize_response, seconds)
    measure("HTTP/1.1 client: serialize request", h1_serialize_request, seconds)
    measure("HTTP/1.1 client: parse response", h1_parse_response, seconds)
    measure("HTTP/1.1 proxied exchange (all four)", h1_proxied_exchange, seconds)
    measure("HTTP/2 exchange (client + server)", h2_exchange, seconds)


if __name__ == "__main__":
    main()
