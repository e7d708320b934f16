"""shared/logging.py: JSON lines for services (without loading rich), console lines on request."""
from __future__ import annotations

import json
import os
import subprocess
import sys

PROG = """
import sys
from isthmus.shared import logging as slog
slog.configure("svc")
slog.get_logger("t").info("hello", n=1)
print("rich" in sys.modules)
import rich.console  # the CLI can still use rich afterwards
print("rich-ok")
"""


def _run(fmt: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ISTHMUS_LOG_FORMAT=fmt)
    return subprocess.run([sys.executable, "-c", PROG], capture_output=True, text=True, env=env, timeout=60, check=True)


def test_service_logs_json_without_importing_rich():
    r = _run("json")
    line = json.loads(r.stderr.strip().splitlines()[-1])
    assert line["event"] == "hello" and line["n"] == 1 and line["component"] == "svc" and line["level"] == "info"
    assert r.stdout.split() == ["False", "rich-ok"]


def test_console_format_is_readable_text():
    r = _run("console")
    last = r.stderr.strip().splitlines()[-1]
    assert "hello" in last and "n=1" in last and not last.startswith("{")


PROG_ALL = """
import sys
from isthmus.shared import logging as slog
slog.configure("svc", level="warning", json=True)
log = slog.get_logger("t")
log.info("hidden")
log.warning("shown", obj=object.__new__(type("Thing", (), {"__repr__": lambda s: "<thing>"})), path="/a b")
slog.set_level("debug")
log.debug("now shown")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("it broke", step=3)
print("structlog" in sys.modules, "rich" in sys.modules)
"""


def test_levels_values_and_tracebacks_in_json():
    r = subprocess.run([sys.executable, "-c", PROG_ALL], capture_output=True, text=True, timeout=60, check=True)
    lines = [json.loads(x) for x in r.stderr.strip().splitlines()]
    assert [x["event"] for x in lines] == ["shown", "now shown", "it broke"]
    shown, debug, broke = lines
    assert shown["obj"] == "<thing>" and shown["path"] == "/a b" and shown["level"] == "warning"
    assert debug["level"] == "debug" and broke["level"] == "error" and broke["step"] == 3
    assert "ZeroDivisionError: division by zero" in broke["exception"] and "Traceback" in broke["exception"]
    assert all(x["component"] == "svc" and x["timestamp"].endswith("Z") and "T" in x["timestamp"] for x in lines)
    assert r.stdout.split() == ["False", "False"]


def test_capture_set_level_and_unknown_levels():
    import pytest

    from isthmus.shared import logging as slog

    before = slog.level()
    try:
        slog.set_level("error")
        with slog.capture() as logs:
            slog.get_logger("x").warning("dropped")
            slog.get_logger("x").error("kept", n=2)
        assert [(e["event"], e["level"], e["n"]) for e in logs] == [("kept", "error", 2)]
        assert slog.level() == "error"
        with pytest.raises(ValueError, match="unknown log level 'loud'; one of debug, info"):
            slog.set_level("loud")
    finally:
        slog.set_level(before)
