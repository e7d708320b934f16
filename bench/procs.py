"""Processes for the benchmarks: start, pin, measure (/proc), and always stop.

Every process started through `Supervisor.start` is stopped by `Supervisor.close`, which
also runs on SIGINT/SIGTERM and at exit. CPU time and RSS are read from /proc for a whole
process tree (an agent and the Envoy it runs, nginx's master and worker).
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_ready(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False
    return check


def http_ready(url: str, headers: dict | None = None) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=1) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False
    return check


def wait_for(check: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s\n{tail}")


# ---------------------------------------------------------------- /proc readings

def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            out += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:
            pass
    return out


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants (alive now)."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in seen or not Path(f"/proc/{p}").exists():
            continue
        seen.append(p)
        todo += children(p)
    return seen


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def tree_cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(pids: list[int]) -> int:
    return sum(rss_kib(p) for p in pids)


def uss_kib(pid: int) -> int:
    """Private (unique) memory: what the process itself adds, without the shared
    library pages that RSS also counts (smaps_rollup Private_Clean + Private_Dirty)."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    except OSError:
        pass
    return total


def tree_uss_kib(pids: list[int]) -> int:
    return sum(uss_kib(p) for p in pids)


def allowed_cpus(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                return line.split()[1]
    except OSError:
        pass
    return "?"


# ---------------------------------------------------------------- pinning

@dataclass(frozen=True)
class Pinning:
    """Where load generator + backend (`load`) and the proxies (`proxy`) run; None: not pinned."""
    load: int | None
    proxy: int | None
    note: str

    @classmethod
    def detect(cls) -> "Pinning":
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            return cls(None, None, f"not pinned: only {len(cpus)} CPU available to the benchmark")
        return cls(cpus[0], cpus[1], f"load generator + backend on CPU {cpus[0]}, proxy under test on CPU {cpus[1]}"
                   + ("" if len(cpus) == 2 else f" ({len(cpus)} CPUs available; the others are left idle)"))

    def prefix(self, cpu: int | None) -> list[str]:
        """argv prefix that pins a command (taskset), or nothing."""
        return [] if cpu is None else ["taskset", "-c", str(cpu)]


@contextlib.contextmanager
def affinity(cpu: int | None) -> Iterator[None]:
    """Children forked inside this block inherit `cpu` (the caller's thread is pinned meanwhile)."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def pin_tree(pid: int, cpu: int | None) -> None:
    """Pin every thread of `pid` and its descendants (what `taskset -a -p` does, for a tree)."""
    if cpu is None:
        return
    for p in tree(pid):
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{p}/task")]
        except OSError:
            continue
        for tid in tids:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(tid, {cpu})


# ---------------------------------------------------------------- supervision

class Supervisor:
    """Starts processes in their own session and stops every one of them (TERM, then KILL)."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.procs: list[subprocess.Popen] = []
        self.cleanups: list[Callable[[], None]] = []

    def start(self, name: str, argv: list[str], ready: Callable[[], bool] | None = None, timeout: float = 30.0,
              cpu: int | None = None, env: dict | None = None) -> subprocess.Popen:
        log = self.run_dir / f"{name}.log"
        with open(log, "ab") as out, affinity(cpu):
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, **(env or {})}, cwd=self.run_dir)
        self.procs.append(proc)
        if ready is not None:
            def check() -> bool:
                if proc.poll() is not None:
                    tail = log.read_text(errors="replace")[-3000:]
                    last = next((l.strip() for l in reversed(tail.splitlines()) if l.strip()), "no output")
                    raise RuntimeError(f"{name} exited with {proc.returncode}: {last}\n{tail}")
                return ready()
            wait_for(check, timeout, name, log)
        return proc

    def adopt(self, proc: subprocess.Popen) -> None:
        self.procs.append(proc)

    def on_close(self, fn: Callable[[], None]) -> None:
        self.cleanups.append(fn)

    def close(self) -> None:
        for fn in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                fn()
        self.cleanups.clear()
        for proc in reversed(self.procs):
            stop(proc)
        self.procs.clear()


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGINT (even where a shell started us with SIGINT ignored) raise KeyboardInterrupt,
    so `finally:` blocks (and Supervisor.close) run."""
    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt(f"signal {signum}")
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
