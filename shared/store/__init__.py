"""Config stores: one contract (`base.ConfigStore`), three backends, one URL to pick.

    memory://                                   in-process, for tests
    sqlite:///path/to/file.db  (or a plain path)  embedded, durable; the local default
    etcd://host:port[,host:port]?prefix=/isthmus  etcd v3; also timeout=, max_txn_ops=

The etcd backend (and its gRPC import) loads only when an etcd URL is opened.
"""
from __future__ import annotations

from urllib.parse import parse_qs

from isthmus.shared.store.base import (
    Action,
    BatchResult,
    ConfigStore,
    EventType,
    ListResult,
    Op,
    OpType,
    WatchEvent,
)

__all__ = [
    "Action",
    "BatchResult",
    "ConfigStore",
    "EventType",
    "ListResult",
    "Op",
    "OpType",
    "WatchEvent",
    "open_store",
    "parse_etcd_endpoints",
]

URL_HELP = "use memory://, sqlite:///path/to/file.db (or a plain path) or etcd://host:port[,host:port]?prefix=/isthmus"
ETCD_DEFAULT_PORT = 2379


def open_store(url: str) -> ConfigStore:
    """The store a URL names; opening does no blocking I/O (SQLite opens on its own thread)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        if not url:
            raise ValueError(f"empty store URL: {URL_HELP}")
        scheme, rest = "sqlite", url
    if scheme == "memory":
        from isthmus.shared.store.memory import MemoryStore

        return MemoryStore()
    if scheme == "sqlite":
        if not rest:
            raise ValueError(f"store URL {url!r} names no file: {URL_HELP}")
        from isthmus.shared.store.sqlite import SqliteStore

        return SqliteStore(rest)
    if scheme == "etcd":
        from isthmus.shared.store.etcd import EtcdStore

        hosts, _, query = rest.partition("?")
        params = {name: values[-1] for name, values in parse_qs(query).items()}
        unknown = set(params) - {"prefix", "timeout", "max_txn_ops"}
        if unknown:
            raise ValueError(f"store URL {url!r}: unknown parameter(s) {', '.join(sorted(unknown))}")
        return EtcdStore(
            parse_etcd_endpoints(hosts.rstrip("/"), url),
            prefix=params.get("prefix", "/isthmus"),
            timeout=float(params.get("timeout", 5.0)),
            max_txn_ops=int(params.get("max_txn_ops", 128)),
        )
    raise ValueError(f"unknown store URL {url!r}: {URL_HELP}")


def parse_etcd_endpoints(hosts: str, url: str = "") -> list[tuple[str, int]]:
    """`h1:2379,[::1]:2379,h3` → [(host, port), ...]; the port defaults to 2379."""
    endpoints: list[tuple[str, int]] = []
    for item in filter(None, (part.strip() for part in hosts.split(","))):
        if item.startswith("["):
            host, _, tail = item[1:].partition("]")
            port = tail.removeprefix(":")
        else:
            host, _, port = item.partition(":")
        if not host or (port and not port.isdigit()):
            raise ValueError(f"store URL {url or hosts!r}: bad etcd endpoint {item!r} (want host:port)")
        endpoints.append((host, int(port) if port else ETCD_DEFAULT_PORT))
    if not endpoints:
        raise ValueError(f"store URL {url or hosts!r} names no etcd endpoint: {URL_HELP}")
    return endpoints
