"""The mesh keeps serving when parts of it fail, and heals when they return."""
from __future__ import annotations

import os
import signal
import subprocess
import time

from e2e.conftest import Mesh


def _kill(mesh: Mesh, name: str) -> dict:
    comp = mesh.state["components"][name]
    os.killpg(comp["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(comp["pid"], 0)
        except ProcessLookupError:
            break
        try:
            os.waitpid(comp["pid"], os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    return comp


def _restart(mesh: Mesh, name: str, comp: dict) -> None:
    """Start the component again exactly as `isthmus up` did and record its new pid."""
    import json

    with open(comp["log"], "ab") as out:
        proc = subprocess.Popen(comp["argv"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**mesh.env, "ISTHMUS_LOG_FORMAT": "json", **comp.get("env", {})})
    state = mesh.state
    state["components"][name]["pid"] = proc.pid
    (mesh.run_dir / "state.json").write_text(json.dumps(state))


def test_pilot_down_traffic_flows_and_pilot_return_converges(mesh):
    mesh.apply_corpus("virtual-service-all-v1.yaml")
    mesh.wait_for(lambda: all(mesh.served_by() == "reviews-v1" for _ in range(8)), 15, "v1")
    comp = _kill(mesh, "pilot")
    try:
        # proxies keep their last good config
        assert {mesh.served_by() for _ in range(20)} == {"reviews-v1"}
        # config can still be applied (galley is up); it takes effect once pilot is back
        mesh.apply_corpus("virtual-service-reviews-v3.yaml")
        assert {mesh.served_by() for _ in range(5)} == {"reviews-v1"}
    finally:
        _restart(mesh, "pilot", comp)
    took = mesh.wait_for(lambda: all(mesh.served_by() == "reviews-v3" for _ in range(3)), 60, "converged after pilot return")
    print(f"[{mesh.engine}] converged {took:.1f}s after pilot restart")


def test_galley_down_applies_fail_clearly_traffic_unaffected(mesh):
    mesh.apply_corpus("virtual-service-all-v1.yaml")
    mesh.wait_for(lambda: all(mesh.served_by() == "reviews-v1" for _ in range(8)), 15, "v1")
    comp = _kill(mesh, "galley")
    try:
        res = mesh.cli("apply", "-f", "-", stdin="apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
                       "metadata: {name: x}\nspec: {host: x}\n")
        assert res.returncode == 1
        assert "cannot reach galley" in res.stderr
        assert {mesh.served_by() for _ in range(20)} == {"reviews-v1"}
    finally:
        _restart(mesh, "galley", comp)
    mesh.wait_for(lambda: mesh.cli("get", "vs", "reviews").returncode == 0, 30, "galley back")


def test_reviews_instance_killed_is_ejected_and_rejoins(mesh):
    """Kill reviews-v3 (app and sidecar): its auto-registered WorkloadEntry goes after the
    grace period, traffic flows to v1/v2 only, with no errors; restarted, it rejoins."""
    mesh.delete_vs("reviews")
    mesh.wait_for(lambda: "reviews-v3" in {mesh.served_by() for _ in range(12)}, 20, "v3 in rotation")
    sidecar = _kill(mesh, "reviews-v3-sidecar")
    app = _kill(mesh, "reviews-v3")
    try:
        def healed() -> bool:
            pages = [mesh.page()[1] for _ in range(8)]
            return all(("reviews-v1" in b or "reviews-v2" in b) and "unavailable" not in b for b in pages)
        took = mesh.wait_for(healed, 40, "v3 removed from rotation")
        print(f"[{mesh.engine}] dead instance out of rotation after {took:.1f}s")
    finally:
        _restart(mesh, "reviews-v3-sidecar", sidecar)
        _restart(mesh, "reviews-v3", app)
    mesh.wait_for(lambda: "reviews-v3" in {mesh.served_by() for _ in range(12)}, 60, "v3 rejoins")
