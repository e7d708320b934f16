"""`isthmus` — one console script; each subcommand lives beside the code it drives.

Subcommands are imported lazily (the table below) so `isthmus validate` does not pay
for gRPC, and a broken optional part cannot break the others.
"""
from __future__ import annotations

import importlib
import sys

import click

# name → "module:attribute" of a click command or group.
COMMANDS: dict[str, str] = {
    # offline
    "validate": "isthmus.cli.config_cmds:validate",
    "analyze": "isthmus.cli.analyze_cmd:analyze",
    # against galley
    "apply": "isthmus.cli.config_cmds:apply",
    "get": "isthmus.cli.config_cmds:get",
    "delete": "isthmus.cli.config_cmds:delete",
    "create": "isthmus.cli.create_cmd:create",
    # services
    "galley": "isthmus.galley.main:galley",
    "citadel": "isthmus.citadel.main:citadel",
    "istiod": "isthmus.istiod.main:istiod",
    "token": "isthmus.citadel.main:token",
    "cert": "isthmus.citadel.main:cert",
    "bootstrap": "isthmus.proxy.bootstrap:bootstrap",
    "proxy": "isthmus.proxy.agent:proxy",
    "gateway": "isthmus.gateway.main:gateway",
    "pilot": "isthmus.pilot.main:pilot",
    "proxy-status": "isthmus.cli.pilot_cmds:proxy_status",
    "proxy-config": "isthmus.cli.pilot_cmds:proxy_config",
    # local mesh
    "up": "isthmus.cli.up:up",
    "down": "isthmus.cli.up:down",
    "status": "isthmus.cli.up:status",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            # Keep the rest of the CLI usable; say exactly what is missing.
            reason = f"{name} is unavailable in this install ({exc})"

            @click.command(name=name, help=reason, context_settings={"ignore_unknown_options": True})
            @click.argument("args", nargs=-1, type=click.UNPROCESSED)
            def unavailable(args: tuple[str, ...]) -> None:
                raise click.ClickException(reason)

            return unavailable


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="isthmus")
def cli() -> None:
    """Isthmus: a service mesh that runs Istio's config on a Python data plane."""


def main() -> None:
    try:
        cli(prog_name="isthmus")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
