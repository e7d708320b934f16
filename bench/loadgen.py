"""Load generators: wrk (HTTP/1.1) and h2load (HTTP/2), their command lines and their output.

`wrk_argv`/`h2load_argv` build bounded command lines; `parse_wrk`/`parse_h2load` turn the
text the tools print (and h2load's per-request log) into a `LoadResult`. Parsing is pure.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from bench.stats import percentile

MANY_HEADERS = tuple((f"x-bench-header-{i:02d}", f"value-{i:02d}-" + "abcdefghij" * 3) for i in range(24))
BODY_1K_LUA = """-- POST a 1 KiB body (the response from /1k is 1 KiB too)
wrk.method = "POST"
wrk.body = string.rep("b", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
"""

_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass(frozen=True)
class LoadSpec:
    """One load shape: protocol, connections, path, extra headers, body."""
    name: str
    protocol: str = "http1"  # http1 (wrk) or h2 (h2load)
    connections: int = 16
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    post_1k: bool = False
    streams: int = 1  # h2load: concurrent streams per connection


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int = 0  # socket errors (wrk) / errored + timed out (h2load)
    non_2xx: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def clean(self) -> bool:
        """Every request got a 2xx/3xx and no socket broke: only then is the figure quoted."""
        return self.errors == 0 and self.non_2xx == 0 and self.requests > 0


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNIT[m.group(2)]


def wrk_argv(url: str, spec: LoadSpec, seconds: float, host: str, script: str | None) -> list[str]:
    argv = ["wrk", "-t1", f"-c{spec.connections}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "5s",
            "-H", f"Host: {host}"]
    for k, v in spec.headers:
        argv += ["-H", f"{k}: {v}"]
    if script:
        argv += ["-s", script]
    return [*argv, url + spec.path.lstrip("/")]


def h2load_argv(url: str, spec: LoadSpec, seconds: float, host: str, log_file: str) -> list[str]:
    argv = ["h2load", f"-c{spec.connections}", f"-m{spec.streams}", "-t1", "-D", str(max(1, round(seconds))),
            "--warm-up-time=0", "-H", f":authority: {host}", f"--log-file={log_file}"]
    for k, v in spec.headers:
        argv += ["-H", f"{k}: {v}"]
    return [*argv, url + spec.path.lstrip("/")]


def parse_wrk(text: str) -> LoadResult:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    total = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m),", text, re.M)
    if not rps or not total:
        raise ValueError(f"unrecognised wrk output:\n{text[-800:]}")
    pct = {m.group(1): to_ms(m.group(2)) for m in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return LoadResult(
        requests=int(total.group(1)),
        seconds=to_ms(total.group(2) + total.group(3)) / 1e3,
        rps=float(rps.group(1)),
        p50_ms=pct.get("50"),
        p99_ms=pct.get("99"),
        errors=sum(int(g) for g in sock.groups()) if sock else 0,
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
    )


def parse_h2load(text: str, log_lines: list[str] | None = None) -> LoadResult:
    """h2load's summary; p50/p99 come from its --log-file (start µs, status, duration µs)."""
    fin = re.search(r"^finished in ([\d.]+)(us|ms|s|m), ([\d.]+) req/s", text, re.M)
    req = re.search(r"^requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored"
                    r"(?:, (\d+) timeout)?", text, re.M)
    codes = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    if not fin or not req:
        raise ValueError(f"unrecognised h2load output:\n{text[-800:]}")
    durations = []
    for line in log_lines or []:
        parts = line.split("\t")
        if len(parts) == 3 and parts[2].strip().isdigit():
            durations.append(int(parts[2]) / 1e3)
    durations.sort()
    return LoadResult(
        requests=int(req.group(3)),
        seconds=to_ms(fin.group(1) + fin.group(2)) / 1e3,
        rps=float(fin.group(3)),
        p50_ms=percentile(durations, 50) if durations else None,
        p99_ms=percentile(durations, 99) if durations else None,
        errors=int(req.group(5)) + int(req.group(6) or 0),  # "failed" also counts 4xx/5xx
        non_2xx=(int(codes.group(3)) + int(codes.group(4))) if codes else 0,
    )
