"""Benchmark results → `bench/results/latest.json` and the readable `BENCHMARKS.md`.

`summarize_dataplane` reduces the raw samples of one run to medians with their min–max
noise and the Isthmus/Envoy ratios (only ever between figures of that same run);
`render_markdown` writes the report from the JSON alone. Both are pure.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

from bench.stats import Spread, ratio

ALL_PARTS = ("dataplane", "pilot", "galley", "citadel")
METRICS = ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "rss_kib")
PAIRS = {"one hop": ("isthmus", "envoy"), "sidecar → sidecar (mTLS)": ("isthmus-s2s", "envoy-s2s")}
RATIO_TEXT = {"rps": "req/s", "p50_ms": "p50", "p99_ms": "p99", "cpu_us_per_req": "CPU/req", "rss_kib": "RSS"}


def sample_row(sample) -> dict:
    """A dataplane.Sample as one flat JSON row."""
    load = sample.load
    return {"scenario": sample.scenario, "variant": sample.variant, "round": sample.round, "rps": round(load.rps, 1),
            "p50_ms": load.p50_ms, "p99_ms": load.p99_ms, "requests": load.requests, "seconds": load.seconds,
            "errors": load.errors, "non_2xx": load.non_2xx, "clean": load.clean,
            "cpu_us_per_req": round(sample.cpu_us_per_req, 2) if sample.cpu_us_per_req is not None else None,
            "rss_kib": sample.rss_kib}


def _spread_dict(values: Iterable[float | None]) -> dict:
    s = Spread.of(values)
    return {"median": s.median, "min": s.min, "max": s.max, "n": s.n}


def summarize_dataplane(rows: list[dict]) -> dict:
    """variant → scenario → metric → {median, min, max, n}; runs with errors are left out and counted."""
    grouped: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        grouped[(r["variant"], r["scenario"])].append(r)
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for (variant, scenario), runs in grouped.items():
        clean = [r for r in runs if r["clean"]]
        entry = {m: _spread_dict(r[m] for r in clean) for m in METRICS}
        entry["runs"] = len(runs)
        entry["runs_with_errors"] = len(runs) - len(clean)
        out[variant][scenario] = entry
    return dict(out)


def ratios(summary: dict) -> dict:
    """variant → pair → metric → Isthmus median / Envoy median (same run), or None."""
    out: dict[str, dict[str, dict]] = {}
    for variant, by_scenario in summary.items():
        out[variant] = {}
        for pair, (ours, theirs) in PAIRS.items():
            a, b = by_scenario.get(ours), by_scenario.get(theirs)
            out[variant][pair] = {m: _round(ratio(a[m]["median"], b[m]["median"])) if a and b else None for m in METRICS}
    return out


def _round(v: float | None, digits: int = 4) -> float | None:
    return round(v, digits) if v is not None else None


# ---------------------------------------------------------------- markdown

def _num(v: float | None, fmt: str = "{:,.0f}") -> str:
    return fmt.format(v) if v is not None else "—"


def _range(s: dict, fmt: str = "{:,.0f}") -> str:
    if s.get("median") is None:
        return "—"
    if s["n"] < 2:
        return fmt.format(s["median"])
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}–{fmt.format(s['max'])})"


def _mib(kib: float | None) -> str:
    return f"{kib / 1024:.1f}" if kib is not None else "—"


def _dataplane_md(dp: dict) -> list[str]:
    from bench.dataplane import DESCRIPTIONS, VARIANT_TEXT

    lines = ["## Data plane", ""]
    lines += [f"Load: {dp['method']}", ""]
    if dp.get("unavailable"):
        lines += ["Not measured in this run:", ""]
        lines += [f"- **{s}** — not available: {why}" for s, why in dp["unavailable"].items()]
        lines.append("")
    lines += ["| scenario | path |", "|---|---|"]
    lines += [f"| {s} | {DESCRIPTIONS.get(s, '')} |" for s in dp["scenarios"]]
    lines.append("")
    summary, idle, idle_uss = dp["summary"], dp.get("idle_rss_kib", {}), dp.get("idle_uss_kib", {})
    for variant in dp["variants"]:
        by = summary.get(variant, {})
        if not by:
            continue
        lines += [f"### {variant}: {VARIANT_TEXT.get(variant, '')}", "",
                  "| scenario | req/s median (min–max) | p50 ms | p99 ms | proxy CPU µs/req | proxy RSS MiB idle → loaded "
                  "| private MiB idle |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for s in dp["scenarios"]:
            e = by.get(s)
            if e is None:
                continue
            errs = f" ⚠ {e['runs_with_errors']}/{e['runs']} runs had errors (left out)" if e["runs_with_errors"] else ""
            rss = "—" if s == "direct" else f"{_mib(idle.get(s))} → {_mib(e['rss_kib']['median'])}"
            cpu = "—" if s == "direct" else _range(e["cpu_us_per_req"], "{:,.1f}")
            uss = "—" if s == "direct" or not idle_uss.get(s) else _mib(idle_uss.get(s))
            lines.append(f"| {s}{errs} | {_range(e['rps'])} | {_range(e['p50_ms'], '{:.2f}')} | "
                         f"{_range(e['p99_ms'], '{:.2f}')} | {cpu} | {rss} | {uss} |")
        lines.append("")
    lines += ["### Isthmus / Envoy (medians of this run)", "",
              "Above 1 is better for req/s, below 1 is better for latency, CPU and memory.", "",
              "| variant | path | " + " | ".join(RATIO_TEXT[m] for m in RATIO_TEXT) + " |",
              "|---|---|" + "---:|" * len(RATIO_TEXT)]
    for variant, pairs in dp["ratios"].items():
        for pair, vals in pairs.items():
            cells = [f"{vals[m]:.2f}×" if vals.get(m) is not None else "—" for m in RATIO_TEXT]
            lines.append(f"| {variant} | {pair} | " + " | ".join(cells) + " |")
    if all(v is None for pairs in dp["ratios"].values() for vals in pairs.values() for v in vals.values()):
        why = dp.get("unavailable", {}).get("isthmus", "not measured")
        lines += ["", f"No ratio in this run: Isthmus (python engine) {why}."]
    lines.append("")
    if dp.get("profiles"):
        lines += ["### Where the Python proxy spends its time (py-spy / perf under plain-c16 load, not a measured run)", ""]
        for s, text in dp["profiles"].items():
            lines += [f"**{s}**", "", "```", text, "```", ""]
    return lines


def _controlplane_md(cp: dict) -> list[str]:
    lines = ["## Control plane", ""]
    p = cp.get("pilot")
    if p and "unavailable" not in p:
        vs, mw = p["virtual_service"], p["mesh_wide"]
        ms = lambda s: _range({k: (v * 1e3 if v is not None else None) for k, v in s.items()} | {"n": p["rounds"]}, "{:,.0f}")  # noqa: E731
        lines += [f"### Pilot convergence: {p['services']} services, {p['clients']} simulated sidecars", "",
                  f"{p['pinning']}. {p['settings']}. Each client is an ADS SotW stream (CDS, EDS, LDS, RDS; ACKs "
                  f"everything) in one process; time is from the start of `apply` to the client's ACK. "
                  f"{p['rounds']} rounds; median (min–max).", "",
                  "| change | p50 ms | p99 ms | all ACKed ms | pilot CPU s | PushContext build s |",
                  "|---|---:|---:|---:|---:|---:|",
                  f"| one VirtualService (routes of every proxy) | {ms(vs['p50_s'])} | {ms(vs['p99_s'])} | {ms(vs['max_s'])} "
                  f"| {_range(vs['pilot_cpu_s'] | {'n': p['rounds']}, '{:.2f}')} | {_range(vs['build_s'] | {'n': p['rounds']}, '{:.2f}')} |",
                  f"| mesh-wide DestinationRule (every cluster of every proxy) | {ms(mw['p50_s'])} | {ms(mw['p99_s'])} "
                  f"| {ms(mw['max_s'])} | {_range(mw['pilot_cpu_s'] | {'n': p['rounds']}, '{:.2f}')} "
                  f"| {_range(mw['build_s'] | {'n': p['rounds']}, '{:.2f}')} |", "",
                  f"- Where pilot's time went (its own metrics, first round): VirtualService change — {_work(vs['rounds'][0])}; "
                  f"mesh-wide change — {_work(mw['rounds'][0])}.",
                  f"- Apply {p['services']} ServiceEntries (batches of 250): {p['apply_services_s']:.2f} s; in pilot's "
                  f"registry after {p['registry_ready_s']:.2f} s (pilot CPU {p['pilot_cpu_load_services_s']:.2f} s).",
                  f"- {p['clients']} sidecars connecting {p.get('connect_batch', p['clients'])} at a time, all synced in "
                  f"{p['initial_sync_all_s']:.2f} s (pilot CPU {p['pilot_cpu_initial_sync_s']:.2f} s); ADS streams cut "
                  f"by pilot and reopened by the clients over the whole benchmark: {p.get('reconnects_total', 0)}.",
                  f"- Pilot RSS: {p['pilot_rss_mib']:.0f} MiB with {p['clients']} connected (peak {p['pilot_peak_rss_mib']:.0f} MiB).", ""]
    elif p:
        lines += [f"### Pilot convergence: not available: {p['unavailable']}", ""]
    g = cp.get("galley")
    if g:
        lines += ["### Galley", "", f"{g.get('pinning', '')}; {g.get('seconds', 0):g} s per rate.", "",
                  "| store | applies/s, 1 in flight | applies/s, 16 in flight | watch fan-out p50 ms | p99 ms | watchers × events |",
                  "|---|---:|---:|---:|---:|---:|"]
        for store in ("sqlite", "etcd"):
            r = g.get(store)
            if not r:
                continue
            if "unavailable" in r:
                lines.append(f"| {store} | not available: {r['unavailable']} | | | | |")
                continue
            w = r["watch_fanout"]
            lines.append(f"| {store} | {r['applies_per_s_1_in_flight']:,.0f} | {r['applies_per_s_16_in_flight']:,.0f} | "
                         f"{w['p50_ms']:.1f} | {w['p99_ms']:.1f} | {w['watchers']} × {w['events']} |")
        lines.append("")
    c = cp.get("citadel")
    if c:
        if "unavailable" in c:
            lines += [f"### Citadel: not available: {c['unavailable']}", ""]
        else:
            lines += ["### Citadel (bench/ca_bench.py)", "",
                      f"One core, best of {c['runs']} runs of {c['seconds_per_run']:g} s (`openssl speed`: "
                      f"{c.get('openssl_seconds_per_run', c['seconds_per_run']):g} s). Sign path = parse and check "
                      "the CSR, build and sign the leaf, PEM chain; gRPC = full CreateCertificate calls over loopback.", "",
                      "| CA key | sign path /s | gRPC calls /s | `openssl speed` signs/s | sign path / openssl |",
                      "|---|---:|---:|---:|---:|"]
            for r in c["rows"]:
                rel = f"{r['sign_path_vs_openssl'] * 100:.1f}%" if r.get("sign_path_vs_openssl") else "—"
                lines.append(f"| {r['key_type']} | {r['sign_path_per_s']:,.0f} | {r['grpc_per_s']:,.0f} | "
                             f"{_num(r.get('openssl_sign_per_s'))} | {rel} |")
            lines.append("")
    return lines


def _work(round_: dict) -> str:
    """'1 debounced push; cds 20 responses, 0.65 s each, ...' from one round's pilot_work."""
    w = round_.get("pilot_work") or {}
    if not w:
        return "not recorded"
    types = [f"{t} {w[t + '_n']:.0f} × {w.get(t + '_s', 0) / w[t + '_n']:.2f} s" for t in ("cds", "eds", "lds", "rds")
             if w.get(t + "_n")]
    return (f"{w.get('pushes', 0):.0f} debounced push(es); responses × mean seconds each to generate and send "
            "(they overlap): " + (", ".join(types) or "none"))


def _targets_md(targets: list[dict]) -> list[str]:
    lines = ["## Targets", ""]
    if not targets:
        return lines + ["No targets are recorded in bench/targets.py yet.", ""]
    lines += ["| target | measured | met? |", "|---|---:|---|"]
    for t in targets:
        lines.append(f"| {t['text']} | {t['measured']} | {t['verdict']} |")
    return lines + [""]


def render_markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    v = m["versions"]
    quick = res["mode"] == "quick"
    lines = [
        "# Benchmarks",
        "",
        ("**Quick run** (`make bench-quick`): short runs and a smaller control-plane scale — for a fast check; "
         "the figures to quote come from `make bench`." if quick else "**Full run** (`make bench`)."),
        "",
        f"Generated by `bench/run.py --{res['mode']}` on {m['date']} in {res['duration_s']:.0f} s, commit "
        f"{m.get('commit') or 'unknown'}. Raw figures: `bench/results/latest.json`. Every ratio below is between two "
        "figures of this one run; noise is the min–max across rounds.",
        *([f"", f"Parts run: {', '.join(res['parts'])} (not the whole suite)."]
          if set(res.get("parts", ALL_PARTS)) != set(ALL_PARTS) else []),
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu_model']}, {m['cores']} cores ({m['cores_available']} available), "
        f"{m.get('memory_gib') or '?'} GiB; {m['arch']}, Linux {m['kernel']}"
        + (f", virtualized ({m['virtualization']})" if m.get("virtualization") else "")
        + (f", governor {m['cpu_governor']}" if m.get("cpu_governor") else ""),
        f"- CPU pinning: {res.get('pinning', 'not recorded')}",
        f"- Load average before / after the run: {res['loadavg_before']} / {res['loadavg_after']}"
        + (" — **the machine was busy with other work; expect extra noise**" if res.get("busy") else ""),
        "",
        "| " + " | ".join(v) + " |",
        "|" + "---|" * len(v),
        "| " + " | ".join(x or "not installed" for x in v.values()) + " |",
        "",
        "## Method",
        "",
    ]
    lines += [f"- {x}" for x in res["method"]]
    lines += ["", "Settings that differ from a product's default:", ""]
    lines += [f"- {k}: {text}" for k, text in res.get("settings", {}).items()]
    lines.append("")
    if res.get("dataplane"):
        lines += _dataplane_md(res["dataplane"])
    if res.get("controlplane"):
        lines += _controlplane_md(res["controlplane"])
    lines += _targets_md(res.get("targets", []))
    return "\n".join(lines).rstrip() + "\n"
