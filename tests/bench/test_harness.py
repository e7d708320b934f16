"""The benchmark harness's pure parts: load-tool output, statistics, ratios, the report.

No benchmark runs here: wrk/h2load outputs are recorded samples in testdata/.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench import loadgen, report, targets
from bench.adsfleet import CDS, LDS, Decoder
from bench.controlplane import parse_push_metrics, push_attribution, service_entry
from bench.dataplane import VARIANTS, Sample, Target, render
from bench.loadgen import LoadResult, LoadSpec
from bench.profile import summarize_collapsed, summarize_perf
from bench.stats import Spread, median, percentile, ratio

DATA = Path(__file__).parent / "testdata"


# ---------------------------------------------------------------- load tools

def test_parse_wrk_clean_run():
    r = loadgen.parse_wrk((DATA / "wrk_c16.txt").read_text())
    assert r.requests == 50319 and r.seconds == pytest.approx(1.0)
    assert r.rps == pytest.approx(50307.83)
    assert r.p50_ms == pytest.approx(0.202) and r.p99_ms == pytest.approx(4.58)
    assert r.errors == 0 and r.non_2xx == 0 and r.clean


def test_parse_wrk_counts_errors_and_non_2xx():
    r = loadgen.parse_wrk((DATA / "wrk_errors.txt").read_text())
    assert (r.errors, r.non_2xx) == (5, 41)
    assert r.p99_ms == pytest.approx(2500.0)  # seconds unit
    assert not r.clean


def test_parse_wrk_rejects_garbage():
    with pytest.raises(ValueError, match="unrecognised wrk output"):
        loadgen.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


@pytest.mark.parametrize("text,ms", [("202.00us", 0.202), ("1.15ms", 1.15), ("2.50s", 2500.0), ("1.00m", 60000.0)])
def test_wrk_units(text, ms):
    assert loadgen.to_ms(text) == pytest.approx(ms)


def test_parse_h2load_with_its_request_log():
    log = (DATA / "h2load_log.tsv").read_text().splitlines()
    r = loadgen.parse_h2load((DATA / "h2load_c16.txt").read_text(), log)
    assert r.requests == 43827 and r.rps == pytest.approx(43827.0) and r.clean
    durations = sorted(int(line.split("\t")[2]) / 1e3 for line in log)
    assert r.p50_ms == percentile(durations, 50) and r.p99_ms == percentile(durations, 99)


def test_parse_h2load_errors_exclude_plain_failures():
    text = ("finished in 1.00s, 100.00 req/s, 1KB/s\n"
            "requests: 100 total, 100 started, 100 done, 90 succeeded, 10 failed, 2 errored, 1 timeout\n"
            "status codes: 90 2xx, 0 3xx, 0 4xx, 8 5xx\n")
    r = loadgen.parse_h2load(text, [])
    assert (r.errors, r.non_2xx, r.p50_ms) == (3, 8, None)


def test_wrk_argv_is_bounded_and_carries_host_and_headers():
    argv = loadgen.wrk_argv("http://127.0.0.1:1/", VARIANTS["headers-c16"], 2.4, "echo:9080", None)
    assert argv[:5] == ["wrk", "-t1", "-c16", "-d2s", "--latency"]
    assert "--timeout" in argv and "Host: echo:9080" in argv
    assert sum(a.startswith("x-bench-header-") for a in argv) == len(loadgen.MANY_HEADERS)
    assert argv[-1] == "http://127.0.0.1:1/"
    post = loadgen.wrk_argv("http://127.0.0.1:1/", VARIANTS["body1k-c16"], 2, "h", "/tmp/post.lua")
    assert post[-3:] == ["-s", "/tmp/post.lua", "http://127.0.0.1:1/1k"]


def test_h2load_argv_sets_authority_and_log():
    argv = loadgen.h2load_argv("http://127.0.0.1:1/", VARIANTS["h2-c1x16"], 3, "echo:9081", "/tmp/l")
    assert ["-c1", "-m16", "-t1", "-D", "3"] == argv[1:6]
    assert ":authority: echo:9081" in argv and "--log-file=/tmp/l" in argv


# ---------------------------------------------------------------- statistics

def test_percentile_and_median():
    assert percentile([1, 2, 3, 4], 50) == 2 and percentile([1, 2, 3, 4], 99) == 4
    assert percentile([7], 1) == 7
    assert median([3, None, 1, 2]) == 2 and median([1, 2, 3, 4]) == 2.5 and median([None]) is None


def test_spread_and_ratio():
    s = Spread.of([10, 12, None, 11])
    assert (s.median, s.min, s.max, s.n) == (11, 10, 12, 3)
    assert s.noise_pct == pytest.approx(2 / 11 * 100)
    assert Spread.of([]).median is None
    assert ratio(1, 4) == 0.25 and ratio(None, 1) is None and ratio(1, 0) is None


# ---------------------------------------------------------------- summaries and ratios

def _sample(scenario: str, variant: str, rnd: int, rps: float, cpu: float | None = 100.0, clean: bool = True) -> dict:
    load = LoadResult(requests=int(rps * 2), seconds=2.0, rps=rps, p50_ms=1000 / rps, p99_ms=5000 / rps,
                      non_2xx=0 if clean else 3)
    return report.sample_row(Sample(scenario, variant, rnd, load, cpu, 50_000 if cpu else None))


def _rows() -> list[dict]:
    rows = []
    for rnd, (e, i, d) in enumerate([(5000, 2500, 40000), (6000, 2400, 41000), (5500, 2600, 39000)], start=1):
        rows += [_sample("envoy", "plain-c16", rnd, e, 120.0), _sample("isthmus", "plain-c16", rnd, i, 300.0),
                 _sample("direct", "plain-c16", rnd, d, None)]
    rows.append(_sample("isthmus", "plain-c16", 4, 99999, 1.0, clean=False))  # a run with errors
    return rows


def test_summary_takes_medians_and_leaves_out_runs_with_errors():
    summary = report.summarize_dataplane(_rows())
    isthmus = summary["plain-c16"]["isthmus"]
    assert isthmus["rps"] == {"median": 2500, "min": 2400, "max": 2600, "n": 3}
    assert (isthmus["runs"], isthmus["runs_with_errors"]) == (4, 1)
    assert summary["plain-c16"]["direct"]["cpu_us_per_req"]["median"] is None


def test_ratios_come_from_medians_of_the_same_run():
    r = report.ratios(report.summarize_dataplane(_rows()))
    one_hop = r["plain-c16"]["one hop"]
    assert one_hop["rps"] == pytest.approx(2500 / 5500, abs=1e-3)
    assert one_hop["cpu_us_per_req"] == pytest.approx(2.5)
    assert all(v is None for v in r["plain-c16"]["sidecar → sidecar (mTLS)"].values())  # not measured


# ---------------------------------------------------------------- report

def _results(mode: str = "quick") -> dict:
    summary = report.summarize_dataplane(_rows())
    return {
        "schema": 1, "mode": mode, "duration_s": 150.0, "loadavg_before": "0.10 0.20 0.30",
        "loadavg_after": "1.00 0.50 0.40", "busy": False, "pinning": "load generator + backend on CPU 0, proxy under test on CPU 1",
        "machine": {"date": "2026-01-01 00:00 UTC", "cpu_model": "Test CPU", "cores": 2, "cores_available": 2,
                    "memory_gib": 8.0, "kernel": "6.1", "arch": "x86_64", "virtualization": None, "cpu_governor": None,
                    "commit": "abc1234", "versions": {"python": "3.11.7", "envoy": "1.40.0", "haproxy": None}},
        "method": ["Load: wrk."], "settings": {"nginx": "keep-alive upstream"},
        "dataplane": {"seconds": 2, "rounds": 3, "pinning": "pinned", "scenarios": ["direct", "envoy", "isthmus", "envoy-s2s"],
                      "variants": ["plain-c16"], "unavailable": {"envoy-s2s": "envoy sidecar did not start: boom"},
                      "idle_rss_kib": {"envoy": 40960, "isthmus": 20480},
                      "idle_uss_kib": {"envoy": 30720, "isthmus": 10240}, "samples": _rows(), "summary": summary,
                      "ratios": report.ratios(summary), "profiles": {"isthmus": "100 samples"}, "method": "2 s × 3"},
        "controlplane": {
            "pilot": {"services": 200, "clients": 20, "rounds": 2, "pinning": "pilot on CPU 1", "settings": "defaults",
                      "apply_services_s": 0.2, "registry_ready_s": 1.5, "pilot_cpu_load_services_s": 1.0,
                      "initial_sync_all_s": 1.2, "pilot_cpu_initial_sync_s": 1.0, "pilot_rss_mib": 98.0,
                      "connect_batch": 10, "reconnects_total": 0,
                      "pilot_peak_rss_mib": 99.0,
                      **{k: {"rounds": [{"pilot_work": {"pushes": 1, "cds_n": 20, "cds_s": 4.0}}],
                             **{m: {"median": 1.0, "min": 0.9, "max": 1.1} for m in ("p50_s", "p99_s", "max_s", "pilot_cpu_s", "build_s")}}
                         for k in ("virtual_service", "mesh_wide")}},
            "galley": {"seconds": 1, "pinning": "galley on CPU 1",
                       "sqlite": {"applies_per_s_1_in_flight": 190.0, "applies_per_s_16_in_flight": 300.0,
                                  "watch_fanout": {"watchers": 100, "events": 5, "p50_ms": 37.0, "p99_ms": 60.0, "max_ms": 61.0}},
                       "etcd": {"unavailable": "etcd binary not found (Debian package etcd-server)"}},
            "citadel": {"runs": 3, "seconds_per_run": 0.5, "rows": [
                {"key_type": "ec-p256", "sign_path_per_s": 2600.0, "grpc_per_s": 690.0, "openssl_sign_per_s": 43000.0,
                 "sign_path_vs_openssl": 0.06}]},
        },
        "targets": [],
    }


def test_report_renders_every_section():
    res = _results()
    res["targets"] = targets.evaluate(res)
    md = report.render_markdown(res)
    assert md.startswith("# Benchmarks\n") and "**Quick run**" in md
    assert "Test CPU, 2 cores" in md
    assert "| 3.11.7 | 1.40.0 | not installed |" in md  # haproxy's version is None
    assert "**envoy-s2s** — not available: envoy sidecar did not start: boom" in md
    assert "| isthmus ⚠ 1/4 runs had errors (left out) | 2,500 (2,400–2,600) |" in md
    assert "| envoy | 5,500 (5,000–6,000) |" in md and "40.0 → 48.8 | 30.0 |" in md
    assert "| plain-c16 | one hop | 0.45× |" in md
    assert "Pilot convergence: 200 services, 20 simulated sidecars" in md and "| 1,000 (900–1,100) |" in md
    assert "cds 20 × 0.20 s" in md and "20 sidecars connecting 10 at a time, all synced in 1.20 s" in md
    assert "| etcd | not available: etcd binary not found (Debian package etcd-server) |" in md
    assert "| ec-p256 | 2,600 | 690 | 43,000 | 6.0% |" in md
    assert "| `make bench-quick` finishes in under 3 minutes | 150 s | met |" in md
    assert "100 samples" in md
    json.dumps(res)  # the results stay JSON


def test_report_names_the_parts_of_a_partial_run():
    res = _results()
    assert "Parts run" not in report.render_markdown(res)
    res["parts"] = ["galley"]
    assert "Parts run: galley (not the whole suite)." in report.render_markdown(res)


def test_report_says_why_there_is_no_ratio():
    res = _results("full")
    dp = res["dataplane"]
    rows = [r for r in dp["samples"] if r["scenario"] != "isthmus"]
    dp["summary"] = report.summarize_dataplane(rows)
    dp["ratios"] = report.ratios(dp["summary"])
    dp["unavailable"]["isthmus"] = "not in this checkout"
    md = report.render_markdown(res)
    assert "**Full run**" in md and "No ratio in this run: Isthmus (python engine) not in this checkout." in md


def test_targets_evaluate_met_unmet_and_unmeasured():
    ts = (targets.Target("fast", ("duration_s",), at_most=100, unit="s"),
          targets.Target("ratio", ("dataplane", "ratios", "plain-c16", "one hop", "rps"), at_least=0.5),
          targets.Target("missing", ("nope",), at_least=1),
          targets.Target("full only", ("duration_s",), at_most=1, modes=("full",)))
    out = targets.evaluate(_results(), ts)
    assert [(t["text"], t["verdict"]) for t in out] == [
        ("fast", "**not met**"), ("ratio", "**not met**"), ("missing", "not measured in this run")]


def test_rss_target_reads_idle_kib_as_mib():
    res = _results()
    rss = next(t for t in targets.TARGETS if "RSS" in t.text)
    [row] = targets.evaluate(res, (rss,))
    assert row["measured"] == "20 MiB" and row["verdict"] == "met"  # 20480 KiB idle
    res["dataplane"]["idle_rss_kib"]["isthmus"] = 41 * 1024
    [row] = targets.evaluate(res, (rss,))
    assert row["measured"] == "41 MiB" and row["verdict"] == "**not met**"


# ---------------------------------------------------------------- smaller pure helpers

def test_collapsed_stacks_summary():
    text = "main;serve;parse 30\nmain;serve;write 10\nmain;idle 60\nbad line\n"
    out = summarize_collapsed(text, top=3)
    assert out.startswith("100 samples")
    self_part, incl_part = out.split("incl %")
    assert "60.0  idle" in self_part and "30.0  parse" in self_part
    assert "100.0  main" in incl_part and "40.0  serve" in incl_part
    assert summarize_collapsed("") == "no samples"


def test_perf_report_summary():
    by_dso = "    61.20%  libpython3.11.so.1.0\n    20.05%  [kernel.kallsyms]\n     0.00%  libc.so.6\n"
    by_sym = "    12.50%  [.] _PyEval_EvalFrameDefault\n"
    out = summarize_perf(by_dso, by_sym)
    assert out.splitlines()[:3] == ["self %  library", "  61.2  libpython3.11.so.1.0", "  20.1  [kernel.kallsyms]"]
    assert "  12.5  [.] _PyEval_EvalFrameDefault" in out and "libc" not in out
    assert summarize_perf("", "") == "no samples"


def test_push_metrics_parse_and_difference():
    before = parse_push_metrics('pilot_xds_push_time_sum{type="cds"} 1.5\npilot_xds_push_time_count{type="cds"} 3.0\n'
                                'pilot_push_triggers_total{type="config"} 2.0\npilot_push_triggers_total{type="proxy"} 1.0\n')
    assert before == {"cds_s": 1.5, "cds_n": 3.0, "pushes": 3.0}
    after = {"cds_s": 2.0, "cds_n": 5.0, "rds_n": 1.0, "pushes": 4.0}
    assert push_attribution(before, after) == {"cds_n": 2.0, "cds_s": 0.5, "pushes": 1.0, "rds_n": 1.0}


def test_service_entries_use_loopback_addresses_only():
    for i in (0, 999, 250_000):
        for ep in service_entry(i)["spec"]["endpoints"]:
            octets = [int(x) for x in ep["address"].split(".")]
            assert octets[0] == 127 and all(0 <= o <= 255 for o in octets)


def test_decoder_names_eds_clusters_and_rds_routes_once():
    from envoy.config.cluster.v3 import cluster_pb2
    from envoy.config.listener.v3 import listener_pb2
    from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
    from envoy.service.discovery.v3 import discovery_pb2

    cds = discovery_pb2.DiscoveryResponse(type_url=CDS)
    for name, kind in (("b", cluster_pb2.Cluster.EDS), ("a", cluster_pb2.Cluster.EDS), ("s", cluster_pb2.Cluster.STATIC)):
        cds.resources.add().Pack(cluster_pb2.Cluster(name=name, type=kind))
    listener = listener_pb2.Listener(name="l")
    listener.filter_chains.add().filters.add(name="hcm").typed_config.Pack(
        hcm.HttpConnectionManager(rds=hcm.Rds(route_config_name="http_proxy")))
    lds = discovery_pb2.DiscoveryResponse(type_url=LDS)
    lds.resources.add().Pack(listener)
    d = Decoder()
    assert d.follow_up(cds) == ("a", "b") and d.follow_up(lds) == ("http_proxy",)
    assert d.follow_up(cds) is d.follow_up(cds)  # decoded once per content


def test_config_templates_fill_every_placeholder(tmp_path):
    root = Path(__file__).resolve().parents[2] / "bench"
    values = {"RUN": tmp_path, "HTTP_PORT": 1, "H2C_PORT": 2, "BACKEND_HTTP": 3, "BACKEND_H2C": 4}
    for template in (root / "nginx" / "backend.conf", root / "nginx" / "proxy.conf", root / "haproxy" / "proxy.cfg"):
        out = render(template, tmp_path / template.name, **values).read_text()
        code = "\n".join(line for line in out.splitlines() if not line.lstrip().startswith("#"))
        assert not re.findall(r"@[A-Z0-9_]+@", code), template


def test_target_urls_per_protocol():
    t = Target("envoy", 10, 11, "echo:9080", "echo:9081")
    assert t.url(VARIANTS["plain-c16"]) == "http://127.0.0.1:10/" and t.host(VARIANTS["plain-c16"]) == "echo:9080"
    assert t.url(LoadSpec("x", protocol="h2")) == "http://127.0.0.1:11/" and t.host(VARIANTS["h2-c1x16"]) == "echo:9081"


def test_proc_readings_of_a_process_tree():
    import os
    import subprocess
    import sys

    from bench import procs

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert child.pid in procs.tree(os.getpid())
        assert procs.cpu_seconds(os.getpid()) > 0 and procs.rss_kib(os.getpid()) > 1000
        # private memory excludes shared library pages: positive, and below RSS
        assert 0 < procs.uss_kib(os.getpid()) < procs.rss_kib(os.getpid())
        assert procs.uss_kib(2**22 + 7) == 0
        assert procs.tree_cpu_seconds([]) == 0 and procs.cpu_seconds(2**22 + 7) == 0.0
    finally:
        child.kill()
        child.wait()
