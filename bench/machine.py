"""What a benchmark ran on: CPUs, memory, kernel, tool versions, the commit, the date.

`describe()` gathers it (each probe bounded, a missing tool is `None`); `TOOLS` says which
Debian package brings each external tool, so the harness can name what is missing.
"""
from __future__ import annotations

import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# tool → (Debian package, what it is for); looked up on PATH and in /usr/sbin.
TOOLS = {
    "wrk": ("wrk", "HTTP/1.1 load"),
    "h2load": ("nghttp2-client", "HTTP/2 load"),
    "nginx": ("nginx", "the backend and the nginx reference proxy"),
    "haproxy": ("haproxy", "the haproxy reference proxy"),
    "taskset": ("util-linux", "CPU pinning"),
    "openssl": ("openssl", "`openssl speed` beside the CA"),
    "etcd": ("etcd-server", "the etcd store for galley"),
}


def which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def missing_tools(tools: list[str]) -> list[str]:
    """'wrk (Debian package wrk: HTTP/1.1 load)' for each tool not found."""
    return [f"{t} (Debian package {TOOLS[t][0]}: {TOOLS[t][1]})" for t in tools if which(t) is None]


def _run(argv: list[str]) -> str:
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (res.stdout + res.stderr).strip()


def envoy_path() -> str | None:
    try:
        from isthmus.proxy.engines.envoy import envoy_binary

        return envoy_binary()
    except (ImportError, FileNotFoundError):
        return None


def versions() -> dict[str, str | None]:
    def first(pattern: str, text: str) -> str | None:
        m = re.search(pattern, text)
        return m.group(1) if m else None

    envoy = envoy_path()
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    out["envoy"] = first(r"version: \S+/([\d.]+)", _run([envoy, "--version"])) if envoy else None
    out["nginx"] = first(r"nginx/([\d.]+)", _run([which("nginx"), "-v"])) if which("nginx") else None
    out["haproxy"] = first(r"HAProxy version (\S+)", _run([which("haproxy"), "-v"])) if which("haproxy") else None
    out["wrk"] = first(r"wrk (\S+)", _run(["wrk", "-v"])) if which("wrk") else None
    out["h2load"] = first(r"nghttp2/([\d.]+)", _run(["h2load", "--version"])) if which("h2load") else None
    out["openssl"] = first(r"OpenSSL (\S+)", _run(["openssl", "version"])) if which("openssl") else None
    out["etcd"] = first(r"etcd Version: (\S+)", _run(["etcd", "--version"])) if which("etcd") else None
    for pkg in ("grpcio", "protobuf", "uvloop", "cryptography"):
        try:
            from importlib.metadata import version

            out[pkg] = version(pkg)
        except Exception:  # noqa: BLE001 - a missing package is just not reported
            out[pkg] = None
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1048576, 1)
    except OSError:
        pass
    return None


def commit() -> str | None:
    head = _run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    if not head or " " in head:
        return None
    dirty = _run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return head + (" (with uncommitted changes)" if dirty else "")


def describe() -> dict:
    virt = _run(["systemd-detect-virt"]) if which("systemd-detect-virt") else ""
    governor = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)),
        "memory_gib": memory_gib(),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "virtualization": virt if virt and virt != "none" else None,
        "cpu_governor": governor.read_text().strip() if governor.exists() else None,
        "commit": commit(),
        "versions": versions(),
    }
