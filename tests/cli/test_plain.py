"""The per-workload commands (`proxy`, `gateway`, `bootstrap`) are argparse commands that
`isthmus` runs before importing click: conventions, exit statuses, and what gets loaded."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from isthmus.cli import plain
from isthmus.gateway.main import main as gateway_main
from isthmus.proxy.agent import main as proxy_main
from isthmus.proxy.bootstrap import main as bootstrap_main
from tests.helpers.procs import ISTHMUS


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ISTHMUS, *args], capture_output=True, text=True, timeout=60)


def test_bootstrap_writes_envoy_bootstrap_with_the_workload(tmp_path):
    out = tmp_path / "boot.json"
    code = bootstrap_main(["--name", "reviews-v1-0", "-n", "bookinfo", "--labels", "app=reviews,version=v1",
                           "--port", "http:9080", "-o", str(out)])
    assert code == 0
    boot = json.loads(out.read_text())
    assert boot["node"]["id"] == "sidecar~127.0.0.1~reviews-v1-0.bookinfo~bookinfo.svc.cluster.local"
    assert boot["node"]["metadata"]["LABELS"] == {"app": "reviews", "version": "v1"}


@pytest.mark.parametrize("main, argv, message", [
    (proxy_main, ["--namespace", "x"], "the following arguments are required: --name"),
    (proxy_main, ["--name", "a", "--labels", "app"], "--labels 'app': want key=value"),
    (proxy_main, ["--name", "a", "--port", "http:x"], "--port 'http:x': want NAME:PORT[:PROXY_PORT]"),
    (proxy_main, ["--name", "a", "--engine", "nginx"], "argument --engine: invalid choice: 'nginx'"),
    (proxy_main, ["--name", "a", "--token-file", "/nonexistent/token"], "file '/nonexistent/token' does not exist"),
    (proxy_main, ["--name", "a", "--admin-port", "x"], "argument --admin-port: invalid int value: 'x'"),
    (gateway_main, ["--port-map", "80"], "--port-map '80': want SERVER_PORT=LISTEN_PORT, e.g. 80=8080"),
    (bootstrap_main, ["--name", "a", "--type", "gateway"], "argument --type: invalid choice: 'gateway'"),
])
def test_usage_errors_name_the_flag_and_exit_2(capsys, main, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_failure_is_error_line_and_exit_1(capsys):
    def body() -> None:
        raise plain.Failure("proxy not ready at http://127.0.0.1:1/healthz/ready after 1s")

    assert plain.run(body) == 1
    assert capsys.readouterr().err == "Error: proxy not ready at http://127.0.0.1:1/healthz/ready after 1s\n"


def test_wait_ready_times_out_with_exit_1(capsys):
    assert proxy_main(["wait-ready", "--status-port", "1", "--timeout", "0.3", "--", "true"]) == 1
    assert "proxy not ready at http://127.0.0.1:1/healthz/ready after 0.3s" in capsys.readouterr().err


def test_help_shows_defaults_and_subcommands():
    res = _run("proxy", "--help")
    assert res.returncode == 0, res.stderr
    assert "--drain-seconds DRAIN_SECONDS" in res.stdout and "(default: 5.0)" in res.stdout
    assert "wait-ready" in res.stdout and "init-iptables" in res.stdout
    listing = _run("--help")
    assert listing.returncode == 0
    line = next(ln for ln in listing.stdout.splitlines() if ln.strip().startswith("gateway "))
    assert "Run an ingress or egress gateway" in line


def test_the_sidecar_commands_do_not_load_click():
    probe = ("import sys\nsys.argv = ['isthmus', 'bootstrap', '--name', 'a']\n"
             "from isthmus.cli.main import main\n"
             "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
             "print('CLICK' if 'click' in sys.modules else 'NO-CLICK', file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip().endswith("NO-CLICK"), res.stderr
    # the click commands still go through click
    res = subprocess.run([sys.executable, "-c", probe.replace("'bootstrap', '--name', 'a'", "'validate', '--help'")],
                         capture_output=True, text=True, timeout=60)
    assert res.stderr.strip().endswith("CLICK") and "NO-CLICK" not in res.stderr, res.stderr
