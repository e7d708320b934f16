"""The pure request rules: SotW verdicts and delta subscription bookkeeping."""
from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from isthmus.pilot.xds import typeurls as T
from isthmus.pilot.xds.connection import Verdict, Watched, apply_delta, classify_sotw, sotw_subscription


def req(type_url=T.ENDPOINT, names=(), nonce="", version="", error=None):
    r = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=list(names), response_nonce=nonce,
                                       version_info=version)
    if error:
        r.error_detail.message = error
    return r


def test_sotw_wildcard_rules():
    assert sotw_subscription(T.CLUSTER, []) == (True, frozenset())
    assert sotw_subscription(T.LISTENER, ["*", "a"]) == (True, frozenset({"a"}))
    assert sotw_subscription(T.CLUSTER, ["a"]) == (False, frozenset({"a"}))
    assert sotw_subscription(T.ENDPOINT, []) == (False, frozenset())


def test_sotw_verdicts():
    w = Watched(T.ENDPOINT, names=frozenset({"a"}), nonce_sent="n2")
    assert classify_sotw(None, req(names=["a"], nonce="n1")) is Verdict.INITIAL
    assert classify_sotw(w, req(names=["a"])) is Verdict.INITIAL
    assert classify_sotw(w, req(names=["a"], nonce="n1")) is Verdict.STALE
    assert classify_sotw(w, req(names=["a"], nonce="n2", error="bad")) is Verdict.NACK
    assert classify_sotw(w, req(names=["a"], nonce="n2")) is Verdict.ACK
    assert classify_sotw(w, req(names=["a", "b"], nonce="n2")) is Verdict.CHANGED


def dreq(type_url=T.ENDPOINT, sub=(), unsub=(), nonce="", error=None, initial=None):
    r = discovery_pb2.DeltaDiscoveryRequest(type_url=type_url, resource_names_subscribe=list(sub),
                                            resource_names_unsubscribe=list(unsub), response_nonce=nonce,
                                            initial_resource_versions=initial or {})
    if error:
        r.error_detail.message = error
    return r


def test_delta_first_request():
    w, out = apply_delta(None, dreq(T.CLUSTER))
    assert w.wildcard and out.verdict is Verdict.INITIAL
    w, out = apply_delta(None, dreq(T.ENDPOINT, sub=["a"], initial={"a": "v1"}))
    assert not w.wildcard and w.names == {"a"} and w.known == {"a": "v1"}
    w, _ = apply_delta(None, dreq(T.ENDPOINT, sub=["*"]))
    assert w.wildcard and w.names == frozenset()


def test_delta_subscription_changes_apply_whatever_the_nonce():
    w, _ = apply_delta(None, dreq(sub=["a", "b"]))
    w.nonce_sent = "n1"
    w.known = {"a": "1", "b": "1"}
    w, out = apply_delta(w, dreq(sub=["c"], unsub=["a"], nonce="stale"))
    assert out.verdict is Verdict.STALE and out.added == {"c"}
    assert w.names == {"b", "c"} and w.known == {"b": "1"}
    _, out = apply_delta(w, dreq(nonce="n1"))
    assert out.verdict is Verdict.ACK and not out.added
    _, out = apply_delta(w, dreq(nonce="n1", error="bad"))
    assert out.verdict is Verdict.NACK
    _, out = apply_delta(w, dreq(sub=["d"]))
    assert out.verdict is Verdict.UPDATE and out.added == {"d"}
    w, out = apply_delta(w, dreq(sub=["*"]))
    assert out.wildcard_added and w.wildcard
    w, out = apply_delta(w, dreq(unsub=["*"]))
    assert not w.wildcard and not out.wildcard_added
