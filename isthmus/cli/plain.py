"""Commands written with argparse instead of click: the long-running data-plane
processes (`isthmus proxy`, `isthmus gateway`), which run once per workload and must
stay small. click costs a sidecar ~1.6 MiB of resident memory for the lifetime of the
process; argparse ~0.4 MiB. `isthmus` dispatches to these before it imports click.

The conventions are the click commands' ones: `-h/--help`, defaults shown in the help,
a usage error exits 2 (`usage: … error: …`), a failure exits 1 with `Error: …`.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Sequence


class Failure(Exception):
    """The command cannot do its job: printed as `Error: <message>`, exit status 1."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, "", [], argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def _formatter(prog: str) -> _Formatter:
    # The width argparse would find, without its `import shutil` (which loads zlib, bz2 and lzma).
    try:
        columns = int(os.environ.get("COLUMNS", "0")) or os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError):
        columns = 80
    return _Formatter(prog, width=max(columns - 2, 11))


def parser(prog: str, doc: str | None, epilog: str | None = None, usage: str | None = None) -> argparse.ArgumentParser:
    """A parser whose description is `doc` and whose help shows each option's default (if it has one)."""
    return argparse.ArgumentParser(prog=prog, description=(doc or "").strip(), epilog=epilog, usage=usage,
                                   formatter_class=_formatter)


def existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"file '{value}' does not exist")
    return path


def run(body: Callable[[], int | None]) -> int:
    """Run a command body; a Failure becomes `Error: …` and exit status 1."""
    try:
        return body() or 0
    except Failure as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def summary(main: Callable[[Sequence[str]], int]) -> str:
    """The first line of a plain command's docstring (for `isthmus --help`)."""
    return (main.__doc__ or "").strip().splitlines()[0] if main.__doc__ else ""
