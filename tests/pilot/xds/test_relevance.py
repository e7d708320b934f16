"""Which proxies a PushRequest concerns: conservative, namespace- and kind-aware."""
from __future__ import annotations

from isthmus.pilot.model.proxy import Proxy, ProxyType
from isthmus.pilot.push.request import PushRequest
from isthmus.pilot.xds import typeurls as T
from isthmus.pilot.xds.relevance import eds_names, proxy_needs_push, push_plan
from isthmus.shared.config.resource import ResourceKey

ROOT = "istio-system"


def proxy(ns="default", kind=ProxyType.SIDECAR) -> Proxy:
    return Proxy(id=f"{kind.value}~10.0.0.1~p.{ns}~{ns}.svc.cluster.local", type=kind, ip_addresses=("10.0.0.1",),
                 namespace=ns)


def change(kind, ns="default", name="x") -> PushRequest:
    return PushRequest(full=True, configs_updated=frozenset({ResourceKey(kind, ns, name)}))


def test_namespaced_policies_stay_in_their_namespace():
    for kind in ("Sidecar", "AuthorizationPolicy", "RequestAuthentication"):
        assert proxy_needs_push(proxy("a"), change(kind, "a"), ROOT)
        assert not proxy_needs_push(proxy("b"), change(kind, "a"), ROOT)
        assert proxy_needs_push(proxy("b"), change(kind, ROOT), ROOT)


def test_gateway_only_concerns_gateways():
    assert not proxy_needs_push(proxy("default"), change("Gateway"), ROOT)
    assert proxy_needs_push(proxy("istio-system", ProxyType.ROUTER), change("Gateway", "default"), ROOT)


def test_everything_else_and_unknown_scope_concern_everyone():
    for kind in ("VirtualService", "DestinationRule", "ServiceEntry", "WorkloadEntry", "PeerAuthentication", "Mystery"):
        assert proxy_needs_push(proxy("b"), change(kind, "a"), ROOT)
    assert proxy_needs_push(proxy("b"), PushRequest(full=True), ROOT)
    # A mix: one relevant key is enough.
    mixed = change("Sidecar", "a").merge(change("Sidecar", "b"))
    assert proxy_needs_push(proxy("b"), mixed, ROOT) and not proxy_needs_push(proxy("c"), mixed, ROOT)


def test_plans():
    full = push_plan(proxy(), PushRequest(full=True), ROOT)
    assert [t for t, _ in full][:4] == [T.CLUSTER, T.ENDPOINT, T.LISTENER, T.ROUTE]
    assert push_plan(proxy("b"), change("Sidecar", "a"), ROOT) == []
    subscribed = ["outbound|9080||reviews.default.svc.cluster.local", "outbound|9080|v1|reviews.default.svc.cluster.local",
                  "outbound|9080||ratings.default.svc.cluster.local"]
    req = PushRequest(full=False, eds_hosts=frozenset({"reviews.default.svc.cluster.local"}))
    assert push_plan(proxy(), req, ROOT, subscribed) == [(T.ENDPOINT, frozenset(subscribed[:2]))]
    assert push_plan(proxy(), PushRequest(full=False, eds_hosts=frozenset({"x"})), ROOT, subscribed) == []
    assert push_plan(proxy(), PushRequest(full=False), ROOT, subscribed) == [(T.ENDPOINT, None)]


def test_eds_names_keeps_unparseable_names():
    assert eds_names(["custom-eds-name", "outbound|80||a"], frozenset({"b"})) == {"custom-eds-name"}
