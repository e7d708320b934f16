"""Sync status → proxy-status rows (SYNCED / STALE / NOT SENT), from live data or syncz JSON."""
from __future__ import annotations

import json

from isthmus.pilot.xds import typeurls as T
from isthmus.pilot.xds.status import SyncEntry, TypeSync, format_table, proxy_status


def ts(short, **kw):
    return TypeSync(type=short, type_url=T.from_short_name(short), **kw)


ENTRY = SyncEntry(
    proxy_id="sidecar~10.0.0.1~reviews-v1.default~default.svc.cluster.local", name="reviews-v1.default",
    cluster="Kubernetes", namespace="default", istio_version="1.24.0", istiod="pilot-0", connection_id="c1",
    connected_at=0.0, delta=False, identity="",
    types=(
        ts("cds", sent_nonce="n1", sent_version="v2", acked_nonce="n1", acked_version="v2"),
        ts("eds", sent_nonce="n3", sent_version="v2", acked_nonce="n2", acked_version="v1"),
        ts("lds", sent_nonce="n4", sent_version="v2", acked_nonce="n0", acked_version="v1",
           nack_nonce="n4", nack_error="bad listener", nack_version="v2"),
    ),
)


def test_states():
    assert ts("cds").state == "NOT SENT"
    assert ts("cds", sent_nonce="a").state == "STALE (Never Acknowledged)"
    assert ts("cds", sent_nonce="a", acked_nonce="a").state == "SYNCED"
    assert ts("cds", sent_nonce="b", acked_nonce="a").state == "STALE"
    assert ts("cds", sent_nonce="b", acked_nonce="a", nack_nonce="b", nack_error="x").state == "STALE (NACK)"


def test_rows_and_table():
    (row,) = proxy_status([ENTRY])
    assert row.cells() == ("reviews-v1.default", "Kubernetes", "SYNCED", "STALE (NACK)", "STALE", "NOT SENT",
                           "pilot-0", "1.24.0")
    assert row.errors == ("LDS NACK of version v2: bad listener",)
    text = format_table([row])
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ISTIOD", "VERSION"]
    assert lines[1].startswith("reviews-v1.default") and "STALE (NACK)" in lines[1]
    assert lines[2] == "reviews-v1.default: LDS NACK of version v2: bad listener"


def test_syncz_json_round_trip():
    d = json.loads(json.dumps(ENTRY.to_dict()))
    assert d["types"]["lds"]["state"] == "STALE (NACK)"
    assert SyncEntry.from_dict(d) == ENTRY
