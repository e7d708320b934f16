"""Plain stand-ins for the runtime objects filters read (no sockets)."""
from __future__ import annotations

from isthmus.proxy.config.network_filters import HttpConnectionManagerConfig, XfccDetails
from isthmus.proxy.protocol.events import RequestHead
from isthmus.proxy.runtime.connection import ConnInfo


class FakeConn:
    def __init__(self, tls: bool = False, remote: str = "10.1.2.3", peer=None) -> None:
        self.info = ConnInfo(7)
        self.info.remote = (remote, 40000)
        self.info.local = ("10.0.0.1", 15001)
        self.info.tls = tls
        self.info.peer = peer
        self.info.local_uri_sans = ("spiffe://cluster.local/ns/default/sa/me",)


class FakeStream:
    def __init__(self, headers, target=b"/p?q=1", authority=b"svc:9080", conn=None, upgrade=None) -> None:
        self.head = RequestHead(1, b"GET", target, authority, list(headers))
        self.conn = conn or FakeConn()
        self.upgrade = upgrade
        self.grpc = False
        self.grpc_timeout = None
        self.peer = None
        self.request_id = None
        path, _, query = target.decode().partition("?")
        self.path, self.query = path, query
        self.headers = list(headers)


class FakeHcm:
    def __init__(self, tracing=None, outbound=True, mesh=False, **cfg) -> None:
        if "set_current_client_cert_details" not in cfg:
            cfg["set_current_client_cert_details"] = XfccDetails(uri=True)
        self.config = HttpConnectionManagerConfig("test", **cfg)
        self.tracing = tracing
        self.trace_sampling = (round(tracing.random_sampling * 100), round(tracing.overall_sampling * 100),
                               tracing.client_sampling) if tracing else None
        self.outbound = outbound
        self.mesh = mesh
        self.peer_id = b"id"
        self.peer_md = b"md"
        self.internal_only = frozenset()

    def peer_labels(self, md, peer):
        return ("labels", md)


class FakePeer:
    der = b"\x30\x03\x02\x01\x01"
    sha256 = "ab" * 32
    uri_sans = ("spiffe://cluster.local/ns/default/sa/client",)
    dns_sans = ()
    subject = "O=test"
    spiffe_id = uri_sans[0]
