"""`isthmus galley`: the config API process (gRPC + health + Prometheus metrics)."""
from __future__ import annotations

import asyncio

import click
from prometheus_client import CollectorRegistry

from isthmus.galley.service import ConfigService, GalleyMetrics
from isthmus.shared import logging as slog
from isthmus.shared.protos import galley_pb2_grpc
from isthmus.shared.rundir import run_dir
from isthmus.shared.service.grpcserver import new_server, set_serving
from isthmus.shared.service.runtime import run, split_address, stop_event
from isthmus.shared.service.monitoring import start_monitoring
from isthmus.shared.store import open_store

SERVICE_NAME = "isthmus.galley.v1.ConfigService"


async def serve(listen: str, store_url: str, monitoring: str, ready_file: str | None = None,
                stop: asyncio.Event | None = None) -> None:
    log = slog.get_logger("galley")
    store = open_store(store_url)
    registry = CollectorRegistry()
    metrics = GalleyMetrics(registry)
    server, health = new_server()
    galley_pb2_grpc.add_ConfigServiceServicer_to_server(ConfigService(store, metrics), server)
    host, port = split_address(listen, 9901)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise click.ClickException(f"galley: cannot listen on {host}:{port} (port taken?)")
    mhost, mport = split_address(monitoring, 9902)
    try:
        runner = await start_monitoring(mhost, mport, registry)
    except OSError as exc:
        raise click.ClickException(f"galley: cannot serve monitoring on {mhost}:{mport}: {exc.strerror}") from None
    await server.start()
    await set_serving(health, [SERVICE_NAME])
    log.info("galley serving", grpc=f"{host}:{bound}", monitoring=f"{mhost}:{mport}", store=store_url,
             revision=await store.revision())
    if ready_file:
        with open(ready_file, "w") as fh:
            fh.write(f"{host}:{bound}\n")
    stop = stop or stop_event()
    await stop.wait()
    log.info("galley stopping")
    await set_serving(health, [SERVICE_NAME], serving=False)
    await server.stop(grace=5)
    await runner.cleanup()
    await store.close()


@click.command()
@click.option("--listen", default="127.0.0.1:9901", show_default=True, help="gRPC config API address")
@click.option("--store", "store_url", default=None, help="memory://, sqlite:///PATH (default: RUN_DIR/config.db), etcd://HOST:PORT")
@click.option("--monitoring", default="127.0.0.1:9902", show_default=True, help="HTTP /metrics and /healthz/ready")
@click.option("--log-level", default="info", show_default=True)
@click.option("--ready-file", default=None, hidden=True)
def galley(listen: str, store_url: str | None, monitoring: str, log_level: str, ready_file: str | None) -> None:
    """Run galley: validate and store Istio config, stream changes to pilot."""
    slog.configure("galley", level=log_level)
    if store_url is None:
        base = run_dir()
        base.mkdir(parents=True, exist_ok=True)
        store_url = f"sqlite:///{base / 'config.db'}"
    try:
        run(lambda: serve(listen, store_url, monitoring, ready_file))
    except asyncio.CancelledError:
        pass
