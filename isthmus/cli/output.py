"""kubectl-style output: tables with AGE, `-o yaml|json`, `kind.group/name verb` lines."""
from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

import click
import yaml

from isthmus.shared.config.kinds import KindInfo, by_kind
from isthmus.shared.config.resource import Resource
from isthmus.shared.config.secret import redacted_body


def age(ts: str, now: datetime | None = None) -> str:
    if not ts:
        return "<unknown>"
    try:
        created = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    secs = int(((now or datetime.now(timezone.utc)) - created).total_seconds())
    if secs < 0:
        secs = 0
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    if secs < 48 * 3600:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def ref(r: Resource) -> str:
    """`virtualservice.networking.istio.io/reviews` (kubectl's resource reference)."""
    row = by_kind(r.kind)
    group = f".{row.group}" if row else ""
    return f"{r.kind.lower()}{group}/{r.meta.name}"


def quoted_ref(r: Resource) -> str:
    row = by_kind(r.kind)
    group = f".{row.group}" if row else ""
    return f'{r.kind.lower()}{group} "{r.meta.name}"'


def _join(values: Any) -> str:
    return json.dumps(list(values or []), separators=(",", ":")) if values else ""


# Extra columns per kind, as `kubectl get` shows for Istio's CRDs (additionalPrinterColumns).
COLUMNS: dict[str, list[tuple[str, Callable[[dict], str]]]] = {
    "VirtualService": [("GATEWAYS", lambda s: _join(s.get("gateways"))), ("HOSTS", lambda s: _join(s.get("hosts")))],
    "DestinationRule": [("HOST", lambda s: str(s.get("host", "")))],
    "ServiceEntry": [
        ("HOSTS", lambda s: _join(s.get("hosts"))),
        ("LOCATION", lambda s: str(s.get("location", ""))),
        ("RESOLUTION", lambda s: str(s.get("resolution", ""))),
    ],
    "WorkloadEntry": [("ADDRESS", lambda s: str(s.get("address", "")))],
    "PeerAuthentication": [("MODE", lambda s: str((s.get("mtls") or {}).get("mode", "")))],
    "AuthorizationPolicy": [("ACTION", lambda s: str(s.get("action", "ALLOW")))],
    "Secret": [("TYPE", lambda s: str(s.get("type", "Opaque"))), ("DATA", lambda s: str(len(s.get("data") or {})))],
}


def manifest(r: Resource) -> dict[str, Any]:
    """The document to print: a Secret's body at the top level with private keys REDACTED."""
    doc = r.to_manifest()
    row = by_kind(r.kind)
    if row is not None and row.body_fields:
        spec = doc.pop("spec", {})
        body = redacted_body(spec) if r.kind == "Secret" else spec
        doc.update(row.manifest_body(body))
    return doc


def render_table(rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def print_resources(items: Sequence[Resource], output: str, all_namespaces: bool, kind: KindInfo | None) -> None:
    if output in ("yaml", "json"):
        docs = [manifest(r) for r in items]
        body: Any = docs[0] if len(docs) == 1 and kind is not None else {"apiVersion": "v1", "kind": "List", "items": docs}
        if output == "json":
            click.echo(json.dumps(body, indent=2))
        else:
            click.echo(yaml.safe_dump(body, sort_keys=False).rstrip())
        return
    if output == "name":
        for r in items:
            click.echo(ref(r))
        return
    if not items:
        return
    kinds_seen = sorted({r.kind for r in items})
    for k in kinds_seen:
        group = [r for r in items if r.kind == k]
        cols = COLUMNS.get(k, [])
        header = (["NAMESPACE"] if all_namespaces else []) + ["NAME"] + [c for c, _ in cols] + ["AGE"]
        rows = [header]
        for r in group:
            name = r.meta.name if len(kinds_seen) == 1 else ref(r)
            rows.append(
                ([r.meta.namespace] if all_namespaces else [])
                + [name]
                + [fn(dict(r.spec)) for _, fn in cols]
                + [age(r.meta.creation_timestamp)]
            )
        click.echo(render_table(rows))
        if k != kinds_seen[-1]:
            click.echo("")


def err(message: str) -> None:
    click.echo(message, err=True)


def fail(message: str, code: int = 1) -> None:
    err(message)
    sys.exit(code)
