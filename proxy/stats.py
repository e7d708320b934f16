"""Proxy statistics: plain integers on the hot path, rendered only when scraped.

    stats = Stats()
    rq = stats.counter("cluster.upstream_rq_total", (("cluster_name", name),))
    rq.value += 1                       # hot path: one attribute increment
    stats.histogram("istio_request_duration_milliseconds", labels).observe(12.5)

Get-or-create by (name, labels) at build time (once per snapshot/connection), keep
the returned object, and increment it per request. `render_prometheus()` and
`render_text()` walk everything at scrape time (/stats/prometheus, /stats).
"""
from __future__ import annotations

from bisect import bisect_left
from typing import Iterable

Labels = tuple[tuple[str, str], ...]

# Istio's default buckets for istio_request_duration_milliseconds.
DURATION_MS_BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000)
# Istio's default buckets for request/response sizes (bytes).
SIZE_BUCKETS = (1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000)


class Counter:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, n: int = 1) -> None:
        self.value += n


class Gauge:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def set(self, v: float) -> None:
        self.value = v

    def inc(self, n: int = 1) -> None:
        self.value += n

    def dec(self, n: int = 1) -> None:
        self.value -= n


class Histogram:
    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        self.counts[bisect_left(self.bounds, v)] += 1
        self.sum += v
        self.count += 1


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fmt_labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _prom_name(name: str) -> str:
    return name.replace(".", "_").replace("-", "_")


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


class Stats:
    def __init__(self) -> None:
        self._counters: dict[tuple[str, Labels], Counter] = {}
        self._gauges: dict[tuple[str, Labels], Gauge] = {}
        self._histograms: dict[tuple[str, Labels], Histogram] = {}

    def counter(self, name: str, labels: Labels = ()) -> Counter:
        key = (name, labels)
        c = self._counters.get(key)
        if c is None:
            c = self._counters[key] = Counter()
        return c

    def gauge(self, name: str, labels: Labels = ()) -> Gauge:
        key = (name, labels)
        g = self._gauges.get(key)
        if g is None:
            g = self._gauges[key] = Gauge()
        return g

    def histogram(self, name: str, labels: Labels = (), bounds: tuple[float, ...] = DURATION_MS_BUCKETS) -> Histogram:
        key = (name, labels)
        h = self._histograms.get(key)
        if h is None:
            h = self._histograms[key] = Histogram(bounds)
        return h

    def counters(self) -> Iterable[tuple[str, Labels, int]]:
        return ((n, l, c.value) for (n, l), c in sorted(self._counters.items()))

    def render_prometheus(self) -> str:
        out: list[str] = []
        for kind, table in (("counter", self._counters), ("gauge", self._gauges)):
            seen: set[str] = set()
            for (name, labels), metric in sorted(table.items()):
                pname = _prom_name(name)
                if pname not in seen:
                    out.append(f"# TYPE {pname} {kind}")
                    seen.add(pname)
                out.append(f"{pname}{_fmt_labels(labels)} {_num(metric.value)}")
        seen = set()
        for (name, labels), h in sorted(self._histograms.items()):
            pname = _prom_name(name)
            if pname not in seen:
                out.append(f"# TYPE {pname} histogram")
                seen.add(pname)
            cumulative = 0
            for bound, n in zip(h.bounds, h.counts):
                cumulative += n
                le = 'le="' + _num(bound) + '"'
                out.append(f"{pname}_bucket{_fmt_labels(labels, le)} {cumulative}")
            inf = 'le="+Inf"'
            out.append(f"{pname}_bucket{_fmt_labels(labels, inf)} {h.count}")
            out.append(f"{pname}_sum{_fmt_labels(labels)} {_num(h.sum)}")
            out.append(f"{pname}_count{_fmt_labels(labels)} {h.count}")
        return "\n".join(out) + "\n"

    def render_text(self) -> str:
        """Envoy's /stats shape: `name: value`, labels folded into the name."""
        out = []
        for table in (self._counters, self._gauges):
            for (name, labels), metric in sorted(table.items()):
                label = "".join(f".{v}" for _, v in labels)
                out.append(f"{name}{label}: {_num(metric.value)}")
        for (name, labels), h in sorted(self._histograms.items()):
            label = "".join(f".{v}" for _, v in labels)
            out.append(f"{name}{label}: count={h.count} sum={_num(h.sum)}")
        return "\n".join(out) + "\n"
