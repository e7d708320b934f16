"""The mesh as a user starts it (`isthmus up`), once per engine, for the e2e suite.

Each mesh gets a private run directory and a private block of ports (--base-port), so
nothing collides with a developer's own `make up`. Torn down with `isthmus down`.
`start_mesh` is shared with e2e/netns/ (`--capture iptables`: pods in network
namespaces); `Mesh` reads every address from state.json, so scenarios run unchanged
in both modes.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import corpus_path
from tests.helpers.procs import ISTHMUS, free_port_block

SERVED_BY = re.compile(r"Reviews served by: ([a-z0-9-]+)")


def _free_block(n: int) -> int:
    return free_port_block(n)


@dataclass
class Mesh:
    engine: str
    run_dir: Path
    base: int
    env: dict
    capture: str = "explicit"

    @property
    def ingress(self) -> str:
        """The gateway's base URL, as `isthmus up` reports it (loopback, or the gateway pod's IP)."""
        return self.state["ingress"].removesuffix("/productpage")

    @property
    def state(self) -> dict:
        return json.loads((self.run_dir / "state.json").read_text())

    def cli(self, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*ISTHMUS, *args], capture_output=True, text=True, input=stdin, env=self.env, timeout=timeout)

    def apply_corpus(self, *names: str) -> float:
        """Apply corpus files unchanged; return the seconds the apply took."""
        t0 = time.monotonic()
        for name in names:
            res = self.cli("apply", "-f", str(corpus_path("istio-samples", "bookinfo", "networking", name)))
            assert res.returncode == 0, res.stderr
        return time.monotonic() - t0

    def delete_vs(self, *names: str) -> None:
        for n in names:
            self.cli("delete", "vs", n, "--ignore-not-found")

    def page(self, user: str | None = None, timeout: float = 20) -> tuple[int, str, float]:
        req = urllib.request.Request(f"{self.ingress}/productpage")
        if user:
            req.add_header("Cookie", f"user={user}")
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode(), time.monotonic() - t0
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace"), time.monotonic() - t0

    def served_by(self, user: str | None = None) -> str:
        status, body, _ = self.page(user)
        assert status == 200, body[:500]
        m = SERVED_BY.search(body)
        return m.group(1).rsplit("-", 1)[0] if m else "none"  # reviews-v2-0 → reviews-v2

    def wait_for(self, check, timeout: float = 15.0, what: str = "") -> float:
        t0 = time.monotonic()
        last = None
        while time.monotonic() - t0 < timeout:
            try:
                if check():
                    return time.monotonic() - t0
            except (AssertionError, OSError) as exc:
                last = exc
            time.sleep(0.05)
        raise AssertionError(f"{what or 'condition'} not reached in {timeout}s ({last})")


ENGINES = ["python", "envoy"]


@contextmanager
def start_mesh(engine: str, run_dir: Path, capture: str = "explicit") -> Iterator[Mesh]:
    """`isthmus up --detach` until the product page answers through the ingress; `isthmus down` after."""
    base = _free_block(100)
    env = {**os.environ, "ISTHMUS_RUN_DIR": str(run_dir)}
    env.pop("ISTHMUS_GALLEY", None)
    up = subprocess.run([*ISTHMUS, "up", "--detach", "--engine", engine, "--capture", capture, "--base-port", str(base)],
                        capture_output=True, text=True, env=env, timeout=180)
    m = Mesh(engine, run_dir, base, env, capture)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        # every sidecar and the gateway have their first config: the page works
        m.wait_for(lambda: m.page()[0] == 200, 60, "productpage through the ingress")
        yield m
    finally:
        down = subprocess.run([*ISTHMUS, "down"], env=env, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr[-3000:]


@pytest.fixture(scope="module", params=ENGINES)
def mesh(request, tmp_path_factory):
    engine = request.param
    with start_mesh(engine, tmp_path_factory.mktemp(f"mesh-{engine}")) as m:
        yield m
