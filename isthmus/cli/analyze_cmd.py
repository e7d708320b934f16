"""`isthmus analyze`: cross-resource findings over files (-f) or galley's contents."""
from __future__ import annotations

import sys

import click

from isthmus.cli.config_cmds import _client, _read, _validate_all, files_option, galley_option, namespace_option
from isthmus.cli.output import err
from isthmus.shared.config.analysis import analyze as run_analysis
from isthmus.shared.errors import IsthmusError


@click.command()
@files_option
@namespace_option
@click.option("-A", "--all-namespaces", is_flag=True, help="report on every namespace (default with -f)")
@click.option("--use-galley/--no-galley", default=None, help="with -f: also read what galley stores (default: only without -f)")
@galley_option
def analyze(files: tuple[str, ...], namespace: str | None, all_namespaces: bool, use_galley: bool | None, galley: str | None) -> None:
    """Find config that validates but will not do what you mean (exit 1 on errors)."""
    resources = []
    if files:
        results = _validate_all(_read(files), namespace or "default")
        for _, o in results:
            for e in o.errors:
                err(f"Error [IST0002] {e}")
        # As applying the files in order would leave it: the last document per key wins.
        latest = {o.resource.key: o.resource for _, o in results if o.resource is not None}
        resources.extend(latest.values())
        if any(o.errors for _, o in results):
            sys.exit(1)
    if use_galley or (use_galley is None and not files):
        try:
            with _client(galley) as client:
                stored, _ = client.list("", "")
        except IsthmusError as exc:
            err(f"error: {exc}")
            sys.exit(1)
        seen = {r.key for r in resources}
        resources.extend(r for r in stored if r.key not in seen)
    findings = run_analysis(resources)
    if namespace and not all_namespaces and not files:
        findings = [f for f in findings if f" {namespace}/" in f.subject]
    if not findings:
        click.echo("✔ No validation issues found when analyzing " + ("the given files." if files else "the mesh."))
        return
    for f in findings:
        click.echo(f.render())
    if any(f.level == "Error" for f in findings):
        sys.exit(1)
