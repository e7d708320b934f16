"""Sync status per proxy and type, and `istioctl proxy-status`'s view of it. Pure.

`sync_entries(connections)` snapshots what each stream sent, what the proxy ACKed
and its last NACK (served as /debug/syncz); `proxy_status(entries)` turns those
snapshots — live, or read back from syncz JSON with `SyncEntry.from_dict` — into
rows NAME CLUSTER CDS LDS EDS RDS ISTIOD VERSION with SYNCED / STALE / NOT SENT.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping

from isthmus.pilot.xds.typeurls import short_name

SYNCED = "SYNCED"
STALE = "STALE"
NOT_SENT = "NOT SENT"
NEVER_ACKED = "STALE (Never Acknowledged)"
NACKED = "STALE (NACK)"
COLUMNS = ("NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ISTIOD", "VERSION")


@dataclass(frozen=True)
class TypeSync:
    type: str  # cds, eds, lds, rds, ...
    type_url: str
    wildcard: bool = False
    names: int = 0  # subscribed resource names
    sent_version: str = ""
    sent_nonce: str = ""
    sent_at: float = 0.0
    acked_version: str = ""
    acked_nonce: str = ""
    acked_at: float = 0.0
    nack_error: str = ""  # last NACK, kept until the proxy ACKs a later response
    nack_nonce: str = ""
    nack_version: str = ""  # the version it rejected
    nack_at: float = 0.0

    @property
    def state(self) -> str:
        if not self.sent_nonce:
            return NOT_SENT
        if self.acked_nonce == self.sent_nonce:
            return SYNCED
        if self.nack_nonce and self.nack_nonce == self.sent_nonce:
            return NACKED
        return NEVER_ACKED if not self.acked_nonce else STALE


@dataclass(frozen=True)
class SyncEntry:
    proxy_id: str
    name: str  # reviews-v1-abc.default
    cluster: str
    namespace: str
    istio_version: str
    istiod: str  # the pilot instance serving it
    connection_id: str
    connected_at: float
    delta: bool
    identity: str  # SPIFFE id proven over mTLS, "" on plaintext
    types: tuple[TypeSync, ...]

    def type_sync(self, short: str) -> TypeSync | None:
        return next((t for t in self.types if t.type == short), None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["types"] = {t.type: {**asdict(t), "state": t.state} for t in self.types}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SyncEntry":
        fields = {k: v for k, v in d.items() if k != "types"}
        types = []
        for t in (d.get("types") or {}).values():
            types.append(TypeSync(**{k: v for k, v in t.items() if k in TypeSync.__dataclass_fields__}))
        return cls(**{k: v for k, v in fields.items() if k in cls.__dataclass_fields__}, types=tuple(types))


def sync_entries(connections: Iterable[Any], istiod: str) -> list[SyncEntry]:
    """Snapshot live connections (`xds.connection.Connection`), sorted by proxy id."""
    out = []
    for con in connections:
        proxy = con.proxy
        types = []
        for w in con.watched_in_order():
            nack = w.last_nack
            # A NACK is history once the proxy ACKs something newer.
            current = nack is not None and nack.at >= w.acked_at
            types.append(TypeSync(
                type=short_name(w.type_url), type_url=w.type_url, wildcard=w.wildcard, names=len(w.names),
                sent_version=w.version_sent, sent_nonce=w.nonce_sent, sent_at=w.sent_at,
                acked_version=w.version_acked, acked_nonce=w.nonce_acked, acked_at=w.acked_at,
                nack_error=nack.message if current else "", nack_nonce=nack.nonce if current else "",
                nack_version=nack.rejected_version if current else "", nack_at=nack.at if current else 0.0,
            ))
        out.append(SyncEntry(
            proxy_id=con.proxy_id, name=getattr(proxy, "name", con.proxy_id), cluster=getattr(proxy, "cluster", ""),
            namespace=getattr(proxy, "namespace", ""), istio_version=getattr(proxy, "version", ""), istiod=istiod,
            connection_id=con.id, connected_at=con.connected_at, delta=con.delta, identity=con.identity or "",
            types=tuple(types),
        ))
    return sorted(out, key=lambda e: (e.proxy_id, e.connection_id))


@dataclass(frozen=True)
class ProxyStatusRow:
    name: str
    cluster: str
    cds: str
    lds: str
    eds: str
    rds: str
    istiod: str
    version: str
    errors: tuple[str, ...] = ()  # "EDS NACK of version V: <error>"

    def cells(self) -> tuple[str, ...]:
        return (self.name, self.cluster, self.cds, self.lds, self.eds, self.rds, self.istiod, self.version)


def proxy_status(entries: Iterable[SyncEntry]) -> list[ProxyStatusRow]:
    rows = []
    for e in entries:
        states, errors = {}, []
        for short in ("cds", "lds", "eds", "rds"):
            t = e.type_sync(short)
            states[short] = t.state if t is not None else NOT_SENT
            if t is not None and t.nack_error:
                errors.append(f"{short.upper()} NACK of version {t.nack_version}: {t.nack_error}")
        rows.append(ProxyStatusRow(e.name, e.cluster, states["cds"], states["lds"], states["eds"], states["rds"],
                                   e.istiod, e.istio_version, tuple(errors)))
    return sorted(rows, key=lambda r: r.name)


def format_table(rows: Iterable[ProxyStatusRow]) -> str:
    """Plain-text table as istioctl prints it; NACK errors follow, one per line."""
    rows = list(rows)
    table = [COLUMNS] + [r.cells() for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    for r in rows:
        lines.extend(f"{r.name}: {err}" for err in r.errors)
    return "\n".join(lines) + "\n"
