"""A real local mesh for integration tests: galley, citadel, pilot and sidecars as processes.

Every server binds 127.0.0.1 on free ports; everything started is stopped on close().
"""
from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.procs import ISTHMUS, free_port, stop, tcp_ready, wait_for


def http_ready(url: str):
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=0.5) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False

    return check


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a test wants to see the 3xx itself
        return None


@dataclass
class Sidecar:
    name: str
    proc: subprocess.Popen
    outbound_port: int
    admin_port: int
    status_port: int
    inbound_ports: dict[str, int]
    log: Path

    def proxy_get(self, url: str, headers: dict | None = None, timeout: float = 10.0, method: str = "GET") -> tuple[int, dict, bytes]:
        """A request sent as the app would: to the sidecar as its HTTP_PROXY."""
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{self.outbound_port}"}), _NoRedirect()
        )
        req = urllib.request.Request(url, headers=headers or {}, method=method)
        try:
            with opener.open(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()


@dataclass
class Gateway:
    """A running `isthmus gateway`: `ports` maps each Gateway server port to where it listens."""

    name: str
    proc: subprocess.Popen
    ports: dict[int, int]
    admin_port: int
    status_port: int
    log: Path

    def url(self, server_port: int, path: str = "/", scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.ports[server_port]}{path}"


@dataclass
class LocalMesh:
    base: Path
    procs: list[subprocess.Popen] = field(default_factory=list)
    galley_port: int = 0
    pilot_plain: int = 0
    pilot_mtls: int = 0
    pilot_monitoring: int = 0
    citadel_port: int = 0
    sidecars: list[Sidecar] = field(default_factory=list)

    def _start(self, name: str, argv: list[str], ready, timeout: float = 30.0) -> subprocess.Popen:
        log = self.base / f"{name}.log"
        out = open(log, "ab")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)

        def check() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            return ready()

        wait_for(check, timeout, name, log)
        return proc

    def start_control_plane(self, mesh_config: str | None = None) -> "LocalMesh":
        self.base.mkdir(parents=True, exist_ok=True)
        self.galley_port = free_port()
        self.galley = self.start_galley()
        self.citadel_port = free_port()
        cmon = free_port()
        self._start("citadel", [*ISTHMUS, "citadel", "--data-dir", str(self.base / "citadel"), "--listen",
                                f"127.0.0.1:{self.citadel_port}", "--monitoring", f"127.0.0.1:{cmon}"],
                    http_ready(f"http://127.0.0.1:{cmon}/healthz/ready"))
        token = self.token("istio-system", "istiod")
        self.pilot_plain, self.pilot_mtls, self.pilot_monitoring = free_port(), free_port(), free_port()
        argv = [*ISTHMUS, "pilot", "--galley", f"127.0.0.1:{self.galley_port}", "--plaintext-listen",
                f"127.0.0.1:{self.pilot_plain}", "--mtls-listen", f"127.0.0.1:{self.pilot_mtls}", "--ca",
                f"127.0.0.1:{self.citadel_port}", "--token-file", str(token), "--monitoring",
                f"127.0.0.1:{self.pilot_monitoring}", "--debounce-after", "20ms", "--workload-entry-grace", "1s"]
        if mesh_config:
            path = self.base / "mesh.yaml"
            path.write_text(mesh_config)
            argv += ["--mesh-config", str(path)]
        self._start("pilot", argv, http_ready(f"http://127.0.0.1:{self.pilot_monitoring}/healthz/ready"))
        return self

    def start_galley(self) -> subprocess.Popen:
        store = f"sqlite:///{self.base / 'config.db'}"
        return self._start("galley", [*ISTHMUS, "galley", "--listen", f"127.0.0.1:{self.galley_port}", "--monitoring",
                                      f"127.0.0.1:{free_port()}", "--store", store], tcp_ready(self.galley_port))

    def stop_galley(self) -> None:
        stop(self.galley)
        self.procs.remove(self.galley)

    def token(self, namespace: str, sa: str) -> Path:
        path = self.base / f"token-{namespace}-{sa}"
        if not path.exists():
            tok = subprocess.run([*ISTHMUS, "token", "create", "--data-dir", str(self.base / "citadel"), "-n", namespace,
                                  "-s", sa, "--ttl", "2h"], capture_output=True, text=True, check=True, timeout=60).stdout.strip()
            path.write_text(tok)
        return path

    def apply(self, yaml_text: str) -> str:
        res = subprocess.run([*ISTHMUS, "apply", "-f", "-", "--galley", f"127.0.0.1:{self.galley_port}"],
                             input=yaml_text, capture_output=True, text=True, timeout=60)
        if res.returncode != 0:
            raise AssertionError(f"apply failed: {res.stderr}")
        return res.stdout

    def delete(self, kind: str, name: str, namespace: str = "default") -> None:
        subprocess.run([*ISTHMUS, "delete", kind, name, "-n", namespace, "--galley", f"127.0.0.1:{self.galley_port}"],
                       capture_output=True, text=True, timeout=60, check=True)

    def add_sidecar(self, name: str, *, namespace: str = "default", service_account: str = "default",
                    labels: dict | None = None, ports: dict[str, int] | None = None, engine: str = "envoy",
                    workload_group: str = "", ip: str = "127.0.0.1", delta: bool = False) -> Sidecar:
        outbound, admin, status, stats = free_port(), free_port(), free_port(), free_port()
        inbound = {pname: free_port() for pname in (ports or {})}
        argv = [*ISTHMUS, "proxy", "--name", name, "-n", namespace, "--service-account", service_account,
                "--ip", ip, "--pilot", f"127.0.0.1:{self.pilot_mtls}", "--ca", f"127.0.0.1:{self.citadel_port}",
                "--token-file", str(self.token(namespace, service_account)), "--engine", engine,
                "--run-dir", str(self.base / f"proxy-{name}"), "--outbound-port", str(outbound),
                "--admin-port", str(admin), "--status-port", str(status), "--stats-port", str(stats),
                "--inbound-port", str(free_port())]
        if labels:
            argv += ["--labels", ",".join(f"{k}={v}" for k, v in labels.items())]
        for pname, app_port in (ports or {}).items():
            argv += ["--port", f"{pname}:{app_port}:{inbound[pname]}"]
        if workload_group:
            argv += ["--workload-group", workload_group]
        if delta:
            argv += ["--delta"]
        log = self.base / f"proxy-{name}.log"
        proc = self._start(f"proxy-{name}", argv, http_ready(f"http://127.0.0.1:{status}/healthz/ready"), timeout=60)
        sc = Sidecar(name, proc, outbound, admin, status, inbound, log)
        self.sidecars.append(sc)
        return sc

    def add_gateway(self, name: str = "istio-ingressgateway", *, namespace: str = "istio-system",
                    labels: dict | None = None, server_ports: tuple[int, ...] = (80, 443), engine: str = "envoy",
                    service_account: str = "", delta: bool = False) -> Gateway:
        """`isthmus gateway` with every Gateway server port in `server_ports` mapped to a free port
        on 127.0.0.1 (so tests run side by side); ready once its first configuration is applied."""
        admin, status, stats = free_port(), free_port(), free_port()
        ports = {p: free_port() for p in server_ports}
        sa = service_account or f"{name}-service-account"
        argv = [*ISTHMUS, "gateway", "--name", name, "-n", namespace, "--service-account", sa,
                "--pilot", f"127.0.0.1:{self.pilot_mtls}", "--ca", f"127.0.0.1:{self.citadel_port}",
                "--token-file", str(self.token(namespace, sa)), "--engine", engine,
                "--run-dir", str(self.base / f"gateway-{name}"), "--admin-port", str(admin),
                "--status-port", str(status), "--stats-port", str(stats), "--bind", "127.0.0.1",
                "--port-map", ",".join(f"{a}={b}" for a, b in ports.items())]
        if labels:
            argv += ["--labels", ",".join(f"{k}={v}" for k, v in labels.items())]
        if delta:
            argv += ["--delta"]
        log = self.base / f"gateway-{name}.log"
        proc = self._start(f"gateway-{name}", argv, http_ready(f"http://127.0.0.1:{status}/healthz/ready"), timeout=60)
        return Gateway(name, proc, ports, admin, status, log)

    def syncz(self) -> list[dict]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.pilot_monitoring}/debug/syncz", timeout=5) as r:
            return json.loads(r.read())

    def wait_converged(self, timeout: float = 15.0) -> None:
        """Every connected proxy has ACKed what pilot last sent it."""
        def check() -> bool:
            entries = self.syncz()
            return bool(entries) and all(_acked(e) for e in entries)

        wait_for(check, timeout, "proxies converged", self.base / "pilot.log")

    def close(self) -> None:
        for p in reversed(self.procs):
            stop(p)
        self.procs.clear()


def _acked(entry: dict) -> bool:
    types = entry.get("types") or {}
    return bool(types) and all(t.get("state") == "SYNCED" for t in types.values())


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except AssertionError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached in {timeout}s" + (f": {last}" if last else ""))
