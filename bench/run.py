"""`python -m bench.run --quick|--full`: run the benchmark suite, write latest.json and BENCHMARKS.md.

Parts: data plane (wrk/h2load through each proxy), pilot convergence, galley, citadel.
Nothing is installed here: a missing tool is named with the Debian package that brings it
(`make bench` installs them). Every process started is stopped, also on Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import machine, report, targets  # noqa: E402
from bench.procs import Pinning, stop_on_signals  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PARTS = report.ALL_PARTS
BUSY_LOAD = 0.5  # load average above which the report warns that the machine was busy


@dataclass(frozen=True)
class Plan:
    mode: str
    seconds: float
    rounds: int
    variants: tuple[str, ...]
    services: int
    clients: int
    cp_rounds: int
    galley_seconds: float
    fanout_events: int
    ca_seconds: float
    ca_repeats: int
    profile_seconds: float


def plan_for(quick: bool) -> Plan:
    from bench.dataplane import QUICK_VARIANTS, VARIANTS

    if quick:
        return Plan("quick", 2, 3, QUICK_VARIANTS, 200, 20, 3, 1.0, 5, 0.5, 2, 0)
    return Plan("full", 10, 3, tuple(VARIANTS), 1000, 100, 3, 3.0, 20, 3.0, 3, 10)


def method_lines(plan: Plan, dp_variants: tuple[str, ...]) -> list[str]:
    return [
        f"Load: wrk (1 thread) for HTTP/1.1 and h2load (1 thread) for HTTP/2; {plan.seconds:g} s per run after a 1 s "
        f"warm-up per scenario and protocol; {plan.rounds} rounds, interleaved (round 1 of every scenario, then round 2, "
        "...); the figure is the median of the rounds and the noise its min–max.",
        "Backend: nginx (1 worker) answering a fixed body from memory; all traffic on 127.0.0.1.",
        "Proxy CPU µs per request: utime + stime from /proc/PID/stat of the proxy's process tree (agent and Envoy; "
        "both sidecars for sidecar → sidecar; nginx master + worker) across the run, divided by the requests "
        "completed. RSS: VmRSS of the same tree, idle before any load and after each run; private: the tree's "
        "Private_Clean + Private_Dirty (smaps_rollup) idle, i.e. RSS without the shared library pages that every "
        "process using the same libraries shares.",
        "Latency: wrk's --latency p50/p99; h2load's per-request log (its own p50/p99 over every request).",
        "A run with any socket error or non-2xx answer is left out of the figures and counted beside them.",
        f"Variants: {', '.join(dp_variants)}.",
        f"Pilot convergence: {plan.services} ServiceEntries, {plan.clients} simulated sidecars, {plan.cp_rounds} rounds "
        "per change.",
    ]


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def check_tools(parts: tuple[str, ...]) -> list[str]:
    needed = []
    if "dataplane" in parts:
        needed += ["wrk", "nginx"]
    return machine.missing_tools(needed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="short runs, 200 services / 20 clients (< 3 min)")
    mode.add_argument("--full", action="store_true", help="the default: 10 s runs, every variant, 1000 / 100")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {', '.join(PARTS)}")
    parser.add_argument("--scenarios", help="comma-separated data-plane scenarios (default: all)")
    parser.add_argument("--seconds", type=float, help="seconds per data-plane run")
    parser.add_argument("--rounds", type=int, help="data-plane rounds")
    parser.add_argument("--services", type=int, help="ServiceEntries for pilot convergence")
    parser.add_argument("--clients", type=int, help="simulated sidecars for pilot convergence")
    parser.add_argument("--profile-seconds", type=float, help="py-spy the python proxy under load (0: off)")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs, access logs) afterwards")
    parser.add_argument("--results", type=Path, default=REPO / "bench" / "results" / "latest.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    plan = plan_for(args.quick)
    overrides = {k: v for k, v in {"seconds": args.seconds, "rounds": args.rounds, "services": args.services,
                                   "clients": args.clients, "profile_seconds": args.profile_seconds}.items() if v is not None}
    plan = Plan(**{**plan.__dict__, **overrides})
    parts = tuple(p.strip() for p in args.only.split(",") if p.strip())
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    from bench.dataplane import SCENARIOS

    scenarios = tuple(x.strip() for x in args.scenarios.split(",")) if args.scenarios else SCENARIOS
    if unknown := set(scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    if missing := check_tools(parts):
        print("missing tools (`make bench` installs them as root):\n  " + "\n  ".join(missing), file=sys.stderr)
        return 2

    from isthmus.shared.logging import configure

    configure("bench", level="warning", json=False)
    os.chdir(REPO)
    started = time.monotonic()
    log = lambda text: print(text, flush=True)  # noqa: E731
    run_dir = Path(tempfile.mkdtemp(prefix="isthmus-bench-"))
    pin = Pinning.detect()
    results: dict = {"schema": 1, "mode": plan.mode, "parts": list(parts), "machine": machine.describe(),
                     "loadavg_before": loadavg(), "pinning": pin.note}
    log(f"benchmarks ({plan.mode}): {', '.join(parts)}; {pin.note}; load average {results['loadavg_before']}")
    part_seconds: dict[str, float] = {}
    results["part_seconds"] = part_seconds
    mark = time.monotonic()

    def lap(part: str) -> None:
        nonlocal mark
        now = time.monotonic()
        part_seconds[part] = round(now - mark, 1)
        mark = now

    with stop_on_signals():
        if "dataplane" in parts:
            from bench import dataplane

            dp = dataplane.run(scenarios, plan.variants, plan.seconds, plan.rounds, log,
                               profile_seconds=plan.profile_seconds, run_dir=run_dir / "dataplane")
            rows = [report.sample_row(s) for s in dp.samples]
            summary = report.summarize_dataplane(rows)
            ran_variants = tuple(v for v in dp.variants if v in summary)
            results["dataplane"] = {
                "seconds": dp.seconds, "rounds": dp.rounds, "pinning": dp.pinning, "scenarios": list(dp.scenarios),
                "variants": list(ran_variants), "unavailable": dp.unavailable, "idle_rss_kib": dp.idle_rss_kib,
                "idle_uss_kib": dp.idle_uss_kib,
                "samples": rows, "summary": summary, "ratios": report.ratios(summary), "profiles": dp.profiles,
                "method": f"{plan.seconds:g} s × {plan.rounds} rounds per scenario and variant, interleaved; "
                          f"{dp.pinning}.",
            }
            results["settings"] = dp.settings
            lap("dataplane")
        cp: dict = {}
        if "pilot" in parts:
            from bench import controlplane

            try:
                cp["pilot"] = controlplane.pilot_convergence(plan.services, plan.clients, plan.cp_rounds, log,
                                                              run_dir=run_dir / "pilot")
            except Exception as exc:  # noqa: BLE001 - recorded; the other parts still run
                cp["pilot"] = {"unavailable": str(exc).splitlines()[0][:300]}
                log(f"pilot convergence failed: {cp['pilot']['unavailable']}")
            lap("pilot")
        if "galley" in parts:
            from bench import galley

            log("galley: applies per second and watch fan-out")
            cp["galley"] = galley.galley_bench(plan.galley_seconds, 100, plan.fanout_events, log, run_dir=run_dir / "galley")
            lap("galley")
        if "citadel" in parts:
            from bench import controlplane

            log("citadel: bench/ca_bench.py")
            cp["citadel"] = controlplane.citadel_bench(plan.ca_seconds, plan.ca_repeats, log)
            lap("citadel")
        if cp:
            results["controlplane"] = cp
    results["loadavg_after"] = loadavg()
    results["busy"] = float(results["loadavg_before"].split()[0]) > BUSY_LOAD if results["loadavg_before"] != "?" else False
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["method"] = method_lines(plan, tuple(results.get("dataplane", {}).get("variants", plan.variants)))
    results["targets"] = targets.evaluate(results)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    args.markdown.write_text(report.render_markdown(results))
    log(f"\nwrote {args.results} and {args.markdown} in {results['duration_s']:.0f} s "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in part_seconds.items())})")
    if args.keep:
        log(f"run directory kept: {run_dir}")
    else:  # the proxies' access logs of a full run take gigabytes
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted: every process started was stopped", file=sys.stderr)
        sys.exit(130)
