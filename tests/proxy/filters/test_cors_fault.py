"""CORS origin matching and preflights; fault filter conditions — on fake streams."""
from __future__ import annotations

from isthmus.proxy.config.common import Fraction
from isthmus.proxy.config.http_filters import CorsPolicyConfig, FaultAbortConfig, FaultConfig, FaultDelayConfig
from isthmus.proxy.config.matchers import make_string_match
from isthmus.proxy.filters.cors import CorsFilter, origin_allowed
from isthmus.proxy.filters.fault import FaultFilter
from isthmus.proxy.filters.local_reply import DI, FI


class Stream:
    def __init__(self, headers, method=b"GET", config=None) -> None:
        self.headers = headers
        self.method = method
        self.has_filter_overrides = config is not None
        self._config = config
        self.cors = None
        self.replies: list = []
        self.flags = 0
        self.done = False
        self.deferred = None

    def filter_config(self, name):
        return self._config

    def respond(self, status, headers, body, details):
        self.replies.append((status, dict(headers)))

    def local_reply(self, status, body=b"", flags=0, details=""):
        self.replies.append((status, body))

    def grpc_local_reply(self, code, message, details=""):
        self.replies.append(("grpc", code))

    def header_str(self, name):
        return dict(self.headers).get(name)

    def target_cluster(self):
        return "c"

    def defer(self, delay, cb):
        self.deferred = (delay, cb)

    def resume(self):
        self.replies.append("resumed")


POLICY = CorsPolicyConfig(allow_origins=(make_string_match("exact", "https://a.example"),), allow_methods="GET,POST",
                          allow_headers="x-h", max_age="60", expose_headers="x-e", forward_not_matching_preflights=False)


def test_origin_matching():
    assert origin_allowed(POLICY, "https://a.example") and not origin_allowed(POLICY, "https://b.example")
    star = CorsPolicyConfig(allow_origins=(make_string_match("exact", "*"),))
    assert origin_allowed(star, "https://anything.example")


def test_preflight_answered_and_simple_request_decorated():
    f = CorsFilter("envoy.filters.http.cors")
    s = Stream([(b"origin", b"https://a.example"), (b"access-control-request-method", b"POST")], b"OPTIONS", POLICY)
    assert f.on_request(s) is False
    status, headers = s.replies[0]
    assert status == 200 and headers[b"access-control-allow-origin"] == b"https://a.example"
    assert headers[b"access-control-allow-methods"] == b"GET,POST" and headers[b"access-control-max-age"] == b"60"
    s = Stream([(b"origin", b"https://a.example")], b"GET", POLICY)
    assert f.on_request(s) is True
    out = dict(f.on_response(s, [(b"content-type", b"x")]))
    assert out[b"access-control-allow-origin"] == b"https://a.example" and out[b"access-control-expose-headers"] == b"x-e"
    s = Stream([(b"origin", b"https://b.example"), (b"access-control-request-method", b"POST")], b"OPTIONS", POLICY)
    assert f.on_request(s) is False  # not matching, not forwarded: answered without allow-origin
    assert b"access-control-allow-origin" not in s.replies[0][1]
    s = Stream([(b"access-control-request-method", b"POST")], b"OPTIONS", POLICY)
    assert f.on_request(s) is True  # no Origin: not CORS


def test_fault_abort_delay_and_conditions():
    always = Fraction(100, 100)
    abort = FaultConfig(abort=FaultAbortConfig(503, None, False, always))
    f = FaultFilter("envoy.filters.http.fault", FaultConfig())
    s = Stream([], config=abort)
    assert f.on_request(s) is False and s.flags == FI and s.replies == [(503, b"fault filter abort")]
    grpc = FaultConfig(abort=FaultAbortConfig(None, 14, False, always))
    s = Stream([], config=grpc)
    assert f.on_request(s) is False and s.replies == [("grpc", 14)]
    never = FaultConfig(abort=FaultAbortConfig(503, None, False, Fraction(0, 100)))
    assert f.on_request(Stream([], config=never)) is True
    other = FaultConfig(abort=FaultAbortConfig(503, None, False, always), upstream_cluster="not-c")
    assert f.on_request(Stream([], config=other)) is True
    delay = FaultConfig(delay=FaultDelayConfig(0.5, False, always))
    s = Stream([], config=delay)
    assert f.on_request(s) is False and s.flags == DI and s.deferred[0] == 0.5
    s.deferred[1]()
    assert s.replies == ["resumed"]
    limited = FaultConfig(delay=FaultDelayConfig(0.5, False, always), max_active_faults=1)
    f2 = FaultFilter("x", FaultConfig())
    assert f2.on_request(Stream([], config=limited)) is False
    assert f2.on_request(Stream([], config=limited)) is True  # the one allowed fault is active


def test_header_controlled_faults_as_envoy():
    always = Fraction(100, 100)
    by_header = FaultConfig(abort=FaultAbortConfig(None, None, True, always), delay=FaultDelayConfig(None, True, always))
    f = FaultFilter("envoy.filters.http.fault", FaultConfig())
    # No fault headers: nothing happens.
    assert f.on_request(Stream([], config=by_header)) is True
    # The abort status comes from the request.
    s = Stream([("x-envoy-fault-abort-request", "429")], config=by_header)
    assert f.on_request(s) is False and s.flags == FI and s.replies == [(429, b"fault filter abort")]
    s = Stream([("x-envoy-fault-abort-grpc-request", "14")], config=by_header)
    assert f.on_request(s) is False and s.replies == [("grpc", 14)]
    for bad in ("99", "600", "abc", ""):
        assert f.on_request(Stream([("x-envoy-fault-abort-request", bad)], config=by_header)) is True, bad
    # The delay (milliseconds) comes from the request; the abort is considered after it.
    s = Stream([("x-envoy-fault-delay-request", "250")], config=by_header)
    assert f.on_request(s) is False and s.flags == DI and s.deferred[0] == 0.25
    # The percentage headers lower the share (numerator over the configured denominator, capped).
    s = Stream([("x-envoy-fault-abort-request", "503"), ("x-envoy-fault-abort-request-percentage", "0")], config=by_header)
    assert f.on_request(s) is True
    s = Stream([("x-envoy-fault-delay-request", "100"), ("x-envoy-fault-delay-request-percentage", "0")], config=by_header)
    assert f.on_request(s) is True
    half = FaultConfig(abort=FaultAbortConfig(None, None, True, Fraction(50, 100)))
    hits = sum(not f.on_request(Stream([("x-envoy-fault-abort-request", "503"),
                                        ("x-envoy-fault-abort-request-percentage", "100")], config=half))
               for _ in range(400))
    assert 140 < hits < 260  # capped at the configured 50 %, not raised to 100 %
    # Header values never trigger a fault the config did not ask for.
    fixed = FaultConfig(abort=FaultAbortConfig(503, None, False, Fraction(0, 100)))
    assert f.on_request(Stream([("x-envoy-fault-abort-request", "500")], config=fixed)) is True
