"""`isthmus proxy` — the agent (what pilot-agent is to Envoy).

Gets the workload certificate from citadel (token → CSR → chain, renewed at half
life), then runs a data-plane engine configured by pilot over ADS:
`--engine envoy` (a real Envoy with our bootstrap and SDS from this agent) or
`--engine python` (Isthmus's own data plane). Serves health on the status port
(`/healthz/ready`: certificate loaded and first full config applied), drains
gracefully on SIGTERM, and `isthmus proxy wait-ready` holds an app until ready.
"""
from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click

from isthmus.proxy.bootstrap import WorkloadIdentity, build_bootstrap, parse_labels, parse_port
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
        raise click.ClickException("--token-file is required: the workload proves its identity to citadel with it")
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


@click.group(invoke_without_command=True)
@click.option("--name", help="workload instance name, e.g. reviews-v1-0")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("--service-account", default="default", show_default=True)
@click.option("--ip", default="127.0.0.1", show_default=True, help="the workload's address (registered with pilot)")
@click.option("--labels", multiple=True, help="k=v[,k=v]")
@click.option("--workload-group", default="", help="auto-register into this WorkloadGroup")
@click.option("--type", "proxy_type", type=click.Choice(["sidecar", "router"]), default="sidecar")
@click.option("--capture", type=click.Choice(["explicit", "iptables"]), default="explicit")
@click.option("--port", "ports", multiple=True, help="NAME:APP_PORT[:PROXY_PORT] the workload serves (repeatable)")
@click.option("--outbound-port", default=15001, show_default=True, help="explicit: the app's HTTP_PROXY port")
@click.option("--inbound-port", default=15006, show_default=True)
@click.option("--pilot", default="127.0.0.1:15012", show_default=True)
@click.option("--plaintext-xds", is_flag=True, help="talk to pilot's plaintext port (development)")
@click.option("--delta", is_flag=True, help="incremental xDS")
@click.option("--ca", default="127.0.0.1:8060", show_default=True, help="citadel address")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--engine", type=click.Choice(["python", "envoy"]), default="python", show_default=True)
@click.option("--concurrency", default=1, show_default=True, help="worker count (SO_REUSEPORT / Envoy threads)")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("./proxy-run"), show_default=True)
@click.option("--admin-port", default=15000, show_default=True)
@click.option("--status-port", default=15021, show_default=True)
@click.option("--stats-port", default=15090, show_default=True)
@click.option("--drain-seconds", default=5.0, show_default=True)
@click.option("--log-level", default="info", show_default=True)
@click.pass_context
def proxy(ctx: click.Context, log_level: str, **kw) -> None:
    """Run the sidecar (or, with --type router, a gateway) for one workload."""
    if ctx.invoked_subcommand is not None:
        return
    if not kw["name"]:
        raise click.UsageError("--name is required")
    slog.configure("proxy", level=log_level)
    workload = WorkloadIdentity(
        name=kw["name"], namespace=kw["namespace"], service_account=kw["service_account"], ip=kw["ip"],
        labels=parse_labels(kw["labels"]), workload_group=kw["workload_group"], proxy_type=kw["proxy_type"],
        capture_mode=kw["capture"], ports=tuple(parse_port(p) for p in kw["ports"]),
        outbound_port=kw["outbound_port"], inbound_port=kw["inbound_port"],
    )
    run_from_cli(workload, kw)


def run_from_cli(workload: WorkloadIdentity, kw: dict) -> None:
    """Run the agent for `workload` with the shared agent flags (`isthmus proxy` and `isthmus gateway`)."""
    opts = AgentOptions(
        workload=workload, pilot=kw["pilot"], plaintext_xds=kw["plaintext_xds"], ca=kw["ca"], token_file=kw["token_file"],
        engine=kw["engine"], run_dir=kw["run_dir"], admin_port=kw["admin_port"], status_port=kw["status_port"],
        stats_port=kw["stats_port"], drain_seconds=kw["drain_seconds"], delta=kw["delta"], concurrency=kw["concurrency"],
    )
    try:
        import uvloop

        code = uvloop.run(run_agent(opts))
    except (FileNotFoundError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


@proxy.command("wait-ready")
@click.option("--status-port", default=15021, show_default=True)
@click.option("--timeout", default=60.0, show_default=True)
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def wait_ready(status_port: int, timeout: float, command: tuple[str, ...]) -> None:
    """Block until the proxy is ready (then exec COMMAND if given): no request is sent before it."""
    import os
    import urllib.request

    url = f"http://127.0.0.1:{status_port}/healthz/ready"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise click.ClickException(f"proxy not ready at {url} after {timeout:.0f}s")
        time.sleep(0.2)
    if command:
        os.execvp(command[0], list(command))


@proxy.command("init-iptables")
@click.option("--proxy-uid", default=1337, show_default=True, help="the proxy's uid: its traffic is not captured")
@click.option("--proxy-gid", default="1337", show_default=True, help="the proxy's gid ('' = no gid rules)")
@click.option("--inbound-capture-port", default=15006, show_default=True)
@click.option("--outbound-capture-port", default=15001, show_default=True)
@click.option("--inbound-ports", default="*", show_default=True, help="'*' (all but the excluded), '' (none) or a list")
@click.option("--exclude-inbound-ports", default="15000,15020,15021,15090", show_default=True)
@click.option("--exclude-outbound-ports", default="", help="e.g. the control plane's 15012,8060")
@click.option("--exclude-outbound-cidrs", default="", help="e.g. the control plane's 10.244.1.1/32")
@click.option("--dry-run", is_flag=True, help="print the iptables-restore input; change nothing")
@click.option("--cleanup", is_flag=True, help="remove the capture chains (istio-clean-iptables)")
def init_iptables(proxy_uid: int, proxy_gid: str, inbound_capture_port: int, outbound_capture_port: int, inbound_ports: str,
                  exclude_inbound_ports: str, exclude_outbound_ports: str, exclude_outbound_cidrs: str, dry_run: bool,
                  cleanup: bool) -> None:
    """Install the REDIRECT rules of `--capture iptables` in this network namespace (what istio-init does)."""
    from isthmus.proxy import iptables

    try:
        rules = iptables.CaptureRules(
            proxy_uid=proxy_uid, proxy_gid=int(proxy_gid) if proxy_gid.strip() else None,
            inbound_capture_port=inbound_capture_port, outbound_capture_port=outbound_capture_port,
            inbound_ports=inbound_ports.replace(" ", ""),
            exclude_inbound_ports=iptables.parse_ports(exclude_inbound_ports, "--exclude-inbound-ports"),
            exclude_outbound_ports=iptables.parse_ports(exclude_outbound_ports, "--exclude-outbound-ports"),
            exclude_outbound_cidrs=iptables.parse_cidrs(exclude_outbound_cidrs),
        )
        text = iptables.build_rules(rules)
    except (iptables.CaptureRulesError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    if dry_run:
        click.echo(f"would remove chains {', '.join(iptables.CHAINS)} and the jumps to them" if cleanup else text.rstrip("\n"))
        return
    try:
        if cleanup:
            removed = iptables.remove_rules(None)
            click.echo("capture rules removed" if removed else "no capture rules to remove")
        else:
            iptables.apply_rules(None, text)
            click.echo(f"capture rules installed: inbound → {inbound_capture_port}, outbound → {outbound_capture_port}, "
                       f"uid {proxy_uid} excluded")
    except iptables.CaptureError as exc:
        raise click.ClickException(f"{exc} (needs root / CAP_NET_ADMIN in this network namespace)") from None
