"""`isthmus create secret tls NAME --cert FILE --key FILE [--cacert FILE] [-n NS]`.

kubectl's `create secret tls` for a gateway's `credentialName`: the Secret
(`kubernetes.io/tls`, keys `tls.crt`/`tls.key`/`ca.crt`, as Istio reads them) is
validated here (the PEMs parse, certificate and key match) and stored through galley.
Running it again replaces the Secret: that is how a credential is rotated, and pilot
pushes the new one to the gateway over SDS without a restart. The key is never printed.
"""
from __future__ import annotations

import base64
from pathlib import Path

import click

from isthmus.cli.config_cmds import _client, galley_option
from isthmus.cli.output import err, fail
from isthmus.shared.config.secret import TLS_TYPE
from isthmus.shared.config.validation import validate_document
from isthmus.shared.errors import IsthmusError

pem_file = click.Path(exists=True, dir_okay=False, path_type=Path)


def tls_secret_document(name: str, namespace: str, cert: bytes, key: bytes, cacert: bytes | None) -> dict:
    data = {"tls.crt": cert, "tls.key": key}
    if cacert is not None:
        data["ca.crt"] = cacert
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": TLS_TYPE,
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


@click.group()
def create() -> None:
    """Create resources from files or flags (as kubectl create)."""


@create.group()
def secret() -> None:
    """Create a Secret (gateway TLS credentials)."""


@secret.command("tls")
@click.argument("name")
@click.option("--cert", "cert", type=pem_file, required=True, help="PEM certificate chain (tls.crt)")
@click.option("--key", "key", type=pem_file, required=True, help="PEM private key (tls.key)")
@click.option("--cacert", type=pem_file, default=None, help="PEM CA bundle to verify client certificates (ca.crt; MUTUAL)")
@click.option("-n", "--namespace", default=None, help="namespace (default: `default`; gateways read their own)")
@galley_option
@click.option("--dry-run", is_flag=True, help="validate on the server, store nothing")
def tls(name: str, cert: Path, key: Path, cacert: Path | None, namespace: str | None, galley: str | None, dry_run: bool) -> None:
    """Store a TLS credential for a Gateway's `credentialName` (replaces an existing one: rotation)."""
    from isthmus.galley.convert import document_to_proto

    ns = namespace or "default"
    doc = tls_secret_document(name, ns, cert.read_bytes(), key.read_bytes(), cacert.read_bytes() if cacert else None)
    outcome = validate_document(doc, default_namespace=ns)
    if outcome.errors:
        fail("\n".join(f"error: {e}" for e in outcome.errors))
    try:
        with _client(galley) as client:
            result = client.apply([document_to_proto(doc, ns)], dry_run=dry_run)
    except IsthmusError as exc:
        fail(f"error: {exc}")
    for w in result.warnings:
        err(f"Warning: {w}")
    suffix = " (server dry run)" if dry_run else ""
    for resource, action in result.results:
        click.echo(f"secret/{resource.meta.name} {action}{suffix}")
