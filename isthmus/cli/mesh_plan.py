"""What `isthmus up` starts: a pure plan of steps (processes and set-up actions).

The launcher (up.py) executes the plan in order and shows progress; the plan itself
decides names, ports, command lines, readiness checks and log files. Local mode:
every process binds 127.0.0.1; each proxy gets its own block of ports.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from isthmus.samples.bookinfo.topology import APPS, LOCAL_PLATFORM, NETWORKING_DIR

CORPUS_NETWORKING = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "istio-samples" / "bookinfo" / "networking"


@dataclass(frozen=True)
class Component:
    """A long-running process."""

    name: str
    argv: tuple[str, ...]
    ports: tuple[int, ...]  # loopback ports it binds (checked free before start)
    ready_url: str = ""  # HTTP GET that answers 200 once ready
    ready_port: int = 0  # or: a TCP port that accepts connections
    urls: dict[str, str] = field(default_factory=dict)  # shown in the summary table
    address: str = ""  # the client-facing address (galley's gRPC, ...)
    env: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)  # recorded in state.json (e.g. pilot's debug address)

    def log_file(self, run_dir: Path) -> Path:
        return run_dir / "logs" / f"{self.name}.log"


@dataclass(frozen=True)
class MintTokens:
    """Mint mesh tokens (citadel's data dir key) into run_dir/tokens/<ns>-<sa>."""

    identities: tuple[tuple[str, str], ...]
    name: str = "tokens"


@dataclass(frozen=True)
class ApplyConfig:
    """Apply YAML files through galley (all documents, one atomic apply per file)."""

    files: tuple[Path, ...]
    name: str = "config"


Step = Component | MintTokens | ApplyConfig


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    ingress_url: str = ""

    @property
    def components(self) -> tuple[Component, ...]:
        return tuple(s for s in self.steps if isinstance(s, Component))


@dataclass(frozen=True)
class UpOptions:
    run_dir: Path
    store: str = ""  # "" → SQLite in the run dir
    base_port: int = 0  # 0: the standard ports
    engine: str = "python"
    istiod: bool = False
    bookinfo: bool = True
    ingress_port: int = 8080

    def port(self, standard: int, offset: int) -> int:
        return self.base_port + offset if self.base_port else standard


def token_path(run_dir: Path, namespace: str, sa: str) -> Path:
    return run_dir / "tokens" / f"{namespace}-{sa}"


def _networking_files() -> tuple[Path, ...]:
    """Istio's own files when ../shared/corpus is beside the checkout, else ours."""
    names = ("bookinfo-gateway.yaml", "destination-rule-all.yaml")
    base = CORPUS_NETWORKING if all((CORPUS_NETWORKING / n).exists() for n in names) else NETWORKING_DIR
    return tuple(base / n for n in names)


def build_plan(opts: UpOptions) -> Plan:
    exe = (sys.executable, "-m", "isthmus.cli.main")
    run = opts.run_dir
    store = opts.store or f"sqlite:///{run / 'config.db'}"
    galley, galley_mon = opts.port(9901, 0), opts.port(9902, 1)
    citadel, citadel_mon = opts.port(8060, 2), opts.port(8061, 3)
    xds_plain, xds_mtls, pilot_mon = opts.port(15010, 4), opts.port(15012, 5), opts.port(15014, 6)
    steps: list[Step] = [
        Component(
            name="galley",
            argv=(*exe, "galley", "--listen", f"127.0.0.1:{galley}", "--monitoring", f"127.0.0.1:{galley_mon}", "--store", store),
            ports=(galley, galley_mon),
            ready_url=f"http://127.0.0.1:{galley_mon}/healthz/ready",
            urls={"config API (gRPC)": f"127.0.0.1:{galley}", "metrics": f"http://127.0.0.1:{galley_mon}/metrics"},
            address=f"127.0.0.1:{galley}",
        ),
        Component(
            name="citadel",
            argv=(*exe, "citadel", "--listen", f"127.0.0.1:{citadel}", "--monitoring", f"127.0.0.1:{citadel_mon}",
                  "--data-dir", str(run / "citadel")),
            ports=(citadel, citadel_mon),
            ready_url=f"http://127.0.0.1:{citadel_mon}/healthz/ready",
            urls={"CA (gRPC)": f"127.0.0.1:{citadel}", "metrics": f"http://127.0.0.1:{citadel_mon}/metrics"},
            address=f"127.0.0.1:{citadel}",
        ),
    ]
    identities = [("istio-system", "istiod"), ("istio-system", "istio-ingressgateway-service-account")]
    if opts.bookinfo:
        identities += [("default", a.service_account) for a in APPS]
    steps.append(MintTokens(tuple(dict.fromkeys(identities))))
    steps.append(Component(
        name="pilot",
        argv=(*exe, "pilot", "--galley", f"127.0.0.1:{galley}", "--plaintext-listen", f"127.0.0.1:{xds_plain}",
              "--mtls-listen", f"127.0.0.1:{xds_mtls}", "--ca", f"127.0.0.1:{citadel}",
              "--token-file", str(token_path(run, "istio-system", "istiod")), "--monitoring", f"127.0.0.1:{pilot_mon}"),
        ports=(xds_plain, xds_mtls, pilot_mon),
        ready_url=f"http://127.0.0.1:{pilot_mon}/healthz/ready",
        urls={"xDS (mTLS)": f"127.0.0.1:{xds_mtls}", "xDS (plaintext)": f"127.0.0.1:{xds_plain}",
              "debug": f"http://127.0.0.1:{pilot_mon}/debug/syncz"},
        address=f"127.0.0.1:{xds_mtls}",
        extra={"debug": f"127.0.0.1:{pilot_mon}"},
    ))
    if not opts.bookinfo:
        return Plan(tuple(steps))
    steps.append(ApplyConfig((LOCAL_PLATFORM, *_networking_files())))
    ingress = opts.port(opts.ingress_port, 9)
    gw_admin, gw_status, gw_stats = opts.port(15100, 10), opts.port(15121, 11), opts.port(15190, 12)
    steps.append(Component(
        name="istio-ingressgateway",
        argv=(*exe, "gateway", "--name", "istio-ingressgateway", "-n", "istio-system",
              "--service-account", "istio-ingressgateway-service-account", "--labels", "istio=ingressgateway,app=istio-ingressgateway",
              "--port-map", f"80={ingress},8080={ingress}", "--bind", "127.0.0.1", "--pilot", f"127.0.0.1:{xds_mtls}", "--ca", f"127.0.0.1:{citadel}",
              "--token-file", str(token_path(run, "istio-system", "istio-ingressgateway-service-account")),
              "--engine", opts.engine, "--run-dir", str(run / "proxies" / "istio-ingressgateway"),
              "--admin-port", str(gw_admin), "--status-port", str(gw_status), "--stats-port", str(gw_stats)),
        ports=(ingress, gw_admin, gw_status, gw_stats),
        ready_url=f"http://127.0.0.1:{gw_status}/healthz/ready",
        urls={"ingress": f"http://127.0.0.1:{ingress}/productpage", "admin": f"http://127.0.0.1:{gw_admin}/stats"},
    ))
    for i, app in enumerate(APPS):
        base = opts.port(20000 + i * 10, 20 + i * 10)
        admin, outbound, status, stats, inbound, app_port = base, base + 1, base + 2, base + 3, base + 4, base + 5
        name = f"{app.name}-{app.version}"
        steps.append(Component(
            name=f"{name}-sidecar",
            argv=(*exe, "proxy", "--name", f"{name}-0", "-n", "default", "--service-account", app.service_account,
                  "--labels", ",".join(f"{k}={v}" for k, v in app.labels.items()), "--workload-group", app.workload_group,
                  "--port", f"http:{app_port}:{inbound}", "--outbound-port", str(outbound), "--inbound-port", str(base + 6),
                  "--pilot", f"127.0.0.1:{xds_mtls}", "--ca", f"127.0.0.1:{citadel}",
                  "--token-file", str(token_path(run, "default", app.service_account)), "--engine", opts.engine,
                  "--run-dir", str(run / "proxies" / name), "--admin-port", str(admin), "--status-port", str(status),
                  "--stats-port", str(stats)),
            ports=(admin, outbound, status, stats, inbound),
            ready_url=f"http://127.0.0.1:{status}/healthz/ready",
            urls={"admin": f"http://127.0.0.1:{admin}/stats", "inbound": f"127.0.0.1:{inbound}"},
        ))
        steps.append(Component(
            name=name,
            argv=app.argv(app_port),
            ports=(app_port,),
            ready_url=f"http://127.0.0.1:{app_port}{app.health_path}",
            urls={"app": f"http://127.0.0.1:{app_port}/"},
            env={"HTTP_PROXY": f"http://127.0.0.1:{outbound}", "NO_PROXY": "127.0.0.1,localhost", "HOSTNAME": f"{name}-0"},
        ))
    return Plan(tuple(steps), ingress_url=f"http://127.0.0.1:{ingress}/productpage")
