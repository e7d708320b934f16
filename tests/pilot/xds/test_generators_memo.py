"""The push memo shares generated resources between equivalent proxies, never across pushes."""
from __future__ import annotations

from dataclasses import replace

from isthmus.pilot.xds.generators import generator_table
from isthmus.pilot.xds.typeurls import CLUSTER, ENDPOINT
from tests.pilot.fixtures import BOOKINFO_SERVICES, push_from_yaml, sidecar


def test_equivalent_proxies_share_one_generation_and_new_pushes_rebuild():
    calls = []

    def clusters(proxy, push):
        calls.append(("cds", proxy.id))
        return [push.version]

    def endpoints(proxy, push, names):
        calls.append(("eds", names))
        return list(names)

    table = generator_table(clusters, endpoints, clusters, endpoints)
    push1 = push_from_yaml(BOOKINFO_SERVICES, version="1")
    a = sidecar(name="productpage-v1-a")
    b = replace(a, id="sidecar~127.0.0.1~productpage-v1-b.default~default.svc.cluster.local", workload_name="b")
    other = sidecar(name="reviews-v1", labels={"app": "reviews"})
    assert table[CLUSTER].generate(a, push1, None) == ["1"]
    assert table[CLUSTER].generate(b, push1, None) == ["1"]          # same config key: memo hit
    assert table[CLUSTER].generate(other, push1, None) == ["1"]      # different labels: built again
    assert [c for c in calls if c[0] == "cds"] == [("cds", a.id), ("cds", other.id)]
    # EDS is shared per cluster name across proxies of a namespace
    table[ENDPOINT].generate(a, push1, frozenset({"x", "y"}))
    table[ENDPOINT].generate(other, push1, frozenset({"y", "z"}))
    assert [c for c in calls if c[0] == "eds"] == [("eds", ("x",)), ("eds", ("y",)), ("eds", ("z",))]
    # a new PushContext never sees the old one's results
    push2 = push_from_yaml(BOOKINFO_SERVICES, version="2")
    assert table[CLUSTER].generate(b, push2, None) == ["2"]
