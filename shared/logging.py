"""Structured logging: one JSON object per line for services, readable lines on a terminal.

Call `configure(component)` once at process start; then `get_logger(__name__)` and
`log.info("event", key=value, ...)`. `log.exception(...)` adds the traceback under
"exception". A JSON line carries the event, the keys given, component, level and an
ISO-8601 UTC timestamp; unknown value types are written as their repr. The level can
change at run time (`set_level`, the admin /logging page); `capture()` collects
entries instead of writing them (tests).

In-house rather than structlog: the same output, without structlog's processor chain
on every call or its ~1 MiB in every sidecar (see docs/architecture-notes.md).
"""
from __future__ import annotations

import contextlib
import json as _json
import os
import sys
import time
import traceback
from typing import Any, Iterator

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50, "off": 60}
_NAMES = {v: k for k, v in LEVELS.items()}
_COLORS = {"debug": "\x1b[34m", "info": "\x1b[32m", "warning": "\x1b[33m", "error": "\x1b[31m", "critical": "\x1b[31;1m"}


def _wants_console() -> bool:
    fmt = os.environ.get("ISTHMUS_LOG_FORMAT", "")
    return fmt == "console" or (fmt != "json" and sys.stderr is not None and sys.stderr.isatty())


class _Config:
    level = LEVELS["info"]
    json = True
    colors = False
    component: str | None = None
    captured: list[dict] | None = None


_cfg = _Config()


def configure(component: str, level: str | None = None, json: bool | None = None) -> None:
    """Set up this process's logging. `json=None` picks JSON unless stderr is a tty."""
    _cfg.component = component
    _cfg.level = LEVELS.get((level or os.environ.get("ISTHMUS_LOG_LEVEL", "info")).lower(), LEVELS["info"])
    _cfg.json = not _wants_console() if json is None else json
    _cfg.colors = not _cfg.json and sys.stderr is not None and sys.stderr.isatty()


def set_level(name: str) -> None:
    """Change the level at once; ValueError names the levels there are."""
    try:
        _cfg.level = LEVELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {name!r}; one of {', '.join(LEVELS)}") from None


def level() -> str:
    return _NAMES.get(_cfg.level, "info")


@contextlib.contextmanager
def capture() -> Iterator[list[dict]]:
    """Entries (dicts, with "event" and "level") logged inside the block, not written."""
    saved, _cfg.captured = _cfg.captured, []
    try:
        yield _cfg.captured
    finally:
        _cfg.captured = saved


def _timestamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%06dZ" % int(now % 1 * 1e6)


def _console(entry: dict, now: float) -> str:
    lvl = entry.pop("level")
    event = str(entry.pop("event"))
    entry.pop("timestamp", None)
    exc = entry.pop("exception", None)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    head = f"[{lvl:<9}]"
    if _cfg.colors:
        head = f"{_COLORS.get(lvl, '')}{head}\x1b[0m"
    pairs = " ".join(f"{k}={v!r}" if isinstance(v, str) and (" " in v or not v) else f"{k}={v}"
                     for k, v in entry.items())
    line = f"{stamp} {head} {event:<30} {pairs}".rstrip()
    return f"{line}\n{exc.rstrip()}" if exc else line


def _emit(lvl: str, event: str, kw: dict, exc: bool = False) -> None:
    now = time.time()
    entry: dict[str, Any] = {"event": event, **kw}
    if _cfg.component is not None:
        entry.setdefault("component", _cfg.component)
    entry["level"] = lvl
    entry["timestamp"] = _timestamp(now)
    if exc:
        entry["exception"] = traceback.format_exc()
    if _cfg.captured is not None:
        _cfg.captured.append(entry)
        return
    try:
        line = _json.dumps(entry, default=repr) if _cfg.json else _console(entry, now)
        stream = sys.stderr
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass  # a closed or broken stderr must not take the service down


class Logger:
    """What `get_logger` returns: `debug/info/warning/error/critical/exception(event, **kw)`."""

    __slots__ = ("name",)

    def __init__(self, name: str | None) -> None:
        self.name = name

    def debug(self, event: str, **kw: Any) -> None:
        if _cfg.level <= 10:
            _emit("debug", event, kw)

    def info(self, event: str, **kw: Any) -> None:
        if _cfg.level <= 20:
            _emit("info", event, kw)

    def warning(self, event: str, **kw: Any) -> None:
        if _cfg.level <= 30:
            _emit("warning", event, kw)

    warn = warning

    def error(self, event: str, **kw: Any) -> None:
        if _cfg.level <= 40:
            _emit("error", event, kw)

    def critical(self, event: str, **kw: Any) -> None:
        if _cfg.level <= 50:
            _emit("critical", event, kw)

    def exception(self, event: str, **kw: Any) -> None:
        """An error with the traceback of the exception being handled."""
        if _cfg.level <= 40:
            _emit("error", event, kw, exc=True)


def get_logger(name: str | None = None) -> Logger:
    return Logger(name)
