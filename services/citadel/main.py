"""Command line: `isthmus citadel` (the CA process), `isthmus token create` (mint a
mesh token) and `isthmus cert request|rotate-root` (get a workload certificate;
rotate the self-signed root).
"""
from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from pathlib import Path

import click

DURATION = re.compile(r"^(\d+)(s|m|h|d)?$")
_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """'90s', '30m', '1h', '90d' or plain seconds → seconds."""
    m = DURATION.match(text.strip())
    if not m:
        raise click.BadParameter(f"{text!r}: use a number with an optional unit s, m, h or d (e.g. 1h)")
    return int(m.group(1)) * _UNITS[m.group(2)]


class Duration(click.ParamType):
    name = "duration"

    def convert(self, value, param, ctx):  # noqa: ANN001 (click's signature)
        return value if isinstance(value, int) else parse_duration(value)


def _issuer(text: str):
    from isthmus.citadel.app import ExternalIssuer

    issuer, sep, jwks = text.partition("=")
    if not sep or not issuer or not jwks:
        raise click.BadParameter(f"{text!r}: expected ISSUER=JWKS_URL_OR_FILE")
    return ExternalIssuer(issuer, jwks)


@click.command()
@click.option("--listen", default="127.0.0.1:8060", show_default=True,
              help="Plaintext gRPC address (bearer-token authentication).")
@click.option("--mtls-listen", default=None,
              help="TLS address requiring a client certificate: renewal with the current mesh certificate.")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Root key/cert, token key and trust domain live here (created on first start).")
@click.option("--trust-domain", default=None, help="Fixed at first start; default cluster.local.")
@click.option("--key-type", type=click.Choice(["ec-p256", "rsa-2048"]), default="ec-p256", show_default=True,
              help="Key type of a newly created root.")
@click.option("--cacerts", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Istio plug-in CA dir (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem); "
                   "default DATA_DIR/cacerts when present.")
@click.option("--default-ttl", type=Duration(), default="24h", show_default=True)
@click.option("--min-ttl", type=Duration(), default="1m", show_default=True)
@click.option("--max-ttl", type=Duration(), default="90d", show_default=True)
@click.option("--trusted-issuer", "trusted_issuers", multiple=True,
              help="Also accept tokens from ISSUER, verified with JWKS_URL_OR_FILE (ISSUER=JWKS); repeatable.")
@click.option("--monitoring", default="127.0.0.1:15014", show_default=True,
              help="HTTP /metrics and /healthz/ready address (ADDR:PORT; port 0 disables).")
@click.option("--reload-interval", type=float, default=5.0, show_default=True,
              help="Seconds between checks for changed CA files (root rotation, new plug-in certs).")
@click.option("--log-level", default=None)
def citadel(listen: str, mtls_listen: str | None, data_dir: Path, trust_domain: str | None, key_type: str,
            cacerts: Path | None, default_ttl: int, min_ttl: int, max_ttl: int, trusted_issuers: tuple[str, ...],
            monitoring: str, reload_interval: float, log_level: str | None) -> None:
    """Run the mesh CA: Istio's IstioCertificateService, trust bundle, health, metrics."""
    from isthmus.citadel.app import CitadelConfig
    from isthmus.citadel.pki.keys import KeyType
    from isthmus.shared.logging import configure

    configure("citadel", level=log_level)
    config = CitadelConfig(data_dir=data_dir, listen=listen, mtls_listen=mtls_listen, trust_domain=trust_domain,
                           key_type=KeyType(key_type), cacerts=cacerts, default_ttl=default_ttl,
                           min_ttl=min_ttl, max_ttl=max_ttl, reload_interval=reload_interval,
                           external_issuers=tuple(_issuer(t) for t in trusted_issuers))
    try:
        from isthmus.shared.service.runtime import split_address

        monitoring_addr, monitoring_port = split_address(monitoring, 15014)
        asyncio.run(_serve(config, monitoring_addr, monitoring_port))
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc


async def _serve(config, monitoring_addr: str, monitoring_port: int, stop: asyncio.Event | None = None) -> None:
    from isthmus.citadel.app import CitadelApp
    from isthmus.shared.service.monitoring import start_monitoring
    from isthmus.shared.logging import get_logger

    log = get_logger("isthmus.citadel")
    app = CitadelApp(config)
    await app.start()
    http = None
    if monitoring_port:
        http = await start_monitoring(monitoring_addr, monitoring_port, app.metrics.registry)
        log.info("metrics serving", url=f"http://{monitoring_addr}:{monitoring_port}/metrics")
    loop = asyncio.get_running_loop()
    if stop is None:  # standalone: own the signals (istiod passes its shared stop event)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, app.refresh)
    await stop.wait()
    log.info("citadel stopping")
    await app.stop(grace=5.0)
    if http is not None:
        await http.cleanup()


@click.group()
def token() -> None:
    """Mesh tokens: JWTs that prove a workload's service account to citadel."""


@token.command("create")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--namespace", "-n", required=True)
@click.option("--service-account", "-s", required=True)
@click.option("--ttl", type=Duration(), default="1h", show_default=True)
@click.option("--trust-domain", default=None, help="Default: the data dir's (cluster.local when new).")
@click.option("--audience", default="istio-ca", show_default=True)
def token_create(data_dir: Path, namespace: str, service_account: str, ttl: int, trust_domain: str | None,
                 audience: str) -> None:
    """Print a token for NAMESPACE/SERVICE_ACCOUNT signed with the data dir's token key."""
    from isthmus.citadel.authn.mesh_tokens import MeshTokenKey
    from isthmus.citadel.pki.store import resolve_trust_domain
    from isthmus.citadel.spiffe import SpiffeId

    try:
        domain = resolve_trust_domain(data_dir, trust_domain)
        identity = SpiffeId(domain, namespace, service_account)
        key = MeshTokenKey.load_or_create(data_dir)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(key.mint(identity, ttl, time.time(), audience=audience))


@click.group()
def cert() -> None:
    """Workload certificates from citadel, and root rotation."""


@cert.command("request")
@click.option("--ca", "ca_addr", default="127.0.0.1:8060", show_default=True, help="Citadel's plaintext address.")
@click.option("--token", "token_text", default=None, help="Bearer token (or use --token-file).")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--trust-domain", default=None,
              help="Default: taken from a mesh token's issuer (isthmus://<trust-domain>), else cluster.local.")
@click.option("--ttl", type=Duration(), default="24h", show_default=True)
@click.option("--key-type", type=click.Choice(["ec-p256", "rsa-2048"]), default="ec-p256", show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Writes key.pem (0600), cert.pem (leaf), cert-chain.pem (leaf first, root last), "
                   "root-cert.pem (trust bundle).")
def cert_request(ca_addr: str, token_text: str | None, token_file: Path | None, trust_domain: str | None,
                 ttl: int, key_type: str, out_dir: Path) -> None:
    """Generate a key, send a CSR for the token's identity, write the issued chain."""
    if bool(token_text) == bool(token_file):
        raise click.UsageError("give exactly one of --token and --token-file")
    text = token_text or token_file.read_text()  # type: ignore[union-attr]
    try:
        result = asyncio.run(_request(ca_addr, text.strip(), trust_domain, ttl, key_type, out_dir))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(result)


async def _request(ca_addr: str, token_text: str, trust_domain: str | None, ttl: int, key_type: str,
                   out_dir: Path) -> str:
    import jwt
    from cryptography import x509

    from isthmus.citadel.authn.jwt_token import identity_from_claims
    from isthmus.citadel.client import CitadelClient
    from isthmus.citadel.errors import Unauthenticated
    from isthmus.citadel.pki.csr import make_csr
    from isthmus.citadel.pki.keys import KeyType, key_pem, write_private, write_public
    from isthmus.shared.service.grpc_client import RpcError

    try:
        claims = jwt.decode(token_text, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise ValueError(f"token: not a JWT ({exc})") from exc
    iss = str(claims.get("iss", ""))
    domain = trust_domain or (iss.removeprefix("isthmus://") if iss.startswith("isthmus://") else "cluster.local")
    try:
        identity = identity_from_claims(claims, domain)
    except Unauthenticated as exc:
        raise ValueError(str(exc)) from exc
    key = KeyType(key_type).generate()
    client = CitadelClient(ca_addr, token=lambda: token_text)
    try:
        chain = await client.create_certificate(make_csr(key, identity), ttl)
        bundle = await client.trust_bundle()
    except RpcError as exc:
        raise ValueError(f"citadel at {ca_addr}: {exc}") from exc
    finally:
        await client.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_private(out_dir / "key.pem", key_pem(key))
    write_public(out_dir / "cert.pem", chain[0].encode())
    write_public(out_dir / "cert-chain.pem", "".join(chain).encode())
    write_public(out_dir / "root-cert.pem", bundle.pem().encode())
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    return (f"issued {identity.uri}\n  serial     {leaf.serial_number:032x}\n"
            f"  not after  {leaf.not_valid_after_utc.isoformat()}\n"
            f"  files      {out_dir}/key.pem cert.pem cert-chain.pem root-cert.pem")


@cert.command("rotate-root")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--key-type", type=click.Choice(["ec-p256", "rsa-2048"]), default="ec-p256", show_default=True)
def cert_rotate_root(data_dir: Path, key_type: str) -> None:
    """Make a new self-signed root the signer; the old root stays trusted until it expires.
    A running citadel picks it up within --reload-interval (or on SIGHUP)."""
    from cryptography.hazmat.primitives import hashes

    from isthmus.citadel.pki.keys import KeyType
    from isthmus.citadel.pki.store import SelfSignedSource, resolve_trust_domain

    if not (data_dir / "root-cert.pem").exists():
        raise click.ClickException(f"{data_dir}: no root-cert.pem; is this a citadel data dir in self-signed mode?")
    source = SelfSignedSource(data_dir, resolve_trust_domain(data_dir, None), KeyType(key_type))
    root = source.rotate(time.time())
    click.echo(f"new root {root.fingerprint(hashes.SHA256()).hex()} (not after {root.not_valid_after_utc.date()}); "
               f"previous roots kept in {data_dir / 'previous-roots.pem'}")


@click.group()
def standalone() -> None:
    """citadel, token and cert commands (`python -m isthmus.citadel.main ...`)."""


standalone.add_command(citadel)
standalone.add_command(token)
standalone.add_command(cert)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(standalone())
