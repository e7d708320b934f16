"""`isthmus up | down | status`: run the local mesh as processes under one run directory.

Progress is shown while each component starts; a taken port or a component that
does not become ready names the component and its log file, and stops the rest.
`--capture iptables` (root) runs each workload in its own network namespace with
istio-init's capture rules (netns.py); `down` and any failure remove those pods again.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from isthmus.cli import netns
from isthmus.cli.mesh_plan import (POD_TOKEN, ApplyConfig, Component, CreatePods, MintTokens, UpOptions, build_plan,
                                   pod_names, pod_services, token_path)
from isthmus.shared.rundir import load_state, pid_alive, run_dir, save_state, state_path

console = Console(stderr=True)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ready(c: Component) -> bool:
    if c.ready_url:
        try:
            with urllib.request.urlopen(c.ready_url, timeout=0.5) as resp:
                return resp.status == 200
        except OSError:
            return False
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", c.ready_port)) == 0


def _stop_pids(pids: list[tuple[str, int]], timeout: float = 10.0) -> None:
    for _, pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + timeout
    for name, pid in pids:
        while pid_alive(pid) and time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.05)
        if pid_alive(pid):
            console.print(f"[yellow]{name} (pid {pid}) did not stop in {timeout:.0f}s; killing it[/]")
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _summary(state: dict, missing: list[str]) -> None:
    table = Table(title="Isthmus mesh", show_lines=False)
    table.add_column("component")
    table.add_column("pid")
    table.add_column("endpoints")
    table.add_column("log")
    for name, comp in state["components"].items():
        eps = "\n".join(f"{k}: {v}" for k, v in comp.get("urls", {}).items())
        table.add_row(name, str(comp["pid"]), eps, comp["log"])
    Console().print(table)
    Console().print(f"run directory: {state['run_dir']}   ·   apply config: isthmus apply -f FILE   ·   stop: isthmus down")


def _mint_tokens(step: MintTokens, base: Path, pods: netns.PodNetwork | None) -> None:
    """Tokens for every local workload, signed with citadel's key (30 days: local mode only)."""
    from isthmus.citadel.authn.mesh_tokens import MeshTokenKey
    from isthmus.citadel.pki.store import resolve_trust_domain
    from isthmus.citadel.spiffe import SpiffeId

    data_dir = base / "citadel"
    domain = resolve_trust_domain(data_dir, None)
    key = MeshTokenKey.load_or_create(data_dir)
    for namespace, sa in step.identities:
        path = token_path(base, namespace, sa)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(key.mint(SpiffeId(domain, namespace, sa), 30 * 86400, time.time(), audience="istio-ca"))
        path.chmod(0o600)
    for namespace, sa, pod in step.copies:
        assert pods is not None
        netns.install_file(pods, pods.pod(pod), token_path(base, namespace, sa), POD_TOKEN)


def _apply(step: ApplyConfig, galley: str) -> int:
    from isthmus.galley.client import GalleyClient
    from isthmus.galley.convert import document_to_proto
    from isthmus.shared.config.documents import parse_text, read_paths

    count = 0
    batches = [read_paths([str(f)]) for f in step.files] + [parse_text(t, f"<{step.name}>") for t in step.texts]
    with GalleyClient(galley) as client:
        for docs in batches:
            client.apply([document_to_proto(d.body, "default") for d in docs])
            count += len(docs)
    return count


def _remove_pods(state: dict) -> None:
    """Tear down the pods recorded in state (pod mode); say what could not be removed."""
    recorded = state.pop("pods", None)
    if not recorded:
        return
    errors = netns.teardown(netns.PodNetwork.from_state(recorded))
    for e in errors:
        console.print(f"[yellow]pod cleanup: {e}[/]")


def _start(c: Component, base: Path, timeout: float) -> subprocess.Popen:
    log = c.log_file(base)
    with open(log, "ab") as out:
        if c.log_owner is not None:
            os.fchown(out.fileno(), c.log_owner, c.log_owner)
        proc = subprocess.Popen(list(c.argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "ISTHMUS_LOG_FORMAT": "json", **c.env})
    deadline = time.monotonic() + timeout
    while not _ready(c):
        if proc.poll() is not None:
            raise click.ClickException(f"{c.name} exited with status {proc.returncode} while starting; see {log}")
        if time.monotonic() > deadline:
            proc.kill()
            raise click.ClickException(f"{c.name} did not become ready within {timeout:.0f}s; see {log}")
        time.sleep(0.1)
    return proc


@click.command()
@click.option("--run-dir", type=click.Path(path_type=Path), default=None, help="state, logs and the SQLite store (default ~/.isthmus/run or $ISTHMUS_RUN_DIR)")
@click.option("--store", default="", help="config store: sqlite:///PATH (default, in the run dir) or etcd://127.0.0.1:2379")
@click.option("--engine", type=click.Choice(["python", "envoy"]), default="python", show_default=True, help="data plane of the sidecars and the gateway")
@click.option("--capture", type=click.Choice(["explicit", "iptables"]), default="explicit", show_default=True,
              help="explicit: HTTP_PROXY on one host; iptables (root): a network namespace per workload, REDIRECT capture")
@click.option("--no-bookinfo", is_flag=True, help="only the control plane")
@click.option("--istiod", is_flag=True, help="galley, citadel and pilot as one process (`isthmus istiod`)")
@click.option("--detach", "-d", is_flag=True, help="leave the mesh running and return")
@click.option("--timeout", default=60.0, show_default=True, help="seconds each component may take to become ready")
@click.option("--base-port", default=0, help="use ports from this one on instead of the standard ports (tests, a second mesh)")
def up(run_dir: Path | None, store: str, engine: str, capture: str, no_bookinfo: bool, istiod: bool, detach: bool, timeout: float, base_port: int) -> None:
    """Start the local mesh: galley, citadel, pilot, the ingress gateway and Bookinfo with a sidecar each."""
    base = (run_dir or globals()["run_dir"]()).resolve()
    os.environ["ISTHMUS_RUN_DIR"] = str(base)
    existing = load_state(base)
    if existing and any(pid_alive(c["pid"]) for c in existing.get("components", {}).values()):
        raise click.ClickException(f"a mesh is already running from {base} (see `isthmus status`; stop it with `isthmus down`)")
    if existing and existing.get("pods"):  # a pod-mode run that ended without `down`
        _remove_pods(existing)
        save_state(existing, base)
    (base / "logs").mkdir(parents=True, exist_ok=True)
    pods = None
    if capture == "iptables":
        why = netns.prerequisites()
        if why:
            raise click.ClickException(f"--capture iptables: {why}; use --capture explicit (the default) instead")
        try:
            pods = netns.allocate(pod_names() if not no_bookinfo else (), pod_services())
        except netns.PodNetworkError as exc:
            raise click.ClickException(str(exc)) from None
    plan = build_plan(UpOptions(run_dir=base, store=store, base_port=base_port, engine=engine, bookinfo=not no_bookinfo, istiod=istiod,
                                pods=pods))
    for c in plan.components:
        taken = [p for p in c.ports if not _port_free(p)]
        if taken:
            raise click.ClickException(
                f"{c.name}: port {', '.join(map(str, taken))} on 127.0.0.1 is taken (another mesh? `isthmus down`, or stop what holds it; `--base-port N` moves every port)"
            )
    state: dict = {"run_dir": str(base), "started": time.time(), "components": {}, "ingress": plan.ingress_url,
                   "capture": capture}
    started: list[tuple[str, int]] = []
    procs: dict[str, subprocess.Popen] = {}
    t0 = time.monotonic()
    galley_address = next(c.address for c in plan.components if c.name in ("galley", "istiod"))
    try:
        for step in plan.steps:
            with console.status(f"starting {step.name} …"):
                if isinstance(step, CreatePods):
                    state["pods"] = step.network.to_state()  # recorded first: `down` cleans a partial set-up
                    save_state(state, base)
                    netns.create(step.network)
                    net = step.network
                    console.print(f"[green]✔[/] {len(net.pods)} pods on bridge {net.bridge} ({net.subnet}, "
                                  f"control plane at {net.host_ip}), iptables capture in {sum(p.capture for p in net.pods)}")
                    continue
                if isinstance(step, MintTokens):
                    _mint_tokens(step, base, pods)
                    console.print(f"[green]✔[/] workload tokens minted ({len(step.identities)})")
                    continue
                if isinstance(step, ApplyConfig):
                    n = _apply(step, galley_address)
                    console.print(f"[green]✔[/] config applied ({n} resources from {', '.join(f.name for f in step.files)})")
                    continue
                proc = _start(step, base, timeout)
            procs[step.name] = proc
            started.append((step.name, proc.pid))
            console.print(f"[green]✔[/] {step.name} ready [dim]({time.monotonic() - t0:.1f}s)[/]")
            state["components"][step.name] = {"pid": proc.pid, "log": str(step.log_file(base)), "urls": step.urls,
                                              "address": step.address, "argv": list(step.argv), "env": step.env,
                                              **step.extra}
            save_state(state, base)
    except (click.ClickException, KeyboardInterrupt, OSError, netns.PodNetworkError) as exc:
        console.print("[red]stopping what was started[/]")
        _stop_pids(list(reversed(started)))
        state["components"] = {}
        _remove_pods(state)
        save_state(state, base)
        if isinstance(exc, (OSError, netns.PodNetworkError)):
            raise click.ClickException(str(exc)) from None
        raise
    _summary(state, [])
    if plan.ingress_url:
        Console().print(f"\n[bold]Bookinfo:[/] {plan.ingress_url}   (ready in {time.monotonic() - t0:.0f}s)")
    if detach:
        return
    console.print("[dim]Ctrl-C stops the mesh[/]")
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        while not stop["now"]:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    console.print(f"[red]{name} exited with status {proc.returncode}; see {state['components'][name]['log']}[/]")
                    stop["now"] = True
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    console.print("stopping the mesh …")
    _stop_pids(list(reversed(started)))
    state["components"] = {}
    _remove_pods(state)
    save_state(state, base)
    console.print("[green]stopped[/]")


@click.command()
@click.option("--run-dir", type=click.Path(path_type=Path), default=None)
def down(run_dir: Path | None) -> None:
    """Stop a mesh started with `isthmus up --detach`."""
    base = (run_dir or globals()["run_dir"]()).resolve()
    state = load_state(base)
    comps = (state or {}).get("components", {})
    alive = [(n, c["pid"]) for n, c in comps.items() if pid_alive(c["pid"])]
    if not alive and not (state or {}).get("pods"):
        click.echo(f"no mesh running from {base}")
        return
    _stop_pids(list(reversed(alive)))
    state["components"] = {}
    had_pods = bool(state.get("pods"))
    _remove_pods(state)
    save_state(state, base)
    click.echo(f"stopped {', '.join(n for n, _ in alive) or 'nothing'}{'; pods removed' if had_pods else ''}")


@click.command()
@click.option("--run-dir", type=click.Path(path_type=Path), default=None)
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
def status(run_dir: Path | None, output: str) -> None:
    """Show what the local mesh runs (exit 1 when nothing runs)."""
    import json

    base = (run_dir or globals()["run_dir"]()).resolve()
    state = load_state(base) or {"components": {}}
    rows = {n: {**c, "running": pid_alive(c["pid"])} for n, c in state.get("components", {}).items()}
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
    else:
        if not rows:
            click.echo(f"no mesh running from {base} (start one with `isthmus up`)")
        for n, c in rows.items():
            flag = "running" if c["running"] else "DEAD"
            click.echo(f"{n:<12} {flag:<8} pid {c['pid']:<8} {' '.join(c.get('urls', {}).values())}  log {c['log']}")
    if not any(c["running"] for c in rows.values()):
        sys.exit(1)
