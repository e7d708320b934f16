"""`isthmus istiod`: galley + citadel + pilot in one process and one event loop.

The same three services as their separate commands, with the same flags and ports;
they stop together on SIGTERM/SIGINT. Pilot's own identity token is minted in-process
with citadel's key (it shares the data dir), so no token file has to be provided.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click

from isthmus.shared import logging as slog
from isthmus.shared.duration import parse_duration_option
from isthmus.shared.service.runtime import run, split_address, stop_event


async def _wait_tcp(address: str, timeout: float = 30.0) -> None:
    host, port = split_address(address, 0)
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise click.ClickException(f"istiod: {address} did not start in {timeout:.0f}s") from None
            await asyncio.sleep(0.05)


def _mint_pilot_token(data_dir: Path) -> Path:
    from isthmus.citadel.authn.mesh_tokens import MeshTokenKey
    from isthmus.citadel.pki.store import resolve_trust_domain
    from isthmus.citadel.spiffe import SpiffeId

    key = MeshTokenKey.load_or_create(data_dir)
    identity = SpiffeId(resolve_trust_domain(data_dir, None), "istio-system", "istiod")
    path = data_dir / "istiod-token"
    path.write_text(key.mint(identity, 30 * 86400, time.time(), audience="istio-ca"))
    path.chmod(0o600)
    return path


async def serve(o: dict) -> None:
    from isthmus.citadel.app import CitadelConfig
    from isthmus.citadel.main import _serve as serve_citadel
    from isthmus.galley.main import serve as serve_galley
    from isthmus.pilot.main import serve as serve_pilot

    stop = stop_event()
    data_dir: Path = o["data_dir"]
    data_dir.mkdir(parents=True, exist_ok=True)
    store = o["store"] or f"sqlite:///{data_dir / 'config.db'}"
    tasks = [asyncio.create_task(serve_galley(o["galley_listen"], store, o["galley_monitoring"], stop=stop), name="galley")]
    citadel_config = CitadelConfig(data_dir=data_dir / "citadel", listen=o["ca_listen"])
    cmhost, cmport = split_address(o["ca_monitoring"], 0)
    tasks.append(asyncio.create_task(serve_citadel(citadel_config, cmhost, cmport, stop=stop), name="citadel"))
    await _wait_tcp(o["galley_listen"])
    await _wait_tcp(o["ca_listen"])
    token = _mint_pilot_token(data_dir / "citadel")
    pilot_opts = {
        "galley": o["galley_listen"], "plaintext_listen": o["plaintext_listen"], "mtls_listen": o["mtls_listen"],
        "ca": o["ca_listen"], "token_file": token, "monitoring": o["monitoring"], "mesh_config": o["mesh_config"],
        "debounce_after": o["debounce_after"], "debounce_max": o["debounce_max"],
        "workload_entry_grace": o["workload_entry_grace"],
    }
    tasks.append(asyncio.create_task(serve_pilot(pilot_opts, stop=stop), name="pilot"))
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for t in done:
        if t.exception() is not None:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise t.exception()
    await asyncio.gather(*tasks)


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), required=True, help="citadel keys, the SQLite store")
@click.option("--store", default="", help="config store (default: SQLite in the data dir)")
@click.option("--galley-listen", default="127.0.0.1:9901", show_default=True)
@click.option("--galley-monitoring", default="127.0.0.1:9902", show_default=True)
@click.option("--ca-listen", default="127.0.0.1:8060", show_default=True)
@click.option("--ca-monitoring", default="127.0.0.1:8061", show_default=True)
@click.option("--plaintext-listen", default="127.0.0.1:15010", show_default=True)
@click.option("--mtls-listen", default="127.0.0.1:15012", show_default=True)
@click.option("--monitoring", default="127.0.0.1:15014", show_default=True, help="pilot's /metrics, /healthz/ready, /debug/*")
@click.option("--mesh-config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--debounce-after", default="100ms", show_default=True, callback=parse_duration_option)
@click.option("--debounce-max", default="10s", show_default=True, callback=parse_duration_option)
@click.option("--workload-entry-grace", default="10s", show_default=True, callback=parse_duration_option)
@click.option("--log-level", default="info", show_default=True)
def istiod(log_level: str, **o) -> None:
    """Run galley, citadel and pilot in one process (Istio's istiod)."""
    slog.configure("istiod", level=log_level)
    run(lambda: serve(o))
