"""The targets a run is judged against, each a figure from latest.json and a bound.

Add the proxy issue's targets here (a path into the results, how it compares, the bound);
`evaluate` says met / not met / not measured for each, and the report prints the table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    text: str
    path: tuple[str, ...]  # keys into the results dict
    at_most: float | None = None
    at_least: float | None = None
    unit: str = ""
    modes: tuple[str, ...] = ("quick", "full")
    scale: float = 1.0  # the figure is divided by this for display and comparison (KiB → MiB)


TARGETS: tuple[Target, ...] = (
    Target("`make bench-quick` finishes in under 3 minutes", ("duration_s",), at_most=180, unit="s", modes=("quick",)),
    # The proxy issue's targets (HTTP/1.1 keep-alive, 16 connections, metrics and access log on).
    Target("Isthmus one hop ≥ 1.5× Envoy's req/s per core", ("dataplane", "ratios", "plain-c16", "one hop", "rps"),
           at_least=1.5, unit="×"),
    Target("Isthmus sidecar→sidecar mTLS ≥ 1.2× Envoy's req/s", ("dataplane", "ratios", "plain-c16", "sidecar → sidecar (mTLS)", "rps"),
           at_least=1.2, unit="×"),
    Target("Isthmus one hop p99 no worse than Envoy's", ("dataplane", "ratios", "plain-c16", "one hop", "p99_ms"),
           at_most=1.0, unit="×"),
    Target("Isthmus sidecar idle RSS ≤ 40 MiB", ("dataplane", "idle_rss_kib", "isthmus"), at_most=40, unit="MiB",
           scale=1024),
)


def lookup(results: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def evaluate(results: dict[str, Any], targets: tuple[Target, ...] = TARGETS) -> list[dict]:
    out = []
    for t in targets:
        if results.get("mode") not in t.modes:
            continue
        value = lookup(results, t.path)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = value / t.scale
        if not isinstance(value, (int, float)):
            verdict, measured = "not measured in this run", "—"
        else:
            ok = (t.at_most is None or value <= t.at_most) and (t.at_least is None or value >= t.at_least)
            verdict, measured = ("met" if ok else "**not met**"), f"{value:.3g} {t.unit}".strip()
        out.append({"text": t.text, "measured": measured, "verdict": verdict})
    return out
