"""Control-plane benchmarks: pilot convergence and citadel (galley: bench/galley.py).

Pilot convergence: galley (SQLite) and pilot run as processes with their default settings;
`services` ServiceEntries (3 endpoints each) are applied, `clients` simulated sidecars
(adsfleet) connect, then one VirtualService apply is timed until each client ACKed the
routes that carry it, and a mesh-wide DestinationRule until each ACKed the changed clusters.
Pilot's CPU seconds and RSS come from /proc. Pilot runs on one CPU, everything else on the other.
"""
from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

from bench import adsfleet, procs
from bench.stats import Spread, percentile

HERE = Path(__file__).resolve().parent
ISTHMUS = [sys.executable, "-m", "isthmus.cli.main"]
NAMESPACE = "bench"
CONNECT_BATCH = 10  # sidecars connecting at once (all 100 at once time out their streams at 1000 services)


# ---------------------------------------------------------------- config the benchmarks apply

def service_entry(i: int) -> dict:
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
        "metadata": {"name": f"svc-{i:04d}", "namespace": NAMESPACE},
        "spec": {
            "hosts": [f"svc-{i:04d}.{NAMESPACE}.svc.cluster.local"],
            "location": "MESH_INTERNAL", "resolution": "STATIC",
            "ports": [{"number": 9080, "name": "http", "protocol": "HTTP"}],
            "endpoints": [{"address": f"127.{100 + i // 250 % 100}.{i % 250}.{k + 1}", "labels": {"version": f"v{k + 1}"}}
                          for k in range(3)],
        },
    }


def virtual_service(marker: str) -> dict:
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "svc-0000", "namespace": NAMESPACE},
        "spec": {"hosts": [f"svc-0000.{NAMESPACE}.svc.cluster.local"],
                 "http": [{"name": marker, "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                           "route": [{"destination": {"host": f"svc-0001.{NAMESPACE}.svc.cluster.local"}}]},
                          {"route": [{"destination": {"host": f"svc-0000.{NAMESPACE}.svc.cluster.local"}}]}]},
    }


def mesh_wide_rule(max_connections: int) -> dict:
    return {
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": "mesh-wide", "namespace": "istio-system"},
        "spec": {"host": f"*.{NAMESPACE}.svc.cluster.local",
                 "trafficPolicy": {"connectionPool": {"tcp": {"maxConnections": max_connections}}}},
    }


def _to_protos(docs: list[dict]):
    from isthmus.galley.convert import document_to_proto

    return [document_to_proto(d, d["metadata"].get("namespace", "default")) for d in docs]


# ---------------------------------------------------------------- processes

def start_galley(sup: procs.Supervisor, store_url: str, cpu: int | None, name: str = "galley") -> str:
    port = procs.free_port()
    sup.start(name, [*ISTHMUS, "galley", "--listen", f"127.0.0.1:{port}", "--monitoring",
                     f"127.0.0.1:{procs.free_port()}", "--store", store_url, "--log-level", "warning"],
              procs.tcp_ready(port), timeout=60, cpu=cpu)
    return f"127.0.0.1:{port}"


def start_pilot(sup: procs.Supervisor, galley: str, cpu: int | None,
                log_level: str = "warning") -> tuple[subprocess.Popen, str, str]:
    ads, mon = procs.free_port(), procs.free_port()
    proc = sup.start("pilot", [*ISTHMUS, "pilot", "--galley", galley, "--plaintext-listen", f"127.0.0.1:{ads}",
                               "--monitoring", f"127.0.0.1:{mon}", "--log-level", log_level],
                     procs.http_ready(f"http://127.0.0.1:{mon}/healthz/ready"), timeout=60, cpu=cpu)
    return proc, f"127.0.0.1:{ads}", f"http://127.0.0.1:{mon}"


def registry_size(monitoring: str) -> int:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{monitoring}/debug/registryz", timeout=30) as r:
            return sum(1 for s in json.loads(r.read()) if s["service"]["hostname"].endswith(f".{NAMESPACE}.svc.cluster.local"))
    except (OSError, ValueError, KeyError):
        return -1


def parse_push_metrics(text: str) -> dict[str, float]:
    """Pilot's Prometheus text → {"cds_s": generate+send seconds, "cds_n": responses, ..., "pushes": n}."""
    out: dict[str, float] = {}
    for m in re.finditer(r'^pilot_xds_push_time_(sum|count)\{type="(\w+)"\} (\S+)$', text, re.M):
        out[f"{m.group(2)}_{'s' if m.group(1) == 'sum' else 'n'}"] = float(m.group(3))
    pushes = re.findall(r'^pilot_push_triggers_total\{type="\w+"\} (\S+)$', text, re.M)
    out["pushes"] = sum(float(x) for x in pushes)
    return out


def push_attribution(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What pilot did between two scrapes: debounced pushes, and per xDS type responses and seconds."""
    return {k: round(after.get(k, 0.0) - before.get(k, 0.0), 3) for k in sorted(set(before) | set(after))}


class PilotMeter:
    """Pilot's CPU seconds between two readings, its RSS, and what its metrics say it did."""

    def __init__(self, pid: int, monitoring: str):
        self.pid = pid
        self.monitoring = monitoring
        self.mark = procs.cpu_seconds(pid)
        self.metrics = self._scrape()

    def _scrape(self) -> dict[str, float]:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.monitoring}/metrics", timeout=30) as r:
                return parse_push_metrics(r.read().decode())
        except OSError:
            return {}

    def lap(self) -> float:
        now = procs.cpu_seconds(self.pid)
        spent, self.mark = now - self.mark, now
        return round(spent, 3)

    def work(self) -> dict[str, float]:
        now = self._scrape()
        done, self.metrics = push_attribution(self.metrics, now), now
        return done

    def last_build_s(self) -> float | None:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.monitoring}/debug/push_status", timeout=30) as r:
                lp = json.loads(r.read()).get("last_push") or {}
                return round(lp["build_seconds"], 3) if "build_seconds" in lp else None
        except (OSError, ValueError):
            return None

    def rss_mib(self) -> float:
        return round(procs.rss_kib(self.pid) / 1024, 1)

    def peak_mib(self) -> float:
        return round(procs.rss_kib(self.pid, "VmHWM") / 1024, 1)


def _latencies(values: list[float]) -> dict:
    vals = sorted(values)
    return {"p50_s": round(percentile(vals, 50), 4), "p99_s": round(percentile(vals, 99), 4),
            "max_s": round(vals[-1], 4), "clients": len(vals)}


def _spread(rounds: list[dict], key: str) -> dict:
    s = Spread.of(r[key] for r in rounds)
    return {"median": s.median, "min": s.min, "max": s.max}


# ---------------------------------------------------------------- pilot convergence

async def _convergence(galley: str, ads: str, meter: PilotMeter, services: int, clients: int, rounds: int,
                       monitoring: str, log: Callable[[str], None]) -> dict:
    from isthmus.galley.client import GalleyClient

    out: dict = {"services": services, "clients": clients, "rounds": rounds}
    client = GalleyClient(galley, timeout=120)
    try:
        started = time.perf_counter()
        docs = [service_entry(i) for i in range(services)]
        for i in range(0, services, 250):
            client.apply(_to_protos(docs[i:i + 250]))
        out["apply_services_s"] = round(time.perf_counter() - started, 3)
        deadline = time.monotonic() + 300
        while registry_size(monitoring) < services:
            if time.monotonic() > deadline:
                raise TimeoutError(f"pilot's registry did not reach {services} services in 300 s")
            await asyncio.sleep(0.2)
        out["registry_ready_s"] = round(time.perf_counter() - started, 3)
        out["pilot_cpu_load_services_s"] = meter.lap()
        out["pilot_work_load_services"] = meter.work()
        log(f"  {services} services in pilot's registry after {out['registry_ready_s']:.1f} s")

        fleet = adsfleet.Fleet(ads, clients, NAMESPACE)
        try:
            started = time.perf_counter()
            await fleet.ramp(CONNECT_BATCH, lambda c: c.synced and c.cluster_count >= services, 600)
            out["initial_sync_all_s"] = round(time.perf_counter() - started, 3)
            out["connect_batch"] = CONNECT_BATCH
            out["reconnects_initial"] = fleet.reconnects()
            out["pilot_cpu_initial_sync_s"] = meter.lap()
            out["pilot_work_initial_sync"] = meter.work()
            out["pilot_rss_connected_mib"] = meter.rss_mib()
            log(f"  {clients} clients synced ({services} clusters each, connected {CONNECT_BATCH} at a time) in "
                f"{out['initial_sync_all_s']:.2f} s; {out['reconnects_initial']} stream(s) cut and reopened")
            await asyncio.sleep(1.0)  # let the initial storm settle (late EDS/RDS ACKs)
            meter.lap()
            meter.work()

            vs_rounds, mw_rounds = [], []
            for r in range(rounds):
                marker = f"bench-{uuid.uuid4().hex[:10]}".encode()
                fleet.arm(adsfleet.Watch(adsfleet.RDS, lambda resp, m=marker: any(m in x.value for x in resp.resources)))
                t0 = time.perf_counter()
                client.apply(_to_protos([virtual_service(marker.decode())]))
                lat = await fleet.reached(t0, 300, "VirtualService change")
                await asyncio.sleep(0.5)
                vs_rounds.append({**_latencies(lat), "pilot_cpu_s": meter.lap(), "build_s": meter.last_build_s(),
                                  "pilot_work": meter.work()})
                log(f"  VirtualService apply → ACKed by all: p50 {vs_rounds[-1]['p50_s'] * 1e3:.0f} ms, "
                    f"p99 {vs_rounds[-1]['p99_s'] * 1e3:.0f} ms")
            for r in range(rounds):
                limit = 10_000 + r
                fleet.arm(adsfleet.Watch(adsfleet.CDS, lambda resp, n=limit: _max_connections(resp) == n))
                t0 = time.perf_counter()
                client.apply(_to_protos([mesh_wide_rule(limit)]))
                lat = await fleet.reached(t0, 300, "mesh-wide DestinationRule")
                await asyncio.sleep(0.5)
                mw_rounds.append({**_latencies(lat), "pilot_cpu_s": meter.lap(), "build_s": meter.last_build_s(),
                                  "pilot_work": meter.work()})
                log(f"  mesh-wide DestinationRule → all {clients} proxies re-pushed: p50 {mw_rounds[-1]['p50_s'] * 1e3:.0f} ms,"
                    f" all {mw_rounds[-1]['max_s'] * 1e3:.0f} ms")
            out["virtual_service"] = {"rounds": vs_rounds, **{k: _spread(vs_rounds, k) for k in
                                                               ("p50_s", "p99_s", "max_s", "pilot_cpu_s", "build_s")}}
            out["mesh_wide"] = {"rounds": mw_rounds, **{k: _spread(mw_rounds, k) for k in
                                                         ("p50_s", "p99_s", "max_s", "pilot_cpu_s", "build_s")}}
            out["reconnects_total"] = fleet.reconnects()
            out["pilot_rss_mib"] = meter.rss_mib()
            out["pilot_peak_rss_mib"] = meter.peak_mib()
        finally:
            await fleet.close()
    finally:
        client.close()
    return out


def _max_connections(resp) -> int | None:
    from envoy.config.cluster.v3 import cluster_pb2

    for r in resp.resources:
        c = cluster_pb2.Cluster.FromString(r.value)
        if c.name.startswith("outbound|") and f".{NAMESPACE}." in c.name:
            th = c.circuit_breakers.thresholds
            return th[0].max_connections.value if th and th[0].HasField("max_connections") else None
    return None


def pilot_convergence(services: int, clients: int, rounds: int, log: Callable[[str], None],
                      run_dir: Path | None = None) -> dict:
    pin = procs.Pinning.detect()
    run_dir = run_dir or Path(tempfile.mkdtemp(prefix="isthmus-bench-cp-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    sup = procs.Supervisor(run_dir)
    try:
        log(f"pilot convergence: {services} services, {clients} simulated sidecars ({run_dir})")
        galley = start_galley(sup, f"sqlite:///{run_dir / 'config.db'}", pin.load)
        pilot, ads, monitoring = start_pilot(sup, galley, pin.proxy)
        meter = PilotMeter(pilot.pid, monitoring)
        with procs.affinity(pin.load):
            out = asyncio.run(_convergence(galley, ads, meter, services, clients, rounds, monitoring, log))
        out["pinning"] = (f"pilot on CPU {pin.proxy}; galley and the simulated clients on CPU {pin.load}"
                          if pin.proxy is not None else pin.note)
        out["settings"] = "pilot and galley with their defaults (debounce 100 ms, max 10 s); plaintext ADS"
        return out
    finally:
        sup.close()


# ---------------------------------------------------------------- citadel

def citadel_child(seconds: float, repeats: int) -> None:
    """Runs in its own process (ca_bench pins it to one core): bench/ca_bench.py's measurements → JSON on stdout."""
    from bench import ca_bench
    from isthmus.citadel.pki.keys import KeyType

    cpu = ca_bench.pin_to_one_core()
    rows = []
    for key_type in KeyType:
        sign, sign_n = max(ca_bench.sign_path_rate(key_type, seconds) for _ in range(repeats))
        rpc, rpc_n = max(asyncio.run(ca_bench.grpc_rate(key_type, seconds)) for _ in range(repeats))
        refs = [ca_bench.openssl_speed(key_type, max(1, int(seconds)), cpu) for _ in range(repeats)]
        ref = max((r for r in refs if r), default=None)
        rows.append({"key_type": key_type.value, "sign_path_per_s": round(sign, 1), "sign_path_n": sign_n,
                     "grpc_per_s": round(rpc, 1), "grpc_n": rpc_n, "openssl_sign_per_s": ref,
                     "sign_path_vs_openssl": round(sign / ref, 3) if ref else None})
    print(json.dumps({"benchmark": "ca", "seconds_per_run": seconds, "openssl_seconds_per_run": max(1, int(seconds)),
                      "runs": repeats, "cpu": cpu, "rows": rows}))


def citadel_bench(seconds: float, repeats: int, log: Callable[[str], None]) -> dict:
    """bench/ca_bench.py's functions in a child process (it pins itself to one core): best of `repeats`."""
    code = f"from bench.controlplane import citadel_child; citadel_child({seconds!r}, {repeats!r})"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=HERE.parent)
    if res.returncode != 0:
        return {"unavailable": f"citadel benchmark failed: {(res.stderr.strip().splitlines() or ['?'])[-1][:300]}"}
    data = json.loads(res.stdout.strip().splitlines()[-1])
    for row in data["rows"]:
        log(f"  citadel {row['key_type']}: {row['sign_path_per_s']:.0f} signs/s, {row['grpc_per_s']:.0f} gRPC calls/s, "
            f"openssl {row['openssl_sign_per_s']}")
    return data
