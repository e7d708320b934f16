"""`isthmus pilot`: ADS on 15010 (plaintext, loopback) and 15012 (mTLS), debug + metrics on 15014."""
from __future__ import annotations

import asyncio
from pathlib import Path

import click
import yaml
from prometheus_client import CollectorRegistry

from isthmus.pilot.app import Pilot, PilotConfig
from isthmus.pilot.model.mesh import MeshConfig
from isthmus.pilot.push.debounce import DebounceSettings
from isthmus.pilot.xds.debug import debug_routes
from isthmus.pilot.xds.metrics import XdsMetrics
from isthmus.pilot.xds.server import add_ads_ports
from isthmus.shared import logging as slog
from isthmus.shared.duration import parse_duration_option
from isthmus.shared.service.grpcserver import new_server, set_serving
from isthmus.shared.service.runtime import run, split_address, stop_event
from isthmus.shared.service.monitoring import start_monitoring


def load_mesh_config(path: Path | None) -> MeshConfig:
    if path is None:
        return MeshConfig()
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return MeshConfig.from_dict(data)
    except (OSError, ValueError, yaml.YAMLError, AttributeError) as exc:
        raise click.ClickException(f"mesh config {path}: {exc}") from None


async def _cert_manager(ca: str, token_file: Path, trust_domain: str):
    from isthmus.citadel.certmanager import CertificateManager
    from isthmus.citadel.client import CitadelClient
    from isthmus.citadel.pki.policy import CONTROL_PLANE_DNS_NAMES
    from isthmus.citadel.spiffe import SpiffeId

    identity = SpiffeId(trust_domain, "istio-system", "istiod")
    client = CitadelClient(ca, token=lambda: token_file.read_text().strip())
    # Proxies verify pilot by hostname (istiod.istio-system.svc), as Istio's do.
    manager = CertificateManager(identity, client, dns_names=CONTROL_PLANE_DNS_NAMES)
    manager.start()
    await manager.wait_ready(timeout=30)
    return manager


async def serve(opts: dict, stop: asyncio.Event | None = None) -> None:
    log = slog.get_logger("pilot")
    registry = CollectorRegistry()
    metrics = XdsMetrics(registry)
    mesh = load_mesh_config(opts["mesh_config"])
    pilot = Pilot(
        PilotConfig(
            galley=opts["galley"],
            mesh=mesh,
            debounce=DebounceSettings(quiet=opts["debounce_after"], max_delay=opts["debounce_max"]),
            workload_entry_grace=opts["workload_entry_grace"],
        ),
        metrics,
    )
    await pilot.start()
    source_task = asyncio.get_running_loop().create_task(pilot.source.run(), name="galley-watch")
    manager = None
    cert_source = None
    if opts["mtls_listen"]:
        if not opts["ca"] or not opts["token_file"]:
            raise click.ClickException("--mtls-listen needs --ca and --token-file (pilot's identity comes from citadel)")
        manager = await _cert_manager(opts["ca"], opts["token_file"], mesh.trust_domain)

        def cert_source():
            cert = manager.current()
            return cert.cert_chain_pem, cert.key_pem, cert.roots_pem

    server, health = new_server(max_request_bytes=16 * 1024 * 1024)
    ports = add_ads_ports(
        server, pilot.discovery.ads,
        plaintext_address=opts["plaintext_listen"] or None,
        mtls_address=opts["mtls_listen"] or None,
        cert_source=cert_source,
    )
    mhost, mport = split_address(opts["monitoring"], 15014)
    runner = await start_monitoring(mhost, mport, registry, ready=lambda: pilot.discovery.ready,
                                    routes=debug_routes(pilot.discovery))
    await server.start()
    await set_serving(health, ["envoy.service.discovery.v3.AggregatedDiscoveryService"])
    log.info("pilot serving", ads_plaintext=opts["plaintext_listen"], ads_mtls=opts["mtls_listen"],
             monitoring=f"{mhost}:{mport}", galley=opts["galley"], ports=str(ports))
    await (stop or stop_event()).wait()
    log.info("pilot stopping")
    source_task.cancel()
    await server.stop(grace=3)
    await pilot.stop()
    if manager is not None:
        await manager.stop()
    await runner.cleanup()


@click.command()
@click.option("--galley", default="127.0.0.1:9901", show_default=True, help="galley's config API")
@click.option("--plaintext-listen", default="127.0.0.1:15010", show_default=True, help="ADS without TLS (keep it on loopback); '' disables")
@click.option("--mtls-listen", default="", help="ADS with mTLS, e.g. 0.0.0.0:15012 (needs --ca and --token-file)")
@click.option("--ca", default="", help="citadel address for pilot's own certificate")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None, help="mesh token for istio-system/istiod")
@click.option("--monitoring", default="127.0.0.1:15014", show_default=True, help="/metrics, /healthz/ready, /debug/*")
@click.option("--mesh-config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, help="Istio MeshConfig YAML")
@click.option("--debounce-after", default="100ms", show_default=True, callback=parse_duration_option)
@click.option("--debounce-max", default="10s", show_default=True, callback=parse_duration_option)
@click.option("--workload-entry-grace", default="10s", show_default=True, callback=parse_duration_option,
              help="how long an auto-registered WorkloadEntry outlives its proxy's connection")
@click.option("--log-level", default="info", show_default=True)
def pilot(log_level: str, **opts) -> None:
    """Run pilot: Istio config + registry → Envoy xDS for every connected proxy."""
    slog.configure("pilot", level=log_level)
    run(lambda: serve(opts))
