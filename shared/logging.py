"""Structured logging: JSON lines for services, readable lines on a terminal.

Call `configure(component)` once at process start; then `get_logger(__name__)`.
"""
from __future__ import annotations

import logging
import os
import sys


def _wants_console() -> bool:
    fmt = os.environ.get("ISTHMUS_LOG_FORMAT", "")
    return fmt == "console" or (fmt != "json" and sys.stderr is not None and sys.stderr.isatty())


def _import_structlog():
    """structlog imports rich (when installed) at import time for pretty tracebacks,
    ~7-16 MiB in every process. A service writing JSON never uses them: there, rich
    is hidden while structlog is imported (a None entry in sys.modules makes its
    `import rich` fail) and restored right after, so the CLI can still import it."""
    if _wants_console() or "rich" in sys.modules or "structlog" in sys.modules:
        import structlog as mod
        return mod
    sys.modules["rich"] = None  # type: ignore[assignment]
    try:
        import structlog as mod
    finally:
        del sys.modules["rich"]
    return mod


structlog = _import_structlog()

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure(component: str, level: str | None = None, json: bool | None = None) -> None:
    """Set up structlog for one process. `json=None` picks JSON unless stderr is a tty."""
    level_name = (level or os.environ.get("ISTHMUS_LOG_LEVEL", "info")).lower()
    if json is None:
        json = not _wants_console()
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level_name, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(component=component)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name) if name else structlog.get_logger()
