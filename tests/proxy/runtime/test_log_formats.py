"""Access-log formats compiled into one function give exactly what evaluating each
operator with its getter gives (the reference below), for every operator."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from isthmus.proxy.config.access_log import AccessLogConfig, JsonFormat
from isthmus.proxy.config.errors import Where
from isthmus.proxy.config.formatter import COMMANDS, parse_format
from isthmus.proxy.runtime.access_log import Logger, Sinks
from isthmus.proxy.runtime.formatter import operator_getter

W = Where("test", "format")


def _operators() -> list[str]:
    out = []
    for c in sorted(COMMANDS):
        if c in ("REQ", "RESP", "TRAILER", "REQ_WITHOUT_QUERY"):
            out += [f"%{c}({a})%" for a in ("USER-AGENT", ":AUTHORITY", ":METHOD", "X-MISSING", "X-A?X-B", "X-ENVOY-ORIGINAL-PATH?:PATH")]
        elif c in ("START_TIME", "EMIT_TIME"):
            out += [f"%{c}%", f"%{c}(%s)%"]
        elif c == "ENVIRONMENT":
            out.append("%ENVIRONMENT(HOME)%")
        elif c in ("DYNAMIC_METADATA", "CLUSTER_METADATA", "UPSTREAM_METADATA", "FILTER_STATE"):
            out.append(f"%{c}(a:b)%")
        else:
            out += [f"%{c}%", f"%{c}:3%"]
    return out


OPERATORS = _operators()


class Ctx:
    """The formatter's context contract, with values a log must escape or print as null."""

    def __init__(self, variant: int) -> None:
        odd = variant % 2 == 1
        self.start_wall, self.start = 1_700_000_000.1234, 100.0
        self.end = None if odd else 100.25
        self.request_end, self.response_start = 100.01, (None if odd else 100.2)
        self.protocol, self.upstream_protocol = "HTTP/1.1", None if odd else "HTTP/2"
        self.status, self.flags = (503, 0b101) if odd else (200, 0)
        self.details = "" if odd else 'a "quoted"\ndetail'
        self.bytes_in, self.bytes_out, self.attempts = 0, 12345, 2
        self.route_name, self.cluster_name = ("", "") if odd else ("r1", "outbound|80||é.svc")
        self.upstream_local, self.transport_failure = ("", "") if odd else ("10.0.0.1:5000", "TLS_error:|x")
        host = SimpleNamespace(address="10.0.0.2", port=80, address_string="10.0.0.2:80", hostname="")
        self.upstream = None if odd else SimpleNamespace(host=host)
        info = SimpleNamespace(remote=("10.0.0.3", 4000), local=("10.0.0.4", 15001), sni="" if odd else "sni.example",
                               conn_id=7, chain_name="c", tls_version=None, tls_cipher=None, peer=None, local_uri_sans=())
        info.address_text = lambda which: "%s:%d" % getattr(info, which)
        self.downstream = info
        self._req = {b"user-agent": "\xe9\x01ua".encode("latin-1"), b"x-b": b"b"} if odd else {b"x-envoy-original-path": b"/orig"}
        self._resp = {} if odd else {b"user-agent": b"resp"}

    def now(self) -> float:
        return 100.5

    def request_header(self, name: str):
        return {":method": "GET", ":authority": "a.example:80", ":path": "/p?q=1"}.get(name) or (
            v.decode("latin-1") if (v := self._req.get(name.encode())) is not None else None)

    def header_map(self, which: int) -> dict:
        return (self._req, self._resp, {})[which]

    def grpc_status(self):
        return None


def reference_json(fields, ctx) -> bytes:
    parts = []
    for key, ops in fields:
        value = operator_getter(ops[0])(ctx) if isinstance(ops, tuple) and len(ops) == 1 and not isinstance(ops[0], str) \
            else "".join(p if isinstance(p, str) else str(operator_getter(p)(ctx)) for p in ops) if isinstance(ops, tuple) else ops
        parts.append(json.dumps(key) + ":" + json.dumps(value, default=str))
    return ("{" + ",".join(parts) + "}\n").encode()


def reference_text(template, ctx) -> bytes:
    out = []
    for p in template:
        v = p if isinstance(p, str) else operator_getter(p)(ctx)
        out.append("-" if v is None else str(v))
    return "".join(out).encode()


@pytest.mark.parametrize("variant", [0, 1])
def test_json_format_matches_each_operator(variant):
    fields = tuple((op, parse_format(op, W)) for op in OPERATORS) + (("lit", parse_format("x%%y", W)), ("num", 1.0), ("n", None))
    logger = Logger(AccessLogConfig("j", "/dev/null", json=JsonFormat(fields)), Sinks())
    ctx = Ctx(variant)
    assert logger.format(ctx) == reference_json(fields, ctx)


@pytest.mark.parametrize("variant", [0, 1])
def test_text_format_matches_each_operator(variant):
    template = parse_format(" | ".join(OPERATORS) + " 100%%\n", W)
    logger = Logger(AccessLogConfig("t", "/dev/null", text=template), Sinks())
    ctx = Ctx(variant)
    assert logger.format(ctx) == reference_text(template, ctx)
