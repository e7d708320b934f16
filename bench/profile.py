"""Where the Python data plane spends its time: py-spy under load, summarised as text.

`profile_scenarios` attaches py-spy (sampling, from outside: no change to the proxy) to
every python-engine process of the `isthmus*` scenarios while plain-c16 load runs, and
`summarize_collapsed` turns py-spy's collapsed stacks into the top self and inclusive
frames — a flame graph read as a table. Profiled runs are never the measured ones.
"""
from __future__ import annotations

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


def profile_scenarios(targets: dict, pin: procs.Pinning, work: Path, seconds: float,
                      log: Callable[[str], None]) -> dict[str, str]:
    from bench.dataplane import VARIANTS, run_load

    wanted = [s for s in ("isthmus", "isthmus-s2s") if s in targets]
    if not wanted:
        return {}
    exe = py_spy()
    if exe is None:
        return {s: "not available: py-spy not installed (add py-spy to the dev extras)" for s in wanted}
    out: dict[str, str] = {}
    for s in wanted:
        t = targets[s]
        files = [work / f"pyspy-{s}-{pid}.txt" for pid in t.roots]
        spies = [subprocess.Popen([exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "250",
                                   "--format", "raw", "--output", str(f), "--nonblocking"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for pid, f in zip(t.roots, files)]
        try:
            run_load(t, VARIANTS["plain-c16"], seconds, pin, work)
        finally:
            for spy in spies:
                try:
                    spy.wait(seconds + 30)
                except subprocess.TimeoutExpired:
                    spy.kill()
                    spy.wait(5)
        parts = []
        for pid, f, spy in zip(t.roots, files, spies):
            role = "client sidecar" if pid == t.roots[0] else "server sidecar"
            if f.exists():
                parts.append(f"{role} (pid {pid}):\n{summarize_collapsed(f.read_text())}")
            else:
                err = (spy.stderr.read() if spy.stderr else "").strip().splitlines()
                parts.append(f"{role} (pid {pid}): py-spy failed: {err[-1] if err else 'no output'}")
        out[s] = "\n\n".join(parts)
        log(f"  profiled {s}")
    return out
