"""What `isthmus up` starts: a pure plan of components (argv, ports, readiness, log).

The launcher (up.py) only executes the plan. Components appear here as the mesh's
parts exist in this install; `missing` says what a full mesh still lacks.
"""
from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Component:
    name: str
    argv: tuple[str, ...]
    ports: tuple[int, ...]  # loopback ports it binds (checked free before start)
    ready_url: str = ""  # HTTP GET that answers 200 once ready
    ready_port: int = 0  # or: a TCP port that accepts connections
    urls: dict[str, str] = field(default_factory=dict)  # shown in the summary table
    address: str = ""  # the client-facing address (galley's gRPC, ...)

    def log_file(self, run_dir: Path) -> Path:
        return run_dir / "logs" / f"{self.name}.log"


@dataclass(frozen=True)
class Plan:
    components: tuple[Component, ...]
    missing: tuple[str, ...]


@dataclass(frozen=True)
class UpOptions:
    run_dir: Path
    store: str = ""  # "" → SQLite in the run dir
    galley_port: int = 9901
    galley_monitoring_port: int = 9902
    citadel_port: int = 8060
    citadel_monitoring_port: int = 8061


def options_with_base_port(run_dir: Path, store: str, base_port: int) -> UpOptions:
    """Standard ports (0), or consecutive ports from `base_port` (tests, a second mesh)."""
    if not base_port:
        return UpOptions(run_dir=run_dir, store=store)
    return UpOptions(
        run_dir=run_dir, store=store,
        galley_port=base_port, galley_monitoring_port=base_port + 1,
        citadel_port=base_port + 2, citadel_monitoring_port=base_port + 3,
    )


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def build_plan(opts: UpOptions) -> Plan:
    exe = (sys.executable, "-m", "isthmus.cli.main")
    store = opts.store or f"sqlite:///{opts.run_dir / 'config.db'}"
    comps = [
        Component(
            name="galley",
            argv=(*exe, "galley", "--listen", f"127.0.0.1:{opts.galley_port}",
                  "--monitoring", f"127.0.0.1:{opts.galley_monitoring_port}", "--store", store),
            ports=(opts.galley_port, opts.galley_monitoring_port),
            ready_url=f"http://127.0.0.1:{opts.galley_monitoring_port}/healthz/ready",
            urls={"config API (gRPC)": f"127.0.0.1:{opts.galley_port}",
                  "metrics": f"http://127.0.0.1:{opts.galley_monitoring_port}/metrics"},
            address=f"127.0.0.1:{opts.galley_port}",
        )
    ]
    missing = []
    if _have("isthmus.citadel.main"):
        comps.append(Component(
            name="citadel",
            argv=(*exe, "citadel", "--listen", f"127.0.0.1:{opts.citadel_port}",
                  "--monitoring", f"127.0.0.1:{opts.citadel_monitoring_port}", "--data-dir", str(opts.run_dir / "citadel")),
            ports=(opts.citadel_port, opts.citadel_monitoring_port),
            ready_url=f"http://127.0.0.1:{opts.citadel_monitoring_port}/healthz/ready",
            urls={"CA (gRPC)": f"127.0.0.1:{opts.citadel_port}",
                  "metrics": f"http://127.0.0.1:{opts.citadel_monitoring_port}/metrics"},
            address=f"127.0.0.1:{opts.citadel_port}",
        ))
    else:
        missing.append("citadel")
    for part, module in (("pilot", "isthmus.pilot.main"), ("ingress gateway", "isthmus.gateway.main"),
                         ("sidecar proxies + Bookinfo", "isthmus.samples.bookinfo")):
        if not _have(module):
            missing.append(part)
    return Plan(tuple(comps), tuple(missing))
