"""Where the Python data plane spends its time: py-spy and perf under load, as text.

`profile_scenarios` samples the `isthmus*` scenarios' processes from outside (no change to
the proxy) while plain-c16 load runs: py-spy for Python frames, perf for native code
(libpython, libssl, uvloop, the kernel). `summarize_collapsed` turns py-spy's collapsed
stacks into top self and inclusive frames — a flame graph read as a table. Profiled runs
are never the measured ones.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Callable

from bench import procs

TOP = 15


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def summarize_collapsed(text: str, top: int = TOP) -> str:
    """Collapsed stacks ("a;b;c 12" per line) → top frames by self and by inclusive samples."""
    self_counts: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f.strip() for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        total += n
        self_counts[frames[-1]] += n
        for frame in set(frames):
            incl[frame] += n
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "self %  frame"]
    lines += [f"{n / total * 100:6.1f}  {f}" for f, n in self_counts.most_common(top)]
    lines += ["", "incl %  frame"]
    lines += [f"{n / total * 100:6.1f}  {f}" for f, n in incl.most_common(top)]
    return "\n".join(lines)


def perf_binary() -> str | None:
    return shutil.which("perf")


def summarize_perf(by_dso: str, by_symbol: str, top: int = TOP) -> str:
    """`perf report --stdio -q` outputs (sorted by DSO, by symbol) → the top lines of each."""
    def rows(text: str) -> list[str]:
        out = []
        for line in text.splitlines():
            m = re.match(r"\s*([\d.]+)%\s+(.*\S)", line)
            if m and float(m.group(1)) > 0:
                out.append(f"{float(m.group(1)):6.1f}  {' '.join(m.group(2).split())}")
        return out[:top]
    dso, sym = rows(by_dso), rows(by_symbol)
    if not dso:
        return "no samples"
    return "\n".join(["self %  library", *dso, "", "self %  symbol", *sym])


def _perf_report(exe: str, data: Path, sort: str) -> str:
    res = subprocess.run([exe, "report", "-i", str(data), "--stdio", "--no-children", "-q", "--sort", sort],
                         capture_output=True, text=True, timeout=120)
    return res.stdout


def profile_scenarios(targets: dict, pin: procs.Pinning, work: Path, seconds: float,
                      log: Callable[[str], None]) -> dict[str, str]:
    """py-spy (Python frames, per process) and perf (native: libpython, libssl, kernel, ...) under plain-c16 load."""
    from bench.dataplane import VARIANTS, run_load

    wanted = [s for s in ("isthmus", "isthmus-s2s") if s in targets]
    spy_exe, perf_exe = py_spy(), perf_binary()
    out: dict[str, str] = {}
    for s in wanted:
        t = targets[s]
        pids = [p for root in t.roots for p in procs.tree(root)]
        spy_files = [work / f"pyspy-{s}-{pid}.txt" for pid in t.roots]
        perf_file = work / f"perf-{s}.data"
        samplers = []
        if spy_exe:
            samplers += [subprocess.Popen([spy_exe, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                                           "--rate", "250", "--format", "raw", "--output", str(f), "--nonblocking"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                         for pid, f in zip(t.roots, spy_files)]
        if perf_exe:
            samplers.append(subprocess.Popen([perf_exe, "record", "-e", "cpu-clock", "-F", "999", "-p",
                                              ",".join(map(str, pids)), "-o", str(perf_file), "--", "sleep",
                                              str(int(seconds))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        try:
            run_load(t, VARIANTS["plain-c16"], seconds, pin, work)
        finally:
            for sampler in samplers:
                try:
                    sampler.wait(seconds + 30)
                except subprocess.TimeoutExpired:
                    sampler.kill()
                    sampler.wait(5)
        parts = []
        if not spy_exe:
            parts.append("Python frames: not available: py-spy not installed (add py-spy to the dev extras)")
        for pid, f in zip(t.roots, spy_files):
            if spy_exe:
                role = "client sidecar" if pid == t.roots[0] else "server sidecar"
                text = summarize_collapsed(f.read_text()) if f.exists() else "py-spy wrote nothing"
                parts.append(f"Python frames (py-spy), {role}:\n{text}")
        if perf_exe and perf_file.exists():
            native = summarize_perf(_perf_report(perf_exe, perf_file, "dso"), _perf_report(perf_exe, perf_file, "sym"))
            parts.append(f"Native (perf, cpu-clock, {'both sidecars' if len(t.roots) > 1 else 'the sidecar'}):\n{native}")
        elif not perf_exe:
            parts.append("Native: not available: perf not installed (Debian package linux-perf)")
        out[s] = "\n\n".join(parts)
        log(f"  profiled {s}")
    return out
