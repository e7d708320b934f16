"""Pilot's /debug/* pages (JSON), mounted on the monitoring port.

`debug_routes(discovery)` returns the `routes` mapping for
`shared.service.monitoring.start_monitoring`: syncz, config_dump?proxyID=,
registryz, configz, push_status, proxy_status.
"""
from __future__ import annotations

import dataclasses
import enum
import json
from types import MappingProxyType
from typing import Any

from google.protobuf import json_format

from isthmus.pilot.xds.discovery import DiscoveryServer
from isthmus.pilot.xds.status import proxy_status
from isthmus.pilot.xds.typeurls import SECRET, short_name
from isthmus.shared.config.resource import Resource
from isthmus.shared.config.secret import redacted_body
from isthmus.shared.service.http import Handler, Request, Response

REDACTED = "[redacted]"  # what Envoy's own config_dump shows for private keys


def _redacted(type_url: str, msg: Any) -> Any:
    """A copy of an SDS Secret without its private key (other resources unchanged)."""
    if type_url != SECRET or not msg.HasField("tls_certificate"):
        return msg
    out = type(msg)()
    out.CopyFrom(msg)
    out.tls_certificate.private_key.Clear()
    out.tls_certificate.private_key.inline_string = REDACTED
    return out


def _manifest(r: Resource) -> dict[str, Any]:
    doc = r.to_manifest()
    if r.kind == "Secret":
        doc["spec"] = redacted_body(doc.get("spec") or {})
    return doc


def jsonable(value: Any) -> Any:
    """Frozen dataclasses, enums, mapping proxies, sets → plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (dict, MappingProxyType)):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(v) for v in value)
    return value


def _json(data: Any, status: int = 200) -> Response:
    return Response(status=status, text=json.dumps(data, indent=1, sort_keys=True, default=str) + "\n",
                    content_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


def debug_routes(discovery: DiscoveryServer) -> dict[str, Handler]:
    async def syncz(_: Request) -> Response:
        return _json([e.to_dict() for e in discovery.syncz()])

    async def proxy_status_page(_: Request) -> Response:
        return _json([jsonable(r) for r in proxy_status(discovery.syncz())])

    async def config_dump(request: Request) -> Response:
        proxy_id = request.query.get("proxyID") or request.query.get("proxy_id")
        if not proxy_id:
            return _error(400, "config_dump needs ?proxyID=<node id or name.namespace> (see /debug/syncz)")
        con = discovery.find_connection(proxy_id)
        if con is None:
            return _error(404, f"no connected proxy {proxy_id!r} (see /debug/syncz)")
        dump = discovery.config_dump(con)
        return _json({
            "proxy": con.proxy_id,
            "version": discovery.push_context.version if discovery.push_context else None,
            "resources": {short_name(t): [json_format.MessageToDict(_redacted(t, r)) for r in rs] for t, rs in dump.items()},
        })

    async def registryz(_: Request) -> Response:
        push = discovery.push_context
        if push is None:
            return _error(503, "no PushContext yet")
        return _json([
            {"service": jsonable(svc), "endpoints": jsonable(push.registry.endpoints(svc.hostname))}
            for svc in push.services()
        ])

    async def configz(_: Request) -> Response:
        push = discovery.push_context
        if push is None:
            return _error(503, "no PushContext yet")
        return _json({"revision": push.configs.revision,
                      "resources": [_manifest(r) for r in push.configs.resources()]})

    async def push_status(_: Request) -> Response:
        return _json(discovery.status_snapshot())

    return {
        "/debug/syncz": syncz,
        "/debug/config_dump": config_dump,
        "/debug/registryz": registryz,
        "/debug/configz": configz,
        "/debug/push_status": push_status,
        "/debug/proxy_status": proxy_status_page,
    }
