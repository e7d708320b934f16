"""`isthmus up --detach` / `status` / `down` with a private run dir and ports."""
from __future__ import annotations

import json
import os
import socket
import subprocess

from tests.helpers.procs import ISTHMUS, free_port_block


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([*ISTHMUS, *args], capture_output=True, text=True, timeout=120, env=env)


def _free_block(n: int = 8) -> int:
    return free_port_block(n)


def test_up_detach_status_apply_down(tmp_path):
    env = {**os.environ, "ISTHMUS_RUN_DIR": str(tmp_path / "run")}
    env.pop("ISTHMUS_GALLEY", None)
    base = _free_block()
    res = _cli("up", "--detach", "--no-bookinfo", "--base-port", str(base), env=env)
    try:
        assert res.returncode == 0, res.stderr
        assert "galley ready" in res.stderr
        status = _cli("status", "-o", "json", env=env)
        assert status.returncode == 0
        comps = json.loads(status.stdout)
        assert comps["galley"]["running"] and comps["galley"]["address"] == f"127.0.0.1:{base}"
        assert comps["citadel"]["running"] and comps["pilot"]["running"]
        assert comps["pilot"]["debug"] == f"127.0.0.1:{base + 6}"
        # pilot got its certificate from citadel and serves the mTLS xDS port
        assert "xDS (mTLS)" in comps["pilot"]["urls"]
        # Clients find galley through the run directory.
        yaml = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec: {host: r}\n"
        applied = subprocess.run([*ISTHMUS, "apply", "-f", "-"], input=yaml, capture_output=True, text=True, env=env, timeout=60)
        assert applied.returncode == 0, applied.stderr
        assert "destinationrule.networking.istio.io/r created" in applied.stdout
        # A second `up` on the same run dir refuses clearly.
        again = _cli("up", "--detach", "--no-bookinfo", "--base-port", str(base), env=env)
        assert again.returncode != 0 and "already running" in again.stderr
    finally:
        down = _cli("down", env=env)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert _cli("status", env=env).returncode == 1


def test_up_reports_taken_port_and_starts_nothing(tmp_path):
    env = {**os.environ, "ISTHMUS_RUN_DIR": str(tmp_path / "run")}
    base = _free_block()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", base))
        holder.listen()
        res = _cli("up", "--detach", "--no-bookinfo", "--base-port", str(base), env=env)
    assert res.returncode != 0
    assert f"galley: port {base} on 127.0.0.1 is taken" in res.stderr
    assert _cli("status", env=env).returncode == 1


def test_up_istiod_one_process_serves_bookinfo(tmp_path):
    """--istiod: galley, citadel and pilot in one process; the mesh still serves Bookinfo."""
    import urllib.request

    env = {**os.environ, "ISTHMUS_RUN_DIR": str(tmp_path / "run")}
    env.pop("ISTHMUS_GALLEY", None)
    base = free_port_block(100)
    res = _cli("up", "--detach", "--istiod", "--engine", "python", "--base-port", str(base), env=env)
    try:
        assert res.returncode == 0, res.stderr[-2000:]
        comps = json.loads(_cli("status", "-o", "json", env=env).stdout)
        assert "istiod" in comps and not {"galley", "citadel", "pilot"} & set(comps)
        with urllib.request.urlopen(f"http://127.0.0.1:{base + 9}/productpage", timeout=20) as r:
            assert r.status == 200 and b"Reviews served by" in r.read()
    finally:
        _cli("down", env=env)
