"""The python engine's admin server: Envoy's admin API on 127.0.0.1:<admin port>, and the
Prometheus port (15090, `/stats/prometheus` only).

Pages (Envoy's shapes): /stats (text; ?format=prometheus|json, ?filter=RE), /stats/prometheus,
/config_dump (?include_eds), /clusters (`cluster::host::stat::value`; ?format=json as
envoy.admin.v3.Clusters), /listeners (?format=json), /ready (200 LIVE, else 503 and the
state), /server_info, /logging (GET shows; POST ?level= sets), POST /quitquitquit
(graceful exit), POST /drain_listeners (?graceful, ?inboundonly), and /xds (isthmus:
per-type versions, NACKs, connection). Everything comes from an `AdminBackend` — the
engine, which hides whether one process or N workers serve (`merge_stats` and
`merge_clusters` sum the workers' counters, as Envoy sums its threads').
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from typing import Any, Iterable, Mapping, Protocol

from envoy.config.core.v3 import base_pb2
from google.protobuf import duration_pb2, json_format

from isthmus.proxy.stats import Stats
from isthmus.shared.service.http import App, HttpServer, Request, Response, serve
from isthmus.shared import logging as slog
from isthmus.shared.logging import get_logger

log = get_logger("proxy.admin")

# Envoy's /logging level names → this process's levels.
LEVELS = {"trace": "debug", "debug": "debug", "info": "info", "warning": "warning", "warn": "warning",
          "error": "error", "critical": "critical", "off": "off"}
_level: dict[str, str] = {}
HOST_FIELDS = ("address", "health_flags", "weight", "priority", "region", "zone", "sub_zone", "canary",
               "success_rate", "hostname", "stats", "outlier_ejected", "ejection_remaining_s")


class AdminBackend(Protocol):
    node: base_pb2.Node
    concurrency: int
    started_at: float

    def state(self) -> str: ...  # PRE_INITIALIZING | LIVE | DRAINING

    async def stats(self) -> Stats: ...

    async def config_dump(self, include_eds: bool) -> dict: ...

    async def clusters(self) -> list[Mapping[str, Any]]: ...

    async def listeners(self) -> list[Mapping[str, Any]]: ...

    async def xds_status(self) -> Any: ...

    def set_log_level(self, level: str) -> None: ...

    async def quit(self) -> None: ...

    async def drain_listeners(self, *, graceful: bool, inbound_only: bool) -> None: ...


# ---- logging level -------------------------------------------------------------------

def set_log_level(level: str) -> None:
    """Change this process's log level at once (Envoy's names: trace, warn and off too)."""
    level = level.lower()
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; one of {', '.join(LEVELS)}")
    slog.set_level(LEVELS[level])
    _level["name"] = level


def log_level() -> str:
    """The level set here, else the one `shared.logging.configure` chose."""
    return _level.get("name") or slog.level()


# ---- pure renderers --------------------------------------------------------------------

def plain(value: Any) -> Any:
    """Dataclasses and mappings from the data plane → plain dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return value


def _host_stats(host: Mapping[str, Any]) -> dict[str, Any]:
    stats = dict(host.get("stats") or {})
    stats.update({k: v for k, v in host.items() if k not in HOST_FIELDS and isinstance(v, (int, float))
                  and not isinstance(v, bool)})
    return stats


def render_clusters_text(clusters: Iterable[Mapping[str, Any]]) -> str:
    """Envoy's /clusters: `name::key::value` and `name::host::stat::value` lines."""
    out = []
    for c in clusters:
        name = c["name"]
        out.append(f"{name}::observability_name::{c.get('observability_name', name)}")
        for prio, limits in (c.get("circuit_breakers") or {}).items():
            out.extend(f"{name}::{prio}_priority::{k}::{v}" for k, v in limits.items())
        for key, value in c.items():
            if key not in ("name", "hosts", "observability_name") and not isinstance(value, (dict, list)):
                out.append(f"{name}::{key}::{_text(value)}")
        for h in c.get("hosts") or ():
            addr = h["address"]
            for stat, value in sorted(_host_stats(h).items()):
                out.append(f"{name}::{addr}::{stat}::{_text(value)}")
            for key in ("hostname", "health_flags", "weight", "region", "zone", "sub_zone", "canary", "priority",
                        "success_rate", "local_origin_success_rate"):
                default = {"health_flags": "healthy", "weight": 1, "canary": False, "priority": 0,
                           "success_rate": -1.0, "local_origin_success_rate": -1.0}.get(key, "")
                out.append(f"{name}::{addr}::{key}::{_text(h.get(key, default))}")
    return "\n".join(out) + ("\n" if out else "")


def _text(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _socket(addr: str) -> dict:
    host, _, port = addr.rpartition(":")
    if not port.isdigit():
        return {"pipe": {"path": addr}}
    return {"socket_address": {"address": host.strip("[]"), "port_value": int(port)}}


def render_clusters_json(clusters: Iterable[Mapping[str, Any]]) -> dict:
    """/clusters?format=json as envoy.admin.v3.Clusters (what istioctl proxy-config endpoints reads)."""
    from envoy.admin.v3 import clusters_pb2  # admin-only messages load on first use (sidecar memory)

    msg = clusters_pb2.Clusters()
    for c in clusters:
        status = msg.cluster_statuses.add(name=c["name"], added_via_api=bool(c.get("added_via_api", True)),
                                          observability_name=c.get("observability_name", c["name"]),
                                          eds_service_name=c.get("eds_service_name", ""))
        for h in c.get("hosts") or ():
            host = status.host_statuses.add(weight=int(h.get("weight", 1)), priority=int(h.get("priority", 0)),
                                            hostname=h.get("hostname", ""))
            json_format.ParseDict(_socket(h["address"]), host.address)
            for stat, value in sorted(_host_stats(h).items()):
                kind = "GAUGE" if stat.endswith(("_active", "_pending")) else "COUNTER"
                host.stats.add(name=stat, value=int(value), type=kind)
            flags = str(h.get("health_flags", "healthy"))
            host.health_status.eds_health_status = "HEALTHY" if flags == "healthy" else "UNHEALTHY"
            host.health_status.failed_outlier_check = "failed_outlier_check" in flags
            for key in ("region", "zone", "sub_zone"):
                setattr(host.locality, key, str(h.get(key, "")))
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def render_listeners(listeners: Iterable[Mapping[str, Any]], fmt: str) -> str | dict:
    if fmt == "json":
        from envoy.admin.v3 import listeners_pb2

        msg = listeners_pb2.Listeners()
        for item in listeners:
            status = msg.listener_statuses.add(name=item["name"])
            json_format.ParseDict(_socket(str(item.get("address", ""))), status.local_address)
        return json_format.MessageToDict(msg, preserving_proto_field_name=True)
    return "".join(f"{item['name']}::{item.get('address', '')}\n" for item in listeners)


def server_info(backend: AdminBackend, version: str = "isthmus") -> dict:
    from envoy.admin.v3 import server_info_pb2

    info = server_info_pb2.ServerInfo(version=f"isthmus-proxy/{version}", node=backend.node)
    info.state = server_info_pb2.ServerInfo.State.Value(backend.state())
    uptime = max(0, int(time.time() - backend.started_at))
    info.uptime_current_epoch.CopyFrom(duration_pb2.Duration(seconds=uptime))
    info.uptime_all_epochs.CopyFrom(duration_pb2.Duration(seconds=uptime))
    info.command_line_options.concurrency = backend.concurrency
    out = json_format.MessageToDict(info, preserving_proto_field_name=True)
    out["state"] = backend.state()  # LIVE is the enum's zero value, which proto JSON omits
    return out


def _json(data: Any, status: int = 200) -> Response:
    return Response(status=status, text=json.dumps(data, indent=1, default=str) + "\n",
                    content_type="application/json")


def _filter(text: str, pattern: str | None) -> str:
    if not pattern:
        return text
    rx = re.compile(pattern)
    return "".join(line + "\n" for line in text.splitlines() if rx.search(line.split(":", 1)[0]))


# ---- several workers: one view ----------------------------------------------------------

def export_stats(stats: Stats) -> dict:
    """A worker's stats as JSON-able lists (what it sends the agent for `merge_stats`)."""
    return {"counters": [[n, list(map(list, l)), c.value] for (n, l), c in stats._counters.items()],
            "gauges": [[n, list(map(list, l)), g.value] for (n, l), g in stats._gauges.items()],
            "histograms": [[n, list(map(list, l)), list(h.bounds), h.counts, h.sum, h.count]
                           for (n, l), h in stats._histograms.items()]}


def merge_stats(dumps: list[dict]) -> Stats:
    """Envoy's view over threads: counters, gauges and histogram buckets summed."""
    out = Stats()
    for d in dumps:
        for n, l, v in d["counters"]:
            out.counter(n, tuple(map(tuple, l))).value += v
        for n, l, v in d["gauges"]:
            out.gauge(n, tuple(map(tuple, l))).value += v
        for n, l, bounds, counts, total, count in d["histograms"]:
            h = out.histogram(n, tuple(map(tuple, l)), tuple(bounds))
            h.counts = [a + b for a, b in zip(h.counts, counts)]
            h.sum += total
            h.count += count
    return out


def merge_clusters(per_worker: list[list[dict]]) -> list[dict]:
    """Worker 0's clusters, with every numeric host stat summed over the workers."""
    if not per_worker:
        return []
    base = json.loads(json.dumps(per_worker[0]))
    index = {(c["name"], h["address"]): h for c in base for h in c.get("hosts") or ()}
    for clusters in per_worker[1:]:
        for c in clusters:
            for h in c.get("hosts") or ():
                if (mine := index.get((c["name"], h["address"]))) is None:
                    continue
                for key, value in (h.get("stats") or {}).items():
                    mine.setdefault("stats", {})[key] = mine.get("stats", {}).get(key, 0) + value
                for key, value in h.items():  # the runtime's shape: counters beside the host fields
                    if key not in HOST_FIELDS and isinstance(value, int) and not isinstance(value, bool):
                        mine[key] = mine.get(key, 0) + value
    return base


# ---- the server ------------------------------------------------------------------------

def admin_app(backend: AdminBackend) -> App:
    async def stats(request: Request) -> Response:
        s = await backend.stats()
        fmt = request.query.get("format", "")
        if fmt == "prometheus":
            return Response(text=s.render_prometheus(), content_type="text/plain")
        text = _filter(s.render_text(), request.query.get("filter"))
        if fmt == "json":
            return _json({"stats": [{"name": n, "value": v} for n, v in
                                    (line.split(": ", 1) for line in text.splitlines() if ": " in line)]})
        return Response(text=text)

    async def prometheus(_: Request) -> Response:
        return Response(text=(await backend.stats()).render_prometheus(), content_type="text/plain")

    async def config_dump(request: Request) -> Response:
        return _json(await backend.config_dump(include_eds=True))

    async def clusters(request: Request) -> Response:
        data = [plain(c) for c in await backend.clusters()]
        if request.query.get("format") == "json":
            return _json(render_clusters_json(data))
        return Response(text=render_clusters_text(data))

    async def listeners(request: Request) -> Response:
        out = render_listeners([plain(x) for x in await backend.listeners()], request.query.get("format", ""))
        return _json(out) if isinstance(out, dict) else Response(text=out)

    async def ready(_: Request) -> Response:
        state = backend.state()
        return Response(status=200 if state == "LIVE" else 503, text=state + "\n")

    async def info(_: Request) -> Response:
        return _json(server_info(backend))

    async def logging_page(request: Request) -> Response:
        if request.method == "POST" and "level" in request.query:
            try:
                backend.set_log_level(request.query["level"])
            except ValueError as exc:
                return Response(status=400, text=f"{exc}\nusage: POST /logging?level=<{'|'.join(LEVELS)}>\n")
            log.info("log level changed", level=log_level())
        return Response(text=f"active loggers:\n  isthmus: {log_level()}\n")

    async def quit_(_: Request) -> Response:
        log.info("admin /quitquitquit: draining and exiting")
        asyncio.get_running_loop().create_task(backend.quit(), name="admin quitquitquit")
        return Response(text="OK\n")

    async def drain(request: Request) -> Response:
        await backend.drain_listeners(graceful="graceful" in request.query, inbound_only="inboundonly" in request.query)
        return Response(text="OK\n")

    async def xds(_: Request) -> Response:
        return _json(plain(await backend.xds_status()))

    async def index(_: Request) -> Response:
        return Response(text="".join(f"  {p}\n" for p in sorted(PAGES)))

    app = App()
    PAGES = {"/stats": stats, "/stats/prometheus": prometheus, "/config_dump": config_dump, "/clusters": clusters,
             "/listeners": listeners, "/ready": ready, "/server_info": info, "/xds": xds}
    for path, handler in PAGES.items():
        app.add_get(path, handler)
    app.add_get("/", index)
    app.add_route("*", "/logging", logging_page)
    app.add_post("/quitquitquit", quit_)
    app.add_post("/drain_listeners", drain)
    return app


class AdminServer:
    """Admin on `host:port`; the Prometheus stats port beside it when `stats_port` is set."""

    def __init__(self, backend: AdminBackend, port: int, *, host: str = "127.0.0.1", stats_port: int | None = None,
                 stats_host: str = "127.0.0.1"):
        self.backend = backend
        self.host, self.port = host, port
        self.stats_host, self.stats_port = stats_host, stats_port
        self._servers: list[HttpServer] = []

    async def start(self) -> None:
        self.port = await self._serve(admin_app(self.backend), self.host, self.port)
        if self.stats_port is not None:
            stats = App()

            async def prometheus(_: Request) -> Response:
                return Response(text=(await self.backend.stats()).render_prometheus(), content_type="text/plain")

            stats.add_get("/stats/prometheus", prometheus)
            self.stats_port = await self._serve(stats, self.stats_host, self.stats_port)
        log.info("admin serving", admin=f"{self.host}:{self.port}", stats_port=self.stats_port)

    async def _serve(self, app: App, host: str, port: int) -> int:
        server = await serve(app, host, port)
        self._servers.append(server)
        return server.port

    async def stop(self) -> None:
        for server in self._servers:
            await server.close()
        self._servers.clear()
