"""The CLI end to end, as a new user runs it: start citadel, mint a token, request a
certificate, verify it with openssl; kill -9 and restart keeps the root; SIGTERM is graceful."""
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .helpers import needs_openssl, openssl

ISTHMUS = str(Path(sys.executable).parent / "isthmus")
MODULE = [sys.executable, "-m", "isthmus.citadel.main"]  # also has `cert`, before it is registered


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30)


def wait_serving(port: int, proc: subprocess.Popen, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.stderr.read()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError:
            pass
        assert time.monotonic() < deadline, "citadel did not become healthy"
        time.sleep(0.1)


def start(data_dir: Path, port: int, metrics_port: int) -> subprocess.Popen:
    proc = subprocess.Popen([ISTHMUS, "citadel", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}",
                             "--monitoring", f"127.0.0.1:{metrics_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "ISTHMUS_LOG_FORMAT": "json"})
    wait_serving(port, proc)
    return proc


@pytest.fixture
def processes():
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
        if p.stderr:
            p.stderr.close()


@needs_openssl
def test_new_user_flow_restart_and_graceful_stop(tmp_path, processes):
    data, out = tmp_path / "data", tmp_path / "out"
    port, metrics_port = free_port(), free_port()
    processes.append(proc := start(data, port, metrics_port))
    assert stat.S_IMODE((data / "root-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "token-key.pem").stat().st_mode) == 0o600

    minted = run(ISTHMUS, "token", "create", "--data-dir", str(data), "--namespace", "default",
                 "--service-account", "productpage", "--ttl", "1h")
    assert minted.returncode == 0, minted.stderr
    token_file = tmp_path / "token"
    token_file.write_text(minted.stdout.strip())

    got = run(*MODULE, "cert", "request", "--ca", f"127.0.0.1:{port}", "--token-file", str(token_file),
              "--out", str(out), "--ttl", "2h")
    assert got.returncode == 0, got.stderr
    assert "issued spiffe://cluster.local/ns/default/sa/productpage" in got.stdout
    assert stat.S_IMODE((out / "key.pem").stat().st_mode) == 0o600
    check = openssl("verify", "-CAfile", str(out / "root-cert.pem"), "-untrusted", str(out / "cert-chain.pem"),
                    str(out / "cert.pem"))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "URI:spiffe://cluster.local/ns/default/sa/productpage" in \
        openssl("x509", "-in", str(out / "cert.pem"), "-noout", "-text").stdout

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    assert 'citadel_certs_signed_total{auth="jwt"} 1.0' in metrics
    assert "citadel_sign_seconds_count 1.0" in metrics

    # killed hard, restarted: the same root, the same token key
    root_before = (data / "root-cert.pem").read_bytes()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    processes.append(proc := start(data, port, free_port()))
    again = run(*MODULE, "cert", "request", "--ca", f"127.0.0.1:{port}", "--token-file", str(token_file),
                "--out", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr
    assert (data / "root-cert.pem").read_bytes() == root_before
    assert (tmp_path / "again" / "root-cert.pem").read_bytes() == root_before

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert "citadel stopping" in proc.stderr.read()


def test_cli_errors_say_what_to_fix(tmp_path):
    data = tmp_path / "data"
    ok = run(ISTHMUS, "token", "create", "--data-dir", str(data), "-n", "default", "-s", "a")
    assert ok.returncode == 0
    bad = run(ISTHMUS, "token", "create", "--data-dir", str(data), "-n", "default", "-s", "a",
              "--trust-domain", "corp.example")
    assert bad.returncode == 1 and "belongs to trust domain 'cluster.local'" in bad.stderr
    bad_ns = run(ISTHMUS, "token", "create", "--data-dir", str(data), "-n", "Not_A_Namespace", "-s", "a")
    assert bad_ns.returncode == 1 and "DNS-1123" in bad_ns.stderr
    ttl = run(ISTHMUS, "token", "create", "--data-dir", str(data), "-n", "default", "-s", "a", "--ttl", "1 week")
    assert ttl.returncode == 2 and "optional unit" in ttl.stderr
    down = run(*MODULE, "cert", "request", "--ca", f"127.0.0.1:{free_port()}", "--token", ok.stdout.strip(),
               "--out", str(tmp_path / "o"))
    assert down.returncode == 1 and "UNAVAILABLE" in down.stderr
