"""What `isthmus up` starts: a pure plan of steps (processes and set-up actions).

The launcher (up.py) executes the plan in order and shows progress; the plan itself
decides names, ports, command lines, readiness checks and log files. Local mode:
every process binds 127.0.0.1; each proxy gets its own block of ports. Pod mode
(`--capture iptables`, `UpOptions.pods`): the control plane listens on the pods' bridge
address, each workload (sidecar + app, or the gateway) runs in its own network namespace
on the standard ports, and iptables captures the apps' traffic (see netns.py).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from isthmus.cli.netns import POD_ENV, PodNetwork, with_vips
from isthmus.samples.bookinfo.topology import APPS, LOCAL_PLATFORM, NETWORKING_DIR, SERVICES

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
    log_owner: int | None = None  # uid the process runs as (it reopens /dev/stdout: Envoy's access log)

    def log_file(self, run_dir: Path) -> Path:
        return run_dir / "logs" / f"{self.name}.log"


@dataclass(frozen=True)
class MintTokens:
    """Mint mesh tokens (citadel's data dir key) into run_dir/tokens/<ns>-<sa>; `copies`
    (namespace, sa, pod) also puts one into that pod's directory, readable by its proxy only."""

    identities: tuple[tuple[str, str], ...]
    copies: tuple[tuple[str, str, str], ...] = ()
    name: str = "tokens"


@dataclass(frozen=True)
class ApplyConfig:
    """Apply YAML files (then YAML texts) through galley (one atomic apply per file/text)."""

    files: tuple[Path, ...]
    texts: tuple[str, ...] = ()
    name: str = "config"


@dataclass(frozen=True)
class CreatePods:
    """Bridge, network namespaces, hosts files and capture rules (netns.create)."""

    network: PodNetwork
    name: str = "pods"


Step = Component | MintTokens | ApplyConfig | CreatePods

POD_TOKEN = "token"  # in each pod's directory
GATEWAY = "istio-ingressgateway"


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
    pods: PodNetwork | None = None  # pod mode: iptables capture in network namespaces

    def port(self, standard: int, offset: int) -> int:
        return self.base_port + offset if self.base_port else standard


def token_path(run_dir: Path, namespace: str, sa: str) -> Path:
    return run_dir / "tokens" / f"{namespace}-{sa}"


def _networking_files() -> tuple[Path, ...]:
    """Istio's own files when ../shared/corpus is beside the checkout, else ours."""
    names = ("bookinfo-gateway.yaml", "destination-rule-all.yaml")
    base = CORPUS_NETWORKING if all((CORPUS_NETWORKING / n).exists() for n in names) else NETWORKING_DIR
    return tuple(base / n for n in names)


def pod_names() -> tuple[tuple[str, bool], ...]:
    """Bookinfo's pods in start order: (workload, iptables capture); the gateway has none."""
    return ((GATEWAY, False), *((f"{a.name}-{a.version}", True) for a in APPS))


def pod_services() -> tuple[str, ...]:
    return SERVICES


def _as_istiod(steps: list[Step], exe: tuple[str, ...], run: Path, store: str, host: str, ports: tuple[int, ...]) -> list[Step]:
    """--istiod: galley, citadel and pilot become one `isthmus istiod` process (same ports)."""
    galley, galley_mon, citadel, citadel_mon, xds_plain, xds_mtls, pilot_mon = ports
    istiod = Component(
        name="istiod",
        argv=(*exe, "istiod", "--data-dir", str(run), "--store", store,
              "--galley-listen", f"127.0.0.1:{galley}", "--galley-monitoring", f"127.0.0.1:{galley_mon}",
              "--ca-listen", f"{host}:{citadel}", "--ca-monitoring", f"127.0.0.1:{citadel_mon}",
              "--plaintext-listen", f"{host}:{xds_plain}", "--mtls-listen", f"{host}:{xds_mtls}",
              "--monitoring", f"127.0.0.1:{pilot_mon}"),
        ports=tuple(p for p in ports if host == "127.0.0.1" or p in (galley, galley_mon, citadel_mon, pilot_mon)),
        ready_url=f"http://127.0.0.1:{pilot_mon}/healthz/ready",
        urls={"config API (gRPC)": f"127.0.0.1:{galley}", "CA (gRPC)": f"{host}:{citadel}",
              "xDS (mTLS)": f"{host}:{xds_mtls}", "debug": f"http://127.0.0.1:{pilot_mon}/debug/syncz"},
        address=f"127.0.0.1:{galley}",
        extra={"debug": f"127.0.0.1:{pilot_mon}"},
    )
    out: list[Step] = []
    for step in steps:
        if isinstance(step, Component) and step.name in ("galley", "citadel", "pilot"):
            if step.name == "galley":
                out.append(istiod)
            continue
        out.append(step)
    return out


def build_plan(opts: UpOptions) -> Plan:
    exe = (sys.executable, "-m", "isthmus.cli.main")
    run = opts.run_dir
    store = opts.store or f"sqlite:///{run / 'config.db'}"
    galley, galley_mon = opts.port(9901, 0), opts.port(9902, 1)
    citadel, citadel_mon = opts.port(8060, 2), opts.port(8061, 3)
    xds_plain, xds_mtls, pilot_mon = opts.port(15010, 4), opts.port(15012, 5), opts.port(15014, 6)
    # Where workloads reach citadel and pilot: loopback, or the bridge in pod mode (those
    # ports are then not checked on 127.0.0.1: the bridge address is the run's own).
    host = opts.pods.host_ip if opts.pods else "127.0.0.1"
    on_bridge = opts.pods is not None
    steps: list[Step] = [CreatePods(opts.pods)] if opts.pods else []
    steps += [
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
            argv=(*exe, "citadel", "--listen", f"{host}:{citadel}", "--monitoring", f"127.0.0.1:{citadel_mon}",
                  "--data-dir", str(run / "citadel")),
            ports=(citadel_mon,) if on_bridge else (citadel, citadel_mon),
            ready_url=f"http://127.0.0.1:{citadel_mon}/healthz/ready",
            urls={"CA (gRPC)": f"{host}:{citadel}", "metrics": f"http://127.0.0.1:{citadel_mon}/metrics"},
            address=f"{host}:{citadel}",
        ),
    ]
    identities = [("istio-system", "istiod"), ("istio-system", "istio-ingressgateway-service-account")]
    if opts.bookinfo:
        identities += [("default", a.service_account) for a in APPS]
    copies = ()
    if opts.pods and opts.bookinfo:
        copies = tuple(("default", a.service_account, f"{a.name}-{a.version}") for a in APPS)
    steps.append(MintTokens(tuple(dict.fromkeys(identities)), copies))
    steps.append(Component(
        name="pilot",
        argv=(*exe, "pilot", "--galley", f"127.0.0.1:{galley}", "--plaintext-listen", f"{host}:{xds_plain}",
              "--mtls-listen", f"{host}:{xds_mtls}", "--ca", f"{host}:{citadel}",
              "--token-file", str(token_path(run, "istio-system", "istiod")), "--monitoring", f"127.0.0.1:{pilot_mon}"),
        ports=(pilot_mon,) if on_bridge else (xds_plain, xds_mtls, pilot_mon),
        ready_url=f"http://127.0.0.1:{pilot_mon}/healthz/ready",
        urls={"xDS (mTLS)": f"{host}:{xds_mtls}", "xDS (plaintext)": f"{host}:{xds_plain}",
              "debug": f"http://127.0.0.1:{pilot_mon}/debug/syncz"},
        address=f"{host}:{xds_mtls}",
        extra={"debug": f"127.0.0.1:{pilot_mon}"},
    ))
    if opts.istiod:
        steps = _as_istiod(steps, exe, run, store, host, (galley, galley_mon, citadel, citadel_mon, xds_plain, xds_mtls, pilot_mon))
    if not opts.bookinfo:
        return Plan(tuple(steps))
    if opts.pods:
        return _bookinfo_in_pods(opts, opts.pods, steps, exe, f"{host}:{xds_mtls}", f"{host}:{citadel}")
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


def _bookinfo_in_pods(opts: UpOptions, net: PodNetwork, steps: list[Step], exe: tuple[str, ...], pilot: str,
                      ca: str) -> Plan:
    """Pod mode: the gateway in its pod (reached at its pod IP), then per workload its sidecar
    (`--capture iptables`, as the proxy uid) and the app on 0.0.0.0:9080 calling
    `http://<service>:9080` with no HTTP proxy. Standard ports inside every pod."""
    run = opts.run_dir
    steps.append(ApplyConfig(_networking_files(), (with_vips(LOCAL_PLATFORM.read_text(), net),)))
    gw = net.pod(GATEWAY)
    steps.append(Component(
        name=GATEWAY,
        argv=net.exec_argv(gw, (*exe, "gateway", "--name", GATEWAY, "-n", "istio-system",
                                "--service-account", "istio-ingressgateway-service-account",
                                "--labels", "istio=ingressgateway,app=istio-ingressgateway",
                                "--port-map", "80=8080,8080=8080", "--bind", "0.0.0.0", "--ip", gw.ip,
                                "--pilot", pilot, "--ca", ca,
                                "--token-file", str(token_path(run, "istio-system", "istio-ingressgateway-service-account")),
                                "--engine", opts.engine, "--run-dir", str(run / "proxies" / GATEWAY))),
        ports=(),
        ready_url=f"http://{gw.ip}:15021/healthz/ready",
        urls={"ingress": f"http://{gw.ip}:8080/productpage", "pod": f"{gw.netns} {gw.ip}"},
        env=POD_ENV,
    ))
    for app in APPS:
        name = f"{app.name}-{app.version}"
        pod = net.pod(name)
        home = net.pod_path(pod)
        steps.append(Component(
            name=f"{name}-sidecar",
            argv=net.exec_argv(pod, (
                *exe, "proxy", "--name", f"{name}-0", "-n", "default", "--service-account", app.service_account,
                "--labels", ",".join(f"{k}={v}" for k, v in app.labels.items()), "--workload-group", app.workload_group,
                "--ip", pod.ip, "--capture", "iptables", "--port", f"http:{app.port}", "--pilot", pilot, "--ca", ca,
                "--token-file", str(home / POD_TOKEN), "--engine", opts.engine, "--run-dir", str(home / "proxy")),
                as_proxy=True),
            ports=(),
            ready_url=f"http://{pod.ip}:15021/healthz/ready",
            urls={"inbound": f"{pod.ip}:{app.port}", "pod": f"{pod.netns} {pod.ip}"},
            env={**POD_ENV, "HOME": str(home)},
            log_owner=net.proxy_uid,
        ))
        steps.append(Component(
            name=name,
            argv=net.exec_argv(pod, app.argv(app.port, host="0.0.0.0")),
            ports=(),
            # through the sidecar's inbound capture, as a kubelet probe of a pod with a sidecar
            ready_url=f"http://{pod.ip}:{app.port}{app.health_path}",
            urls={"app": f"http://{pod.ip}:{app.port}/"},
            env={**POD_ENV, "HOSTNAME": f"{name}-0"},
        ))
    return Plan(tuple(steps), ingress_url=f"http://{gw.ip}:8080/productpage")
