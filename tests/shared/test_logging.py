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
