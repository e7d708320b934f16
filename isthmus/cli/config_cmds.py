"""`isthmus validate | apply | get | delete` with kubectl/istioctl conventions.

validate is offline; the others talk to galley (address: --galley, $ISTHMUS_GALLEY,
the running `isthmus up`, or 127.0.0.1:9901). Exit codes: 0 ok, 1 failure.
"""
from __future__ import annotations

import sys

import click

from isthmus.cli.output import err, fail, print_resources, quoted_ref, ref
from isthmus.shared.config.documents import Document, read_paths
from isthmus.shared.config.kinds import KINDS, resolve_kind
from isthmus.shared.config.validation import Outcome, validate_document
from isthmus.shared.errors import InvalidConfig, IsthmusError

galley_option = click.option("--galley", "galley", metavar="ADDR", help="galley address (default: $ISTHMUS_GALLEY, the running mesh, or 127.0.0.1:9901)")
namespace_option = click.option("-n", "--namespace", default=None, help="namespace (default: `default`)")
files_option = click.option("-f", "--filename", "files", multiple=True, metavar="FILE|DIR|-", help="YAML/JSON file, directory of them, or - for stdin (repeatable)")


def _read(files: tuple[str, ...]) -> list[Document]:
    if not files:
        fail("error: must specify one of -f/--filename")
    try:
        return read_paths(files)
    except InvalidConfig as exc:
        fail("\n".join(f"error: {e}" for e in exc.errors))
    return []


def _validate_all(docs: list[Document], namespace: str) -> list[tuple[Document, Outcome]]:
    return [(d, validate_document(d.body, default_namespace=namespace, source=d.source)) for d in docs]


def _client(galley: str | None):
    from isthmus.galley.client import GalleyClient
    from isthmus.shared.rundir import galley_address

    address, _ = galley_address(galley)
    return GalleyClient(address)


@click.command()
@files_option
@namespace_option
@click.option("-q", "--quiet", is_flag=True, help="print only problems")
def validate(files: tuple[str, ...], namespace: str | None, quiet: bool) -> None:
    """Validate Istio resources offline, as `istioctl validate` (exit 1 if any is invalid)."""
    docs = _read(files)
    results = _validate_all(docs, namespace or "default")
    invalid = 0
    for doc, outcome in results:
        for w in outcome.warnings:
            err(f"Warning: {w}")
        if outcome.errors:
            invalid += 1
            for e in outcome.errors:
                err(f"Error: {e}")
        elif not quiet:
            click.echo(f'validation succeeded: {outcome.subject} ({doc.source})')
    if not docs:
        fail("error: no resources found in the given files")
    if invalid:
        fail(f"{invalid} of {len(docs)} resources invalid")
    if not quiet:
        click.echo(f"{len(docs)} resources valid")


@click.command()
@files_option
@namespace_option
@galley_option
@click.option("--dry-run", is_flag=True, help="validate on the server, store nothing")
def apply(files: tuple[str, ...], namespace: str | None, galley: str | None, dry_run: bool) -> None:
    """Create or update resources in galley; all of them or none."""
    from isthmus.galley.convert import document_to_proto

    docs = _read(files)
    if not docs:
        fail("error: no objects passed to apply")
    ns = namespace or "default"
    results = _validate_all(docs, ns)
    errors = [e for _, o in results for e in o.errors]
    for _, o in results:
        for w in o.warnings:
            err(f"Warning: {w}")
    if errors:
        fail("\n".join(f"error: {e}" for e in errors) + f"\nnothing applied ({len(errors)} errors)")
    protos = [document_to_proto(d.body, ns) for d in docs]
    try:
        with _client(galley) as client:
            outcome = client.apply(protos, dry_run=dry_run)
    except IsthmusError as exc:
        fail(f"error: {exc}")
    for w in outcome.warnings:
        if not any(w == x for _, o in results for x in o.warnings):
            err(f"Warning: {w}")
    suffix = " (server dry run)" if dry_run else ""
    for resource, action in outcome.results:
        click.echo(f"{ref(resource)} {action}{suffix}")


@click.command()
@click.argument("kind", required=False)
@click.argument("name", required=False)
@namespace_option
@click.option("-A", "--all-namespaces", is_flag=True, help="list across every namespace")
@click.option("-o", "--output", type=click.Choice(["table", "wide", "yaml", "json", "name"]), default="table")
@galley_option
def get(kind: str | None, name: str | None, namespace: str | None, all_namespaces: bool, output: str, galley: str | None) -> None:
    """Show resources: `isthmus get vs -A`, `isthmus get dr reviews -o yaml`, `isthmus get all`."""
    if not kind:
        fail("error: say which kind: " + ", ".join(k.short_names[0] if k.short_names else k.kind.lower() for k in KINDS) + ", or all")
    row = None if kind == "all" else resolve_kind(kind)
    if kind != "all" and row is None:
        fail(f'error: the server doesn\'t have a resource type "{kind}"')
    ns = "" if all_namespaces else (namespace or "default")
    try:
        with _client(galley) as client:
            if name:
                if row is None:
                    fail("error: a name needs a single kind")
                items = [client.get(row.kind, ns or "default", name)]
            else:
                items, _ = client.list(row.kind if row else "", ns)
    except IsthmusError as exc:
        code = getattr(exc, "code", None)
        if code is not None and code.name == "NOT_FOUND" and row is not None:
            fail(f'Error from server (NotFound): {row.plural}.{row.group} "{name}" not found')
        fail(f"error: {exc}")
    if not items and output in ("table", "wide"):
        where = "any namespace" if all_namespaces else f"{namespace or 'default'} namespace"
        err(f"No resources found in {where}.")
        return
    print_resources(items, "table" if output == "wide" else output, all_namespaces, row if name else None)


@click.command()
@click.argument("kind", required=False)
@click.argument("names", nargs=-1)
@files_option
@namespace_option
@galley_option
@click.option("--ignore-not-found", is_flag=True, help="succeed when an object is already gone")
def delete(kind: str | None, names: tuple[str, ...], files: tuple[str, ...], namespace: str | None, galley: str | None, ignore_not_found: bool) -> None:
    """Delete by file (`-f x.yaml`) or by kind and name (`isthmus delete vs reviews`)."""
    ns = namespace or "default"
    targets: list[tuple[str, str, str]] = []
    if files:
        if kind:
            fail("error: give either -f or KIND NAME, not both")
        for d in _read(files):
            body = d.body if isinstance(d.body, dict) else {}
            md = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
            row = resolve_kind(str(body.get("kind", "")))
            if row is None or not md.get("name"):
                fail(f"error: {d.source}: not an Isthmus resource (kind {body.get('kind')!r})")
            targets.append((row.kind, str(md.get("namespace") or ns), str(md["name"])))
    else:
        if not kind or not names:
            fail("error: give -f FILE, or KIND NAME")
        row = resolve_kind(kind)
        if row is None:
            fail(f'error: the server doesn\'t have a resource type "{kind}"')
        targets = [(row.kind, ns, n) for n in names]
    failed = False
    with _client(galley) as client:
        for k, tns, n in targets:
            try:
                gone = client.delete(k, tns, n)
                click.echo(f"{quoted_ref(gone)} deleted")
            except IsthmusError as exc:
                code = getattr(exc, "code", None)
                if code is not None and code.name == "NOT_FOUND":
                    if ignore_not_found:
                        continue
                    row = resolve_kind(k)
                    err(f'Error from server (NotFound): {row.plural}.{row.group} "{n}" not found')
                else:
                    err(f"error: {exc}")
                failed = True
    if failed:
        sys.exit(1)
