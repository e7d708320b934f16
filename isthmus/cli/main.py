"""`isthmus` — one console script; each subcommand lives beside the code it drives.

Subcommands are imported lazily (the table below) so `isthmus validate` does not pay
for gRPC, and a broken optional part cannot break the others. The per-workload
processes (`proxy`, `gateway`, `bootstrap`) are argparse commands (see plain.py),
run before click is even imported: a sidecar does not carry click for its lifetime.
"""
from __future__ import annotations

import importlib
import sys

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
    "pilot": "isthmus.pilot.main:pilot",
    "proxy-status": "isthmus.cli.pilot_cmds:proxy_status",
    "proxy-config": "isthmus.cli.pilot_cmds:proxy_config",
    # local mesh
    "up": "isthmus.cli.up:up",
    "down": "isthmus.cli.up:down",
    "status": "isthmus.cli.up:status",
}

# name → "module:attribute" of a plain (argparse) command: `main(argv) -> exit status`.
PLAIN: dict[str, str] = {
    "bootstrap": "isthmus.proxy.bootstrap:main",
    "proxy": "isthmus.proxy.agent:main",
    "gateway": "isthmus.gateway.main:main",
}


def _load(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _click_cli():
    import click

    from isthmus.cli.plain import summary

    class LazyGroup(click.Group):
        def list_commands(self, ctx: click.Context) -> list[str]:
            return sorted([*COMMANDS, *PLAIN])

        def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
            target = COMMANDS.get(name) or PLAIN.get(name)
            if target is None:
                return None
            try:
                found = _load(target)
                if name not in PLAIN:
                    return found
            except (ImportError, AttributeError) as exc:
                # Keep the rest of the CLI usable; say exactly what is missing.
                reason = f"{name} is unavailable in this install ({exc})"

                @click.command(name=name, help=reason, context_settings={"ignore_unknown_options": True})
                @click.argument("args", nargs=-1, type=click.UNPROCESSED)
                def unavailable(args: tuple[str, ...]) -> None:
                    raise click.ClickException(reason)

                return unavailable

            # A plain command as click sees it: listed with its summary, arguments passed through.
            @click.command(name=name, help=summary(found), add_help_option=False,
                           context_settings={"ignore_unknown_options": True})
            @click.argument("args", nargs=-1, type=click.UNPROCESSED)
            def passthrough(args: tuple[str, ...]) -> None:
                sys.exit(found(list(args)))

            return passthrough

    @click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(package_name="isthmus")
    def cli() -> None:
        """Isthmus: a service mesh that runs Istio's config on a Python data plane."""

    return cli


def main() -> None:
    argv = sys.argv[1:]
    try:
        if argv and argv[0] in PLAIN:
            sys.exit(_load(PLAIN[argv[0]])(argv[1:]))
        _click_cli()(prog_name="isthmus")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
