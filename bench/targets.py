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


TARGETS: tuple[Target, ...] = (
    Target("`make bench-quick` finishes in under 3 minutes", ("duration_s",), at_most=180, unit="s", modes=("quick",)),
    # The proxy issue's and the pilot issue's targets go here, e.g.
    # Target("Isthmus one hop ≥ X× Envoy's req/s (plain, 16 connections)",
    #        ("dataplane", "ratios", "plain-c16", "one hop", "rps"), at_least=X, unit="×"),
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
        if not isinstance(value, (int, float)):
            verdict, measured = "not measured in this run", "—"
        else:
            ok = (t.at_most is None or value <= t.at_most) and (t.at_least is None or value >= t.at_least)
            verdict, measured = ("met" if ok else "**not met**"), f"{value:.3g} {t.unit}".strip()
        out.append({"text": t.text, "measured": measured, "verdict": verdict})
    return out
