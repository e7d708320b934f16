"""Store fixtures: `store`/`fresh_store` over memory, SQLite and a real etcd process.

`store` on etcd shares one session etcd (each test gets its own key prefix);
`fresh_store` on etcd gets a private etcd whose history nobody else touches (for
compaction, which is etcd-wide). Without an `etcd` binary the etcd cases skip.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import AsyncIterator

import pytest

from isthmus.shared.store.base import ConfigStore

ETCD = shutil.which("etcd")
ETCD_MISSING = "etcd binary not found: make test installs Debian's etcd-server"
BACKENDS = ["memory", "sqlite", pytest.param("etcd", marks=pytest.mark.etcd)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EtcdServer:
    """One etcd member on loopback with a data dir; start/stop/restart, all bounded."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.with_suffix(".log")

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def __repr__(self) -> str:
        state = "running" if self.proc and self.proc.poll() is None else "stopped"
        return f"<EtcdServer {self.endpoint} {state} data={self.data_dir}>"

    def start(self, timeout: float = 20.0) -> None:
        assert ETCD is not None
        client, peer = f"http://{self.endpoint}", f"http://127.0.0.1:{self.peer_port}"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    ETCD, "--name", "isthmus-test", "--data-dir", str(self.data_dir),
                    "--listen-client-urls", client, "--advertise-client-urls", client,
                    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                    "--initial-cluster", f"isthmus-test={peer}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_healthy(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://{self.endpoint}/health", timeout=1) as response:
                    if json.loads(response.read()).get("health") == "true":
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"etcd at {self.endpoint} not healthy within {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> EtcdServer:
    if ETCD is None:
        pytest.skip(ETCD_MISSING)
    server = EtcdServer(tmp_path_factory.mktemp("etcd-shared") / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_etcd(tmp_path: Path) -> EtcdServer:
    """An etcd of the test's own (restart tests, compaction)."""
    if ETCD is None:
        pytest.skip(ETCD_MISSING)
    server = EtcdServer(tmp_path / "etcd-data")
    server.start()
    yield server
    server.stop()


def etcd_store(server: EtcdServer, prefix: str | None = None) -> ConfigStore:
    from isthmus.shared.store.etcd import EtcdStore

    host, port = server.endpoint.split(":")
    return EtcdStore([(host, int(port))], prefix=prefix or f"/isthmus-test/{uuid.uuid4().hex[:12]}")


async def _make_store(request: pytest.FixtureRequest, tmp_path: Path, private: bool) -> ConfigStore:
    if request.param == "memory":
        from isthmus.shared.store.memory import MemoryStore

        return MemoryStore()
    if request.param == "sqlite":
        from isthmus.shared.store.sqlite import SqliteStore

        return SqliteStore(tmp_path / "store.db")
    server = request.getfixturevalue("private_etcd" if private else "etcd_server")
    return etcd_store(server)


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ConfigStore]:
    opened = await _make_store(request, tmp_path, private=False)
    yield opened
    await opened.close()


@pytest.fixture(params=BACKENDS)
async def fresh_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ConfigStore]:
    """Like `store`, but no other test shares its history (etcd: a private server)."""
    opened = await _make_store(request, tmp_path, private=True)
    yield opened
    await opened.close()
