"""Tiny test backends on loopback: each answers with its name and what it received.

`Backend(name, fail_first=N, status=...)` can fail on purpose so retries and outlier
detection are observable; `hits` counts requests.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Backend:
    def __init__(self, name: str, *, fail_status: int = 0, fail_first: int = 0):
        self.name = name
        self.fail_status = fail_status
        self.fail_first = fail_first
        self.hits = 0
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with backend._lock:
                    backend.hits += 1
                    n = backend.hits
                    backend.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body.decode(errors="replace")})
                status = 200
                if backend.fail_status and (backend.fail_first == 0 or n <= backend.fail_first):
                    status = backend.fail_status
                payload = json.dumps({"backend": backend.name, "path": self.path, "method": self.command,
                                      "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "Backend":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
