"""`isthmus proxy` — the agent (what pilot-agent is to Envoy).

Gets the workload certificate from citadel (token → CSR → chain, renewed at half
life), then runs a data-plane engine configured by pilot over ADS:
`--engine envoy` (a real Envoy with our bootstrap and SDS from this agent) or
`--engine python` (Isthmus's own data plane). Serves health on the status port
(`/healthz/ready`: certificate loaded and first full config applied), drains
gracefully on SIGTERM, and `isthmus proxy wait-ready` holds an app until ready.
"""
from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from isthmus.cli import plain
from isthmus.proxy.bootstrap import WorkloadIdentity, add_workload_arguments, build_bootstrap, workload_from_args
from isthmus.shared import logging as slog
from isthmus.shared.service.runtime import stop_event
from isthmus.shared.service.http import App, HttpServer, Request, Response, serve

log = slog.get_logger("proxy.agent")


@dataclass
class AgentOptions:
    workload: WorkloadIdentity
    pilot: str
    plaintext_xds: bool
    ca: str
    token_file: Path | None
    engine: str
    run_dir: Path
    admin_port: int
    status_port: int
    stats_port: int
    drain_seconds: float
    delta: bool
    concurrency: int


async def _certificates(opts: AgentOptions):
    from isthmus.citadel.certmanager import CertificateManager
    from isthmus.citadel.client import CitadelClient
    from isthmus.citadel.pki.keygen import generate_in_child
    from isthmus.citadel.spiffe import SpiffeId

    if opts.token_file is None:
        raise plain.Failure("--token-file is required: the workload proves its identity to citadel with it")
    w = opts.workload
    identity = SpiffeId(w.trust_domain, w.namespace, w.service_account)
    token_path = opts.token_file
    # Keys are made in a forked child: the agent never loads `cryptography` (~8 MiB per sidecar).
    manager = CertificateManager(identity, CitadelClient(opts.ca, token=lambda: token_path.read_text().strip()),
                                 keys=generate_in_child)
    manager.start()
    return manager


async def _status_server(port: int, ready, host: str = "127.0.0.1") -> HttpServer:
    async def healthz(_: Request) -> Response:
        ok, why = await ready()
        return Response(status=200 if ok else 503, text="ok\n" if ok else f"not ready: {why}\n")

    app = App()
    app.add_get("/healthz/ready", healthz)
    app.add_get("/ready", healthz)
    return await serve(app, host, port)


async def run_agent(opts: AgentOptions) -> int:
    manager = await _certificates(opts)
    stop = stop_event()
    engine = None
    sds = None
    status = None

    async def ready() -> tuple[bool, str]:
        if not manager.ready:
            return False, "no workload certificate yet"
        if engine is None:
            return False, "engine not started"
        if not await engine.ready():
            return False, "waiting for the first full configuration from pilot"
        return True, ""

    try:
        # A pod (own address, e.g. netns/compose) answers probes on every address, as pilot-agent's
        # status port does; on a shared host (127.0.0.1) only on loopback.
        status_host = "127.0.0.1" if opts.workload.ip.startswith("127.") else "0.0.0.0"
        status = await _status_server(opts.status_port, ready, status_host)
        log.info("waiting for the workload certificate", ca=opts.ca)
        await manager.wait_ready(timeout=60)
        if opts.engine == "envoy":
            from isthmus.citadel.sds import SdsServer  # grpcio: only the Envoy engine's agent serves SDS
            from isthmus.proxy.engines.envoy import EnvoyEngine

            sds_socket = opts.run_dir / "sds.sock"
            sds = SdsServer(manager, sds_socket)
            await sds.start()
            boot = build_bootstrap(opts.workload, opts.pilot, str(sds_socket), mtls=not opts.plaintext_xds,
                                   admin_port=opts.admin_port, stats_port=opts.stats_port, delta=opts.delta)
            engine = EnvoyEngine(boot, opts.run_dir, opts.admin_port, concurrency=opts.concurrency)
        else:
            from isthmus.proxy.engines.python import PythonEngine

            engine = PythonEngine(opts, manager)
        await engine.start()
        log.info("proxy started", engine=opts.engine, node=opts.workload.node_id)
        while not stop.is_set():
            if engine.exited is not None:
                if engine.exited == 0:  # /quitquitquit: a requested, clean exit
                    log.info("engine exited cleanly")
                    return 0
                log.error("engine exited", code=engine.exited)
                return 1
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
        log.info("draining", deadline_s=opts.drain_seconds)
        await engine.drain(opts.drain_seconds)
        return 0
    finally:
        if engine is not None:
            await engine.stop()
        if sds is not None:
            await sds.stop()
        if status is not None:
            await status.cleanup()
        await manager.stop()


SUBCOMMANDS = ("wait-ready", "init-iptables")


def add_agent_arguments(p: argparse.ArgumentParser, run_dir: str) -> None:
    """The flags `isthmus proxy` and `isthmus gateway` share: control plane, engine, ports, drain."""
    p.add_argument("--pilot", default="127.0.0.1:15012", help="pilot's xDS address")
    p.add_argument("--plaintext-xds", action="store_true", help="talk to pilot's plaintext port (development)")
    p.add_argument("--delta", action="store_true", help="incremental xDS")
    p.add_argument("--ca", default="127.0.0.1:8060", help="citadel address")
    p.add_argument("--token-file", type=plain.existing_file, default=None,
                   help="the workload's token (proves its identity to citadel)")
    p.add_argument("--engine", choices=("python", "envoy"), default="python", help="data-plane engine")
    p.add_argument("--concurrency", type=int, default=1, help="worker count (SO_REUSEPORT / Envoy threads)")
    p.add_argument("--run-dir", type=Path, default=Path(run_dir), help="working directory (Envoy config, sockets)")
    p.add_argument("--admin-port", type=int, default=15000, help="admin (/stats, /config_dump, /quitquitquit)")
    p.add_argument("--status-port", type=int, default=15021, help="health (/healthz/ready)")
    p.add_argument("--stats-port", type=int, default=15090, help="Prometheus (/stats/prometheus)")
    p.add_argument("--drain-seconds", type=float, default=5.0, help="on SIGTERM, how long in-flight requests may finish")
    p.add_argument("--log-level", default="info", type=str.lower, choices=tuple(slog.LEVELS), help="log level (changeable at /logging)")


def main(argv: Sequence[str]) -> int:
    """Run the sidecar (or, with --type router, a gateway) for one workload."""
    if argv and argv[0] in SUBCOMMANDS:
        return wait_ready(argv[1:]) if argv[0] == "wait-ready" else init_iptables(argv[1:])
    p = plain.parser("isthmus proxy", main.__doc__, usage="%(prog)s --name NAME [options]\n"
                     "       %(prog)s wait-ready|init-iptables [options]", epilog=(
        "subcommands:\n"
        "  wait-ready     block until the proxy is ready, then exec a command\n"
        "  init-iptables  install the REDIRECT rules of --capture iptables (istio-init)"))
    add_workload_arguments(p)
    add_agent_arguments(p, "./proxy-run")
    args = p.parse_args(argv)
    workload = workload_from_args(p, args)
    slog.configure("proxy", level=args.log_level)
    return plain.run(lambda: run_from_cli(workload, args))


def run_from_cli(workload: WorkloadIdentity, args: argparse.Namespace) -> int:
    """Run the agent for `workload` with the shared agent flags (`isthmus proxy` and `isthmus gateway`)."""
    opts = AgentOptions(
        workload=workload, pilot=args.pilot, plaintext_xds=args.plaintext_xds, ca=args.ca, token_file=args.token_file,
        engine=args.engine, run_dir=args.run_dir, admin_port=args.admin_port, status_port=args.status_port,
        stats_port=args.stats_port, drain_seconds=args.drain_seconds, delta=args.delta, concurrency=args.concurrency,
    )
    try:
        import uvloop

        return uvloop.run(run_agent(opts))
    except (FileNotFoundError, OSError) as exc:
        raise plain.Failure(str(exc)) from None


def wait_ready(argv: Sequence[str]) -> int:
    """Block until the proxy is ready (then exec COMMAND if given): no request is sent before it."""
    p = plain.parser("isthmus proxy wait-ready", wait_ready.__doc__)
    p.add_argument("--status-port", type=int, default=15021, help="the proxy's health port")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...] to exec once ready")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command

    def body() -> None:
        import os
        import urllib.request

        url = f"http://127.0.0.1:{args.status_port}/healthz/ready"
        deadline = time.monotonic() + args.timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise plain.Failure(f"proxy not ready at {url} after {args.timeout:g}s")
            time.sleep(0.2)
        if command:
            os.execvp(command[0], list(command))

    return plain.run(body)


def init_iptables(argv: Sequence[str]) -> int:
    """Install the REDIRECT rules of `--capture iptables` in this network namespace (what istio-init does)."""
    from isthmus.proxy import iptables

    p = plain.parser("isthmus proxy init-iptables", init_iptables.__doc__)
    p.add_argument("--proxy-uid", type=int, default=1337, help="the proxy's uid: its traffic is not captured")
    p.add_argument("--proxy-gid", default="1337", help="the proxy's gid ('' = no gid rules)")
    p.add_argument("--inbound-capture-port", type=int, default=15006, help="where inbound traffic is redirected")
    p.add_argument("--outbound-capture-port", type=int, default=15001, help="where outbound traffic is redirected")
    p.add_argument("--inbound-ports", default="*", help="'*' (all but the excluded), '' (none) or a list")
    p.add_argument("--exclude-inbound-ports", default="15000,15020,15021,15090", help="inbound ports never captured")
    p.add_argument("--exclude-outbound-ports", default="", help="e.g. the control plane's 15012,8060")
    p.add_argument("--exclude-outbound-cidrs", default="", help="e.g. the control plane's 10.244.1.1/32")
    p.add_argument("--dry-run", action="store_true", help="print the iptables-restore input; change nothing")
    p.add_argument("--cleanup", action="store_true", help="remove the capture chains (istio-clean-iptables)")
    a = p.parse_args(argv)
    try:
        rules = iptables.CaptureRules(
            proxy_uid=a.proxy_uid, proxy_gid=int(a.proxy_gid) if a.proxy_gid.strip() else None,
            inbound_capture_port=a.inbound_capture_port, outbound_capture_port=a.outbound_capture_port,
            inbound_ports=a.inbound_ports.replace(" ", ""),
            exclude_inbound_ports=iptables.parse_ports(a.exclude_inbound_ports, "--exclude-inbound-ports"),
            exclude_outbound_ports=iptables.parse_ports(a.exclude_outbound_ports, "--exclude-outbound-ports"),
            exclude_outbound_cidrs=iptables.parse_cidrs(a.exclude_outbound_cidrs),
        )
        text = iptables.build_rules(rules)
    except (iptables.CaptureRulesError, ValueError) as exc:
        p.error(str(exc))

    def body() -> None:
        if a.dry_run:
            print(f"would remove chains {', '.join(iptables.CHAINS)} and the jumps to them" if a.cleanup
                  else text.rstrip("\n"))
            return
        try:
            if a.cleanup:
                print("capture rules removed" if iptables.remove_rules(None) else "no capture rules to remove")
            else:
                iptables.apply_rules(None, text)
                print(f"capture rules installed: inbound → {a.inbound_capture_port}, "
                      f"outbound → {a.outbound_capture_port}, uid {a.proxy_uid} excluded")
        except iptables.CaptureError as exc:
            raise plain.Failure(f"{exc} (needs root / CAP_NET_ADMIN in this network namespace)") from None

    return plain.run(body)
